"""`docker build`: the Dockerfile interpreted by kubedock, `RUN` executed in a sandbox pod."""

from ._sandbox import Sandbox, SandboxFactory, StepCommand

__all__ = [
    "Sandbox",
    "SandboxFactory",
    "StepCommand",
]
