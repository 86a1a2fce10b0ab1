"""Domain records, the container state machine and the event bus."""

from ._archive import copy_in, get_archive, open_archive, stat_path
from ._attach import AttachRequest
from ._engine import Engine, WaitCondition
from ._errors import (
    Conflict,
    EngineError,
    Forbidden,
    ImageUnavailable,
    InvalidParameter,
    NoSuchContainer,
    NoSuchExec,
    NoSuchImage,
    NoSuchNetwork,
    NotFound,
    NotModified,
    PullFailed,
    RegistryUnreachable,
    StartFailed,
    TimedOut,
    Unsupported,
)
from ._events import Event, EventBus
from ._exec import Exec, ExecConfig
from ._images import Image, ImageRef, ImageSource, ImageStore, parse_reference
from ._logs import STDERR, STDOUT, LogRequest
from ._naming import NameMode
from ._networks import PREDEFINED, Endpoint, Network, NetworkStore, dns_name
from ._own_registry import OwnRegistry, parse_own_registry, stored_reference
from ._pre_pull import PrePull, PrePuller
from ._pull_secrets import PullSecrets, pull_secret_configs
from ._pulling import RegistrySource
from ._reaper import ReaperSettings, serve_reaper
from ._records import (
    Container,
    ContainerConfig,
    Health,
    Healthcheck,
    HostBinding,
    Mount,
    PublishedPort,
    RestartPolicy,
    RestartPolicyName,
)
from ._signals import signal_name
from ._stats import Sample, UsageReader, VolumeUsage, follow_usage
from ._top import container_top
from ._volumes import (
    ANONYMOUS_LABEL,
    DRIVER,
    NoSuchVolume,
    Volume,
    VolumeStore,
    with_anonymous_volumes,
)

__all__ = [
    "ANONYMOUS_LABEL",
    "DRIVER",
    "PREDEFINED",
    "STDERR",
    "STDOUT",
    "AttachRequest",
    "Conflict",
    "Container",
    "ContainerConfig",
    "Endpoint",
    "Engine",
    "EngineError",
    "Event",
    "EventBus",
    "Exec",
    "ExecConfig",
    "Forbidden",
    "Health",
    "Healthcheck",
    "HostBinding",
    "Image",
    "ImageRef",
    "ImageSource",
    "ImageStore",
    "ImageUnavailable",
    "InvalidParameter",
    "LogRequest",
    "Mount",
    "NameMode",
    "Network",
    "NetworkStore",
    "NoSuchContainer",
    "NoSuchExec",
    "NoSuchImage",
    "NoSuchNetwork",
    "NoSuchVolume",
    "NotFound",
    "NotModified",
    "OwnRegistry",
    "PrePull",
    "PrePuller",
    "PublishedPort",
    "PullFailed",
    "PullSecrets",
    "ReaperSettings",
    "RegistrySource",
    "RegistryUnreachable",
    "RestartPolicy",
    "RestartPolicyName",
    "Sample",
    "StartFailed",
    "TimedOut",
    "Unsupported",
    "UsageReader",
    "Volume",
    "VolumeStore",
    "VolumeUsage",
    "WaitCondition",
    "container_top",
    "copy_in",
    "dns_name",
    "follow_usage",
    "get_archive",
    "open_archive",
    "parse_own_registry",
    "parse_reference",
    "pull_secret_configs",
    "serve_reaper",
    "signal_name",
    "stat_path",
    "stored_reference",
    "with_anonymous_volumes",
]
