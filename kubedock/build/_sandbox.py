"""The build sandbox: where a Dockerfile's `RUN` executes.

A sandbox holds one stage's root filesystem. Layers are applied onto it, a command runs
chrooted in it, and a snapshot returns what changed since the last layer, snapshot or reset as
a new layer. Only `RUN` needs it; everything else a build does is computed by kubedock itself.

The real one is a pod of kubedock's own image; one exec session of `kubedock buildstep ...
serve` there carries every operation (see `kubedock.podside._buildstep`), so that each costs a
round trip rather than the start of kubedock's program in the pod.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import attrs
import trio

from .. import kube
from ..engine import EngineError, Unsupported
from ..podside import buildwire, chunks

log = logging.getLogger(__name__)


Output = Callable[[bytes], Awaitable[None]]


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
    # Names and addresses added to the step's /etc/hosts (Docker's --add-host).
    extra_hosts: tuple[tuple[str, str], ...] = ()


class Sandbox(Protocol):
    async def reset(self) -> None:
        """Empty the root filesystem (the start of a stage)."""

    async def apply_layer(self, source: AsyncIterable[bytes]) -> None:
        """Unpack one layer tar (plain or gzip, told by its first bytes), honouring the OCI
        whiteouts `.wh.<name>` and `.wh..wh..opq`."""

    async def run(self, command: StepCommand, stdout: Output, stderr: Output) -> int:
        """Run the command; its stdout and stderr go to `stdout` and `stderr` as produced
        (both to `stdout` from a pod of a kubedock before the two were kept apart). Returns
        the exit code; raises `StepNotStarted` when the program cannot be started."""

    async def snapshot(self, sink: Callable[[bytes], Awaitable[None]]) -> None:
        """Write a plain tar of every change since the last `apply_layer`, `snapshot` or
        `reset` to `sink`: added and changed entries with their full metadata, deletions as
        whiteouts, in a deterministic order. No change gives a valid empty tar."""


SandboxFactory = Callable[[], AbstractAsyncContextManager[Sandbox]]


class StepNotStarted(Exception):
    """A step's program did not start (not found, not executable, no such user or working
    directory); `message` is what Docker's runtime says then."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
# `kubedock buildstep` says a step's program did not start in Docker's runtime's words, as the
# step's only output line, and exits 126 or 127.
_NOT_STARTED = b"failed to create shim task: OCI runtime create failed: "
_NOT_STARTED_CODES = (126, 127)
_NOT_STARTED_MAX = 4096


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
            await sandbox.close()


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
        self._session: kube.ExecChannel | None = None
        self._closing = contextlib.AsyncExitStack()
        self._frames = buildwire.FrameReader()
        self._errors = bytearray()  # what kubedock's program in the pod said on stderr
        self._lock = trio.Lock()
        # Why nothing more can be asked: an operation cut short left the session mid-way, or
        # the session ended.
        self._broken: str | None = None

    async def reset(self) -> None:
        if self._pod is not None:  # a new pod's root is empty already
            await self._operate("reset")

    async def apply_layer(self, source: AsyncIterable[bytes]) -> None:
        await self._operate("apply", layer=source)

    async def run(self, command: StepCommand, stdout: Output, stderr: Output) -> int:
        watch = _StartWatch(stdout, stderr)
        code = await self._operate("run", sink=watch.stdout, errors=watch.stderr,
                                   argv=command.argv, env=command.env, user=command.user,
                                   workdir=command.workdir, stderr_apart=True,
                                   extra_hosts=command.extra_hosts)
        await watch.end(code)
        return code

    async def snapshot(self, sink: Callable[[bytes], Awaitable[None]]) -> None:
        await self._operate("snapshot", sink=sink)

    async def close(self) -> None:
        try:
            await self._closing.aclose()
        finally:
            if self._pod is not None:
                await self._delete(self._pod)
                self._pod = None

    async def _delete(self, pod: str) -> None:
        try:
            await self._cluster.delete_pod(pod, grace_seconds=0)
        except kube.KubeError as error:
            # Labelled as the instance's pods are, it goes with them at the latest.
            log.warning("could not delete build sandbox pod %s: %s", pod, error)

    async def _operate(self, op: str, *, layer: AsyncIterable[bytes] | None = None,
                       sink: Output | None = None, errors: Output | None = None,
                       **fields: Any) -> int:
        """One request of the session, followed by `layer` in chunks; `sink` takes the
        output, `errors` a step's stderr. The step's exit code for `run`; a failure of any
        other is `SandboxFailed`."""
        async with self._lock:
            if self._broken is not None:
                raise SandboxFailed(self._broken)
            self._broken = f"the build sandbox was interrupted during {op}"
            try:
                session = await self._open()
            except Exception as error:
                # One pod per sandbox: the one that did not start is not tried again.
                self._broken = str(error)
                raise
            # The pod answers once it has read the whole request, so sending all of it before
            # reading cannot fill a pipe. A session that ended meanwhile is told by what it
            # said (see `_reply`).
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await session.send_stdin(buildwire.request(op, **fields))
                if layer is not None:
                    async for data in layer:
                        if data:
                            await session.send_stdin(chunks.chunked(data))
                    await session.send_stdin(chunks.END_OF_CHUNKS)
            status, failure = await self._reply(session, sink, errors)
            self._broken = None
        if op != "run" and status != 0:
            raise SandboxFailed(f"build sandbox {op} failed: {failure or f'status {status}'}")
        return status

    async def _reply(self, session: kube.ExecChannel, sink: Output | None,
                     errors: Output | None) -> tuple[int, str]:
        failure = bytearray()
        while True:
            try:
                frame = self._frames.next()
            except buildwire.SessionError as error:
                self._broken = f"the build sandbox session broke: {error}"
                raise SandboxFailed(self._broken) from None
            if frame is None:
                message = await session.receive()
                if message is None:
                    said = self._errors.decode(errors="replace").strip()
                    self._broken = ("the build sandbox session ended: "
                                    f"{said or session.status_message or 'no reason given'}")
                    raise SandboxFailed(self._broken)
                if message[0] == 1:
                    self._frames.feed(message[1])
                else:
                    self._errors.extend(message[1])
                    del self._errors[:-_ERROR_TAIL]
                continue
            kind, payload = frame
            if kind == buildwire.OUTPUT and sink is not None:
                await sink(payload)
            elif kind == buildwire.STDERR and errors is not None:
                await errors(payload)
            elif kind == buildwire.ERROR:
                failure.extend(payload)
            elif kind == buildwire.END:
                return buildwire.end_status(payload), failure.decode(errors="replace")

    async def _open(self) -> kube.ExecChannel:
        if self._session is None:
            manifest = sandbox_pod(self._settings, secrets.token_hex(32))
            created = await self._cluster.create_pod(manifest)
            self._pod = str(created["metadata"]["name"])
            await self._wait_running(self._pod)
            self._session = await self._closing.enter_async_context(self._cluster.exec(
                self._pod, [kube.TOOLBOX_PROGRAM, "buildstep", _STATE_DIR, "serve"],
                stdin=True))
        return self._session

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


class _StartWatch:
    """A step's output, held back while it may still be the line that says the program did
    not start: Docker shows that line as the build's error, not as output. The line comes on
    stderr (on stdout from a pod of an earlier kubedock), so what is held is both streams'
    pieces, in the order they came."""

    def __init__(self, stdout: Output, stderr: Output) -> None:
        self._sinks = (stdout, stderr)
        self._held: list[tuple[int, bytes]] | None = []
        self._text = bytearray()

    async def stdout(self, data: bytes) -> None:
        await self._feed(0, data)

    async def stderr(self, data: bytes) -> None:
        await self._feed(1, data)

    async def _feed(self, stream: int, data: bytes) -> None:
        if self._held is None:
            await self._sinks[stream](data)
            return
        self._held.append((stream, data))
        self._text += data
        line, _, rest = self._text.partition(b"\n")
        if (rest or len(self._text) > _NOT_STARTED_MAX
                or not line.startswith(_NOT_STARTED[:len(line)])):
            await self._release()

    async def end(self, code: int) -> None:
        """Raises `StepNotStarted` when the output was that line alone."""
        text = self._text
        if (self._held is not None and code in _NOT_STARTED_CODES
                and text.startswith(_NOT_STARTED) and text.endswith(b"\n")):
            raise StepNotStarted(text[:-1].decode(errors="replace"))
        await self._release()

    async def _release(self) -> None:
        held, self._held = self._held or [], None
        for stream, data in held:
            await self._sinks[stream](data)
