"""Exec instances: ``docker exec`` run through the Kubernetes exec API.

Kubernetes runs an argv in a container and nothing more. Docker's exec also takes environment
variables and a working directory; kubedock wraps the command in the image's ``env`` (and
``sh`` for a working directory) to provide them. Images without those tools get the exit code
of a command that could not be started. An exec as another user than the container's runs
through kubedock's toolbox beside the container (see `_toolbox`), which needs no tool of the
image.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from contextlib import AbstractAsyncContextManager

import attrs
import trio

from .. import kube, wire
from ._errors import Conflict, InvalidParameter, NoSuchExec, Unsupported
from ._records import Container, TerminalSize
from ._toolbox import Toolbox

log = logging.getLogger(__name__)

_WORKDIR_SCRIPT = 'cd -- "$0" || exit 126; exec env "$@"'
# What Docker 20.10 writes when a client detaches from an exec (an error of its own making).
_DETACHED = "exec attach failed: error on attach stdin: read escape sequence"
# Said when the API server ends the session without the process's exit status: the client
# would otherwise take a cut connection for the process's own end.
_BROKE_OFF = ("kubedock: the exec session broke off (the connection through the Kubernetes "
              "API server ended); the process's exit code is unknown")


@attrs.frozen
class ExecConfig:
    cmd: tuple[str, ...]
    env: tuple[str, ...] = ()
    working_dir: str | None = None
    user: str | None = None
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = True
    attach_stderr: bool = True
    privileged: bool = False
    # Docker's key spec (None: its default), checked when the exec is created.
    detach_keys: str | None = attrs.field(default=None, validator=lambda _record, _field, spec:
                                          detach_sequence(spec, "escape"))


def detach_sequence(spec: str | None, kind: str) -> bytes:
    """The bytes of a detach key spec (None: Docker's default), or Docker's refusal."""
    try:
        return wire.parse_detach_keys(spec or "")
    except wire.WireFormatError:
        raise InvalidParameter(f"Invalid {kind} keys ({spec}) provided") from None


@attrs.define(eq=False)
class Exec:
    id: str
    container: Container
    config: ExecConfig
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    finished: trio.Event = attrs.field(factory=trio.Event)
    terminal: TerminalSize = attrs.field(factory=TerminalSize)
    # trio clock times: when the process ended, and when a client first read the result.
    finished_at: float | None = None
    read_at: float | None = None

    def argv(self) -> list[str]:
        config = self.config
        if config.working_dir:
            return ["/bin/sh", "-c", _WORKDIR_SCRIPT, config.working_dir, *config.env,
                    *config.cmd]
        if config.env:
            return ["env", *config.env, *config.cmd]
        return list(config.cmd)

    @property
    def needs_toolbox(self) -> bool:
        """Kubernetes runs an exec as the container's user; another one takes the toolbox."""
        wanted = self.config.user
        if not wanted:
            return False
        config = self.container.config
        # The pod runs as the request's user, else as the image's (unknown without its config).
        running = config.user or (config.image_config.user if config.image_config else None)
        if running is None:
            return True
        return wanted != running and not (_is_root(wanted) and _is_root(running))

    def toolbox_args(self) -> list[str]:
        config = self.config
        return ["exec", config.user or "", config.working_dir or "", *config.env, "--",
                *config.cmd]

    def mark_read(self) -> None:
        """Note that a client has seen the outcome (the reaper may drop the record later)."""
        if self.finished_at is not None and self.read_at is None:
            self.read_at = trio.current_time()



def _is_root(user: str) -> bool:
    """Whether a user spec means uid 0 with group 0 (root is uid 0 in every image; a container
    with no user runs as root). Clients such as the dev containers CLI exec with `-u root`."""
    name, _, group = user.partition(":")
    return name in ("", "0", "root") and group in ("", "0", "root")


class ExecStore:
    def __init__(self) -> None:
        self._execs: dict[str, Exec] = {}

    def create(self, container: Container, config: ExecConfig) -> Exec:
        if container.restarting:
            raise Conflict(f"Container {container.id} is restarting, wait until the container "
                           "is running")
        if container.status != "running":
            raise Conflict(f"Container {container.id} is not running")
        if not config.cmd:
            raise InvalidParameter("No exec command specified")
        if config.privileged:
            raise Unsupported("privileged exec is not supported by kubedock: pods run "
                              "unprivileged")
        record = Exec(secrets.token_hex(32), container, config)
        self._execs[record.id] = record
        return record

    def get(self, exec_id: str) -> Exec:
        try:
            return self._execs[exec_id]
        except KeyError:
            raise NoSuchExec(exec_id) from None

    def reap(self, *, read_before: float, finished_before: float) -> None:
        """Drop finished execs read before `read_before`, or never read and finished before
        `finished_before`."""
        for record in list(self._execs.values()):
            if (record.read_at is not None and record.read_at < read_before) or (
                record.finished_at is not None and record.finished_at < finished_before
            ):
                del self._execs[record.id]

    def forget_container(self, container: Container) -> None:
        for exec_id in [e.id for e in self._execs.values() if e.container is container]:
            del self._execs[exec_id]


def claim_exec(record: Exec) -> None:
    """Mark an exec started; refuse one whose container is not running or that was started
    already (Docker refuses a detached start before it answers)."""
    container = record.container
    if container.pod_name is None or container.status != "running":
        raise Conflict(f"Container {container.id} is not running")
    if record.started:
        raise Conflict(f"Error: Exec command {record.id} has already run")
    record.started = record.running = True


async def run_exec(
    cluster: kube.ClusterBoundary, record: Exec, stream: trio.abc.HalfCloseableStream | None, *,
    tty: bool, toolbox: Toolbox | None = None,
) -> None:
    """Run an exec claimed by `claim_exec`, piping the client's ``stream`` (None: detached) to
    the process.

    As with Docker, the exec's create config says whether the process has a terminal, and
    ``tty`` (the start request's) whether the stream is raw rather than multiplexed (without
    stderr, then). The exit code is recorded before the client's stream is closed, so an
    inspect that follows the end of the stream already reads ``Running: false`` and the code.
    """
    pod = record.container.pod_name
    config = record.config
    terminal = config.tty
    attach_stdin = config.attach_stdin and stream is not None
    want_stdout = stream is not None and config.attach_stdout
    want_stderr = stream is not None and config.attach_stderr and not (tty or terminal)
    try:
        if pod is None:  # gone since the claim
            raise Conflict(f"Container {record.container.id} is not running")
        async with _session(
            cluster, toolbox, record, pod, stdin=attach_stdin,
            # Kubernetes refuses an exec without any stream; stdout is then read and dropped.
            stdout=want_stdout or not (attach_stdin or want_stderr),
            stderr=want_stderr, tty=terminal,
        ) as channel, trio.open_nursery() as nursery:
            if attach_stdin and stream is not None:
                nursery.start_soon(_stdin_until_detached, stream, channel,
                                   detach_sequence(config.detach_keys, "escape")
                                   if terminal else None, tty)
            if terminal:
                nursery.start_soon(record.terminal.follow, channel)
            await _pump_output(channel, stream if (want_stdout or want_stderr) else None, tty,
                               stdout=want_stdout, stderr=want_stderr)
            nursery.cancel_scope.cancel()
        # No final status means the session broke off before the process ended.
        record.exit_code = channel.exit_code if channel.exit_code is not None else -1
        if channel.start_failure is not None and stream is not None:
            await _send_line(stream, channel.start_failure, tty)
        elif channel.exit_code is None and stream is not None:
            log.warning("exec %s in container %s: %s", record.id[:12],
                        record.container.short_id, _BROKE_OFF)
            await _send_line(stream, _BROKE_OFF, tty, to=wire.Stream.STDERR)
    except BaseException as error:
        if record.exit_code is None:
            record.exit_code = 126
        lost = _cluster_failure(error) if isinstance(error, Exception) else None
        if lost is not None and stream is not None:
            # The answer's status went out with the stream's head: the client reads why here.
            log.warning("exec %s in container %s failed: %s", record.id[:12],
                        record.container.short_id, lost)
            await _send_line(stream, f"kubedock: exec failed: {lost}", tty,
                             to=wire.Stream.STDERR)
        raise
    finally:
        record.running = False
        record.finished_at = trio.current_time()
        record.finished.set()
        if stream is not None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.aclose()


def _cluster_failure(error: BaseException) -> kube.KubeError | None:
    """The cluster's failure among `error` and the errors it groups, if any."""
    if isinstance(error, kube.KubeError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if (found := _cluster_failure(inner)) is not None:
                return found
    return None


def _session(cluster: kube.ClusterBoundary, toolbox: Toolbox | None, record: Exec, pod: str, *,
             stdin: bool, stdout: bool, stderr: bool, tty: bool,
             ) -> AbstractAsyncContextManager[kube.ExecChannel]:
    if toolbox is not None and record.needs_toolbox:
        return toolbox.exec(record.container, record.toolbox_args(), stdin=stdin, stdout=stdout,
                            stderr=stderr, tty=tty)
    return cluster.exec(pod, record.argv(), stdin=stdin, stdout=stdout, stderr=stderr, tty=tty)


async def _send_line(stream: trio.abc.HalfCloseableStream, text: str, tty: bool,
                     to: wire.Stream = wire.Stream.STDOUT) -> None:
    # Docker writes why a session failed to its stdout, as a terminal line whether or not
    # there is a terminal.
    line = f"{text}\r\n".encode()
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(line if tty else wire.frame(to, line))


async def _stdin_until_detached(stream: trio.abc.HalfCloseableStream, channel: kube.ExecChannel,
                                detach_keys: bytes | None, tty: bool) -> None:
    if await pump_stdin(stream, channel, detach_keys):
        # As Docker: the session ends with this line, the process runs on (its output is read
        # and dropped, and inspect tells when it ends).
        await _send_line(stream, _DETACHED, tty)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.aclose()


async def pump_stdin(stream: trio.abc.HalfCloseableStream, channel: kube.ExecChannel,
                     detach_keys: bytes | None = None) -> bool:
    """Copy the client's input to the process, then close its stdin.

    With `detach_keys`, input ends at that key sequence instead, which never reaches the
    process, and the process's stdin stays open. Returns whether the client detached.
    """
    scanner = wire.DetachScanner(detach_keys) if detach_keys else None
    try:
        while data := await stream.receive_some(64 * 1024):
            if scanner is not None:
                data = scanner.feed(bytes(data))
            if data:
                await channel.send_stdin(bytes(data))
            if scanner is not None and scanner.detached:
                return True
        if scanner is not None and (held := scanner.flush()):
            await channel.send_stdin(held)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    await channel.close_stdin()
    return False


async def _pump_output(
    channel: kube.ExecChannel, stream: trio.abc.HalfCloseableStream | None, tty: bool,
    *, stdout: bool, stderr: bool,
) -> None:
    while (message := await channel.receive()) is not None:
        number, data = message
        if stream is None or (number == 1 and not stdout) or (number == 2 and not stderr):
            continue
        payload = data if tty else wire.frame(wire.Stream(number), data)
        try:
            await stream.send_all(payload)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # The client went away. As with Docker the process runs on (inspect says so) and
            # its exit code is recorded; its output has nowhere to go. The session ends with
            # the process, or with the container.
            stream = None
