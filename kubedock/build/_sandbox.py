"""The build sandbox: where a Dockerfile's `RUN` executes.

A sandbox holds one stage's root filesystem. Layers are applied onto it, a command runs
chrooted in it, and a snapshot returns what changed since the last layer, snapshot or reset as
a new layer. Only `RUN` needs it; everything else a build does is computed by kubedock itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import attrs


@attrs.frozen
class StepCommand:
    """One `RUN`, resolved: nothing in it is interpreted further by the sandbox."""

    # The final argv: for the shell form the caller already put SHELL (default
    # ["/bin/sh", "-c"]) in front.
    argv: tuple[str, ...]
    # The command's whole environment, in order (image ENV and the build args in scope).
    env: tuple[tuple[str, str], ...]
    # Docker's USER syntax: "" (root), "uid", "uid:gid", "name", "name:group"; names are
    # looked up in the root filesystem's /etc/passwd and /etc/group.
    user: str
    # Absolute; created when missing.
    workdir: str


class Sandbox(Protocol):
    async def reset(self) -> None:
        """Empty the root filesystem (the start of a stage)."""

    async def apply_layer(self, source: AsyncIterable[bytes]) -> None:
        """Unpack one layer tar (plain or gzip, told by its first bytes), honouring the OCI
        whiteouts `.wh.<name>` and `.wh..wh..opq`."""

    async def run(self, command: StepCommand, output: Callable[[bytes], Awaitable[None]]) -> int:
        """Run the command; its stdout and stderr go to `output` as produced. Returns the
        exit code: 126 when the program cannot be executed, 127 when it does not exist."""

    async def snapshot(self, sink: Callable[[bytes], Awaitable[None]]) -> None:
        """Write a plain tar of every change since the last `apply_layer`, `snapshot` or
        `reset` to `sink`: added and changed entries with their full metadata, deletions as
        whiteouts, in a deterministic order. No change gives a valid empty tar."""


SandboxFactory = Callable[[], AbstractAsyncContextManager[Sandbox]]
