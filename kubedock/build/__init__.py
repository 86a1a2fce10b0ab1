"""`docker build`: the Dockerfile interpreted by kubedock, `RUN` executed in a sandbox pod."""

from ._sandbox import (
    Sandbox,
    SandboxFactory,
    SandboxFailed,
    StepCommand,
    open_sandbox,
    sandbox_pod,
)

__all__ = [
    "Sandbox",
    "SandboxFactory",
    "SandboxFailed",
    "StepCommand",
    "open_sandbox",
    "sandbox_pod",
]
