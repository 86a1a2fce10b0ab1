"""Domain records, the container state machine and the event bus."""

from ._attach import AttachRequest
from ._engine import Engine, WaitCondition, signal_name
from ._errors import (
    Conflict,
    EngineError,
    InvalidParameter,
    NoSuchContainer,
    NoSuchExec,
    NoSuchImage,
    NotFound,
    NotModified,
    StartFailed,
    Unsupported,
)
from ._events import Event, EventBus
from ._exec import Exec, ExecConfig
from ._images import Image, ImageRef, ImageStore, parse_reference
from ._logs import STDERR, STDOUT, LogRequest
from ._records import (
    Container,
    ContainerConfig,
    Health,
    Healthcheck,
    HostBinding,
    PublishedPort,
)

__all__ = [
    "STDERR",
    "STDOUT",
    "AttachRequest",
    "Conflict",
    "Container",
    "ContainerConfig",
    "Engine",
    "EngineError",
    "Event",
    "EventBus",
    "Exec",
    "ExecConfig",
    "Health",
    "Healthcheck",
    "HostBinding",
    "Image",
    "ImageRef",
    "ImageStore",
    "InvalidParameter",
    "LogRequest",
    "NoSuchContainer",
    "NoSuchExec",
    "NoSuchImage",
    "NotFound",
    "NotModified",
    "PublishedPort",
    "StartFailed",
    "Unsupported",
    "WaitCondition",
    "parse_reference",
    "signal_name",
]
