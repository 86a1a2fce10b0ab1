"""`docker build`: the Dockerfile interpreted by kubedock, `RUN` executed in a sandbox pod."""

from ._builder import (
    BaseImage,
    Builder,
    BuildFailed,
    BuildOptions,
    BuiltImage,
    ImageAccess,
    Layer,
    LayerCache,
)
from ._context import BuildContext
from ._dockerfile import DockerfileError, parse_dockerfile
from ._images import RegistryImages, build_credentials
from ._sandbox import (
    Sandbox,
    SandboxFactory,
    SandboxFailed,
    StepCommand,
    StepNotStarted,
    open_sandbox,
    sandbox_pod,
)

__all__ = [
    "BaseImage",
    "BuildContext",
    "BuildFailed",
    "BuildOptions",
    "Builder",
    "BuiltImage",
    "DockerfileError",
    "ImageAccess",
    "Layer",
    "LayerCache",
    "RegistryImages",
    "Sandbox",
    "SandboxFactory",
    "SandboxFailed",
    "StepCommand",
    "StepNotStarted",
    "build_credentials",
    "open_sandbox",
    "parse_dockerfile",
    "sandbox_pod",
]
