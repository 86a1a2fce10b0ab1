"""The build sandbox: where a Dockerfile's `RUN` executes.

A sandbox holds one stage's root filesystem. Layers are applied onto it, a command runs
chrooted in it, and a snapshot returns what changed since the last layer, snapshot or reset as
a new layer. Only `RUN` needs it; everything else a build does is computed by kubedock itself.

The real one is a pod of kubedock's own image, each operation an exec of `kubedock buildstep`
there (see `kubedock.podside._buildstep`), with layers on its stdin and snapshots on its
stdout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import attrs
import trio

from .. import kube
from ..engine import EngineError, Unsupported

log = logging.getLogger(__name__)


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


class SandboxFailed(EngineError):
    """The sandbox pod would not start, or kubedock's program in it failed (a 500)."""


# Pulling kubedock's image on a node that has never run it is the longest part.
_START_SECONDS = 120
_POLL_SECONDS = 0.1
_DELETE_SECONDS = 30
# The pod's state directory (an emptyDir): the root filesystem and its manifest.
_STATE_DIR = "/.kubedock/build"
# Enough of kubedock's own error output to say why an operation failed.
_ERROR_TAIL = 4096


@contextlib.asynccontextmanager
async def open_sandbox(cluster: kube.ClusterBoundary,
                       settings: kube.PodSettings) -> AsyncIterator[Sandbox]:
    """A sandbox in a pod of kubedock's own image (`settings.init_image`), labelled as the
    instance's other pods (so the reaper and exit cleanup take it too), made on first use.
    Leaving deletes the pod, also when cancelled."""
    sandbox = _PodSandbox(cluster, settings)
    try:
        yield sandbox
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(_DELETE_SECONDS):
            await sandbox.delete()


def sandbox_pod(settings: kube.PodSettings, sandbox_id: str) -> dict[str, Any]:
    """The sandbox's pod: kubedock idling as root with the container runtime's default
    capabilities (chroot and mknod are among them), the root filesystem in an emptyDir."""
    if not settings.init_image:
        raise Unsupported("RUN needs kubedock's own image (--initimage) for its sandbox")
    spec = kube.ContainerSpec(
        container_id=sandbox_id, name="build", image=settings.init_image,
        entrypoint=(kube.TOOLBOX_PROGRAM,), cmd=("toolbox", "idle"), user="0",
        mounts=(kube.MountSpec(_STATE_DIR, "volume"),),
        # Deleted when done: nothing is there to wait for.
        stop_grace_seconds=0,
    )
    return kube.pod_manifest(spec, settings)


class _PodSandbox:
    def __init__(self, cluster: kube.ClusterBoundary, settings: kube.PodSettings) -> None:
        self._cluster = cluster
        self._settings = settings
        self._pod: str | None = None
        self._creating = trio.Lock()

    async def reset(self) -> None:
        if self._pod is not None:  # a new pod's root is empty already
            await self._call("reset")

    async def apply_layer(self, source: AsyncIterable[bytes]) -> None:
        async def send(channel: kube.ExecChannel) -> None:
            # A session that ended early is reported by its exit code and what it said.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                async for chunk in source:
                    await channel.send_stdin(chunk)
                await channel.close_stdin()

        await self._call("apply", send=send)

    async def run(self, command: StepCommand, output: Callable[[bytes], Awaitable[None]]) -> int:
        step = json.dumps({"argv": command.argv, "env": command.env, "user": command.user,
                           "workdir": command.workdir})
        pod = await self._ensure_pod()
        async with self._cluster.exec(pod, _buildstep_argv("run", step)) as channel:
            while (message := await channel.receive()) is not None:
                await output(message[1])
        if channel.exit_code is None:
            raise SandboxFailed(f"build step ended without an exit code: "
                                f"{channel.status_message or 'connection lost'}")
        return channel.exit_code

    async def snapshot(self, sink: Callable[[bytes], Awaitable[None]]) -> None:
        await self._call("snapshot", sink=sink)

    async def delete(self) -> None:
        if self._pod is None:
            return
        try:
            await self._cluster.delete_pod(self._pod, grace_seconds=0)
        except kube.KubeError as error:
            # Labelled as the instance's pods are, it goes with them at the latest.
            log.warning("could not delete build sandbox pod %s: %s", self._pod, error)
        self._pod = None

    async def _call(self, operation: str, *,
                    send: Callable[[kube.ExecChannel], Awaitable[None]] | None = None,
                    sink: Callable[[bytes], Awaitable[None]] | None = None) -> None:
        """One `kubedock buildstep` operation: `send` feeds its stdin, `sink` takes its
        stdout; a non-zero exit is `SandboxFailed` with what it said on stderr."""
        pod = await self._ensure_pod()
        errors = bytearray()
        async with self._cluster.exec(pod, _buildstep_argv(operation), stdin=send is not None
                                      ) as channel, trio.open_nursery() as nursery:
            if send is not None:
                nursery.start_soon(send, channel)
            while (message := await channel.receive()) is not None:
                if message[0] == 1 and sink is not None:
                    await sink(message[1])
                else:
                    errors.extend(message[1])
                    del errors[:-_ERROR_TAIL]
        if channel.exit_code != 0:
            why = errors.decode(errors="replace").strip() or channel.status_message \
                or f"exit code {channel.exit_code}"
            raise SandboxFailed(f"build sandbox {operation} failed: {why}")

    async def _ensure_pod(self) -> str:
        async with self._creating:
            if self._pod is None:
                manifest = sandbox_pod(self._settings, secrets.token_hex(32))
                created = await self._cluster.create_pod(manifest)
                self._pod = str(created["metadata"]["name"])
                await self._wait_running(self._pod)
            return self._pod

    async def _wait_running(self, pod: str) -> None:
        observation = None
        with trio.move_on_after(_START_SECONDS):
            while True:
                observation = kube.observe(await self._cluster.get_object(kube.PODS, pod))
                if observation.fatal or observation.state == "terminated":
                    why = f"{observation.reason or 'failed'}: {observation.message or ''}"
                    raise SandboxFailed(f"build sandbox pod {pod} did not start: "
                                        f"{why.rstrip(': ')}")
                if observation.state == "running":
                    return
                await trio.sleep(_POLL_SECONDS)
        waiting = observation.reason if observation is not None else None
        raise SandboxFailed(f"build sandbox pod {pod} did not start within {_START_SECONDS} s"
                            + (f" ({waiting})" if waiting else ""))


def _buildstep_argv(*args: str) -> list[str]:
    return [kube.TOOLBOX_PROGRAM, "buildstep", _STATE_DIR, *args]
