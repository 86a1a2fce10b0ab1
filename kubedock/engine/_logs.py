"""Container logs with stdout and stderr kept apart.

Kubernetes keeps both streams in one log; on clusters with the ``PodLogsQuerySplitStreams``
feature the log API returns each stream on its own (``stream=Stdout|Stderr``). kubedock asks
for each wanted stream with timestamps, merges them in time order and strips the timestamps
unless the client asked for them. Without the feature every line is reported as stdout.
TTY containers have a single raw stream, as in Docker, with the terminal's CR LF line ends.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Literal, TypeVar

import attrs
import trio

from .. import kube
from ._records import Container

T = TypeVar("T")

log = logging.getLogger(__name__)

STDOUT, STDERR = 1, 2
_STREAM_NAMES: dict[int, Literal["Stdout", "Stderr"]] = {STDOUT: "Stdout", STDERR: "Stderr"}
_SNAPSHOT_LIMIT = 16 * 1024 * 1024
# A terminal ends lines with CR LF, which Docker logs as printed; the runtime's log keeps lines
# without their ending, which the log API gives back as LF.
_TERMINAL_LINE_END = b"\r\n"


@attrs.frozen
class LogRequest:
    stdout: bool = True
    stderr: bool = True
    follow: bool = False
    timestamps: bool = False
    since: float | None = None  # unix seconds, may be fractional
    until: float | None = None
    tail: int | None = None  # None: all


# A line whose time stamp cannot be read sorts last and passes every time filter.
_NO_STAMP = 2**63


@attrs.frozen
class _Line:
    at: int  # nanoseconds since the epoch, as Kubernetes records them
    stamp: bytes
    text: bytes


def _split_timestamp(line: bytes) -> _Line:
    stamp, _, text = line.partition(b" ")
    at = _nanoseconds(stamp.decode(errors="replace"))
    if at is None:
        return _Line(_NO_STAMP, b"", line)
    return _Line(at, stamp, text)


def _nanoseconds(stamp: str) -> int | None:
    """RFC 3339 with up to nanoseconds, exactly: lines of one write often share the
    microsecond, and must still keep their order and identity."""
    head, dot, fraction = stamp.partition(".")
    digits = fraction.rstrip("Z") if dot else ""
    zone = fraction[len(digits):] if dot else ""
    if not digits.isdigit() and dot:
        return None
    try:
        seconds = datetime.fromisoformat((head + zone).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return int(seconds) * 1_000_000_000 + int(digits[:9].ljust(9, "0") if dot else 0)


def _to_nanoseconds(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


def _wanted(line: _Line, request: LogRequest) -> bool:
    if line.at == _NO_STAMP:
        return True
    if request.since is not None and line.at < _to_nanoseconds(request.since):
        return False
    return request.until is None or line.at <= _to_nanoseconds(request.until)


def _render(line: _Line, request: LogRequest) -> bytes:
    return line.stamp + b" " + line.text if request.timestamps else line.text


@attrs.define
class _Position:
    """Where a stream has been read up to: the last time stamp and how many lines with that
    very stamp were read, so that reading again from that time skips exactly those."""

    at: int = -1
    lines_at: int = 0

    def advance(self, line: _Line) -> None:
        if line.at == _NO_STAMP:
            return
        if line.at == self.at:
            self.lines_at += 1
        else:
            self.at, self.lines_at = line.at, 1

    def skipper(self) -> Callable[[_Line], bool]:
        """A filter for a new read: true for the lines this position has already covered."""
        at, remaining = self.at, self.lines_at

        def seen(line: _Line) -> bool:
            nonlocal remaining
            if line.at < at:
                return True
            if line.at == at and remaining > 0:
                remaining -= 1
                return True
            return False

        return seen


# The latest moment a datetime holds: a later `since` (Docker takes any 64-bit seconds) asks
# for no lines, as this one does.
_LATEST = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())


async def _lines(
    cluster: kube.ClusterBoundary, pod: str, stream: Literal["Stdout", "Stderr"] | None, *,
    follow: bool, tail: int | None, since: float | None, line_end: bytes = b"\n",
) -> AsyncIterator[_Line]:
    # The API server takes whole seconds; the finer part is filtered here.
    since_time = (datetime.fromtimestamp(min(math.floor(since), _LATEST), UTC)
                  if since and since > 0 else None)
    async with cluster.logs(
        pod, follow=follow, timestamps=True, tail_lines=tail,
        since_seconds=None, since_time=since_time, stream=stream,
    ) as chunks:
        pending = b""
        async for chunk in chunks:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                yield _split_timestamp(raw + line_end)
        if pending:
            yield _split_timestamp(pending)


async def send_logs(
    cluster: kube.ClusterBoundary, container: Container, request: LogRequest,
    send: trio.MemorySendChannel[tuple[int, bytes]], *, earlier_runs: bool = True,
) -> None:
    """Send ``(stream, bytes)`` for a container's logs; stream 1 is stdout, 2 stderr. Without
    `earlier_runs`, only the logs of its last pod."""
    async with send:
        # The reader may go away at any time; that ends the stream, quietly.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await _send_logs(cluster, container, request, send, earlier_runs=earlier_runs)


def _kept(logs: tuple[tuple[int, bytes], ...], streams: list[int],
          request: LogRequest) -> list[tuple[int, int, bytes]]:
    """Kept (stream, stamped line) chunks as the request wants them: (time, stream, data)."""
    kept = []
    for stream, data in logs:
        line = _split_timestamp(data)
        if stream in streams and _wanted(line, request):
            kept.append((line.at, stream, _render(line, request)))
    return kept


async def _send_logs(
    cluster: kube.ClusterBoundary, container: Container, request: LogRequest,
    send: trio.MemorySendChannel[tuple[int, bytes]], *, earlier_runs: bool,
) -> None:
    streams = [s for s, wanted in ((STDOUT, request.stdout), (STDERR, request.stderr)) if wanted]
    # What the container's earlier runs (earlier pods) logged comes first, as Docker keeps a
    # container's log across its restarts.
    earlier = _kept(container.earlier_logs, streams, request) if earlier_runs else []
    if container.saved_logs is not None:
        saved = _kept(container.saved_logs, streams, request)
        for _, stream, data in _tail(earlier + saved, request.tail):
            await send.send((stream, data))
        return
    pod = container.pod_name
    if pod is None or not streams:
        for _, stream, data in _tail(earlier, request.tail):
            await send.send((stream, data))
        return
    line_end = _TERMINAL_LINE_END if container.config.tty else b"\n"
    sources: list[int | None] = list(streams)
    if container.config.tty or not await cluster.split_streams_supported():
        if STDOUT not in streams and not container.config.tty:
            return
        if not earlier:  # the API server tails the one stream
            await _pump_each(cluster, container, pod, [None], request, send,
                             {None: _Position()}, line_end, tail=request.tail)
            return
        sources = [None]
    # Kubernetes cannot tail one stream of a log, so history is read whole, merged in time order
    # and tailed here; following then resumes each stream after its last line read.
    positions = {source: _Position() for source in sources}
    if not request.follow or request.tail is not None or earlier:
        history: list[list[tuple[int, int, bytes]]] = []
        for source in sources:
            lines = []
            async for line in _lines(cluster, pod, _STREAM_NAMES.get(source or 0), follow=False,
                                     tail=None, since=request.since, line_end=line_end):
                positions[source].advance(line)
                if _wanted(line, request):
                    lines.append((line.at, source or STDOUT, _render(line, request)))
            history.append(lines)
        merged = earlier + list(heapq.merge(*history, key=lambda entry: entry[0]))
        for _, stream, data in _tail(merged, request.tail):
            await send.send((stream, data))
        if not request.follow:
            return
    await _pump_each(cluster, container, pod, sources, request, send, positions, line_end)


async def _pump_each(
    cluster: kube.ClusterBoundary, container: Container, pod: str, sources: list[int | None],
    request: LogRequest, send: trio.MemorySendChannel[tuple[int, bytes]],
    positions: dict[int | None, _Position], line_end: bytes, *, tail: int | None = None,
) -> None:
    """`_pump` each source at once, from its position."""
    if not (request.follow and container.supervisor is not None):
        await _pump_sources(cluster, container, pod, sources, request, send, positions,
                            line_end, tail=tail)
        return
    container.log_followers += 1
    try:
        await _pump_sources(cluster, container, pod, sources, request, send, positions,
                            line_end, tail=tail)
    finally:
        container.log_followers -= 1
        container.notify()


async def _pump_sources(
    cluster: kube.ClusterBoundary, container: Container, pod: str, sources: list[int | None],
    request: LogRequest, send: trio.MemorySendChannel[tuple[int, bytes]],
    positions: dict[int | None, _Position], line_end: bytes, *, tail: int | None,
) -> None:
    async with trio.open_nursery() as nursery:
        if request.follow and container.supervisor is not None:
            # A supervised pod outlives the program, and so does its log stream: the follow
            # ends when the program has, and what the log holds up to then is read after.
            nursery.start_soon(cancel_at_exit, container, pod, nursery.cancel_scope)
        async with trio.open_nursery() as pumps:
            for source in sources:
                pumps.start_soon(partial(_pump, cluster, pod, source, request, send, tail=tail,
                                         position=positions[source], line_end=line_end))
        nursery.cancel_scope.cancel()
    if not (request.follow and container.supervisor is not None):
        return
    rest = attrs.evolve(request, follow=False)
    for source in sources:
        position = positions[source]
        await _pump(cluster, pod, source, rest, send, position=position, line_end=line_end,
                    tail=tail if position.at < 0 else None)


async def cancel_at_exit(container: Container, pod: str, scope: trio.CancelScope) -> None:
    """Cancel `scope` once the container no longer runs in `pod`."""
    while container.status == "running" and container.pod_name == pod:
        await container.changed.wait()
    scope.cancel()


def _tail(items: list[T], tail: int | None) -> list[T]:
    if tail is None:
        return items
    return items[-tail:] if tail > 0 else []


# How often a broken follow tries the API server again.
_RESUME_SECONDS = 1.0


async def _pump(
    cluster: kube.ClusterBoundary, pod: str, stream: int | None, request: LogRequest,
    send: trio.MemorySendChannel[tuple[int, bytes]], *, tail: int | None = None,
    position: _Position | None = None, line_end: bytes = b"\n",
) -> None:
    name = _STREAM_NAMES[stream] if stream is not None else None
    position = position or _Position()
    # A tail that showed nothing (a quiet follow that went silent too long ends like a broken
    # one) resumes from when it began, not from the start of the log. By kubedock's clock: the
    # node's may differ a little.
    began, tailed = datetime.now(UTC).timestamp(), False
    while True:
        since = request.since
        if position.at >= 0:
            since = max(since or 0, position.at / 1_000_000_000)
        elif tailed:
            since = max(since or 0, began)
        seen = position.skipper()
        try:
            async for line in _lines(cluster, pod, name, follow=request.follow, tail=tail,
                                     since=since, line_end=line_end):
                if seen(line):
                    continue
                position.advance(line)
                if _wanted(line, request):
                    await send.send((stream or STDOUT, _render(line, request)))
            return
        except kube.ClusterUnreachable:
            if not request.follow:
                raise
        # A follow outlives API server restarts: resume after the last line read.
        tailed, tail = tailed or tail is not None, None
        await trio.sleep(_RESUME_SECONDS)


async def snapshot_logs(
    cluster: kube.ClusterBoundary, container: Container
) -> tuple[tuple[int, bytes], ...]:
    """Everything logged so far, with time stamps, bounded, for a pod about to be deleted."""
    send, receive = trio.open_memory_channel[tuple[int, bytes]](64)
    chunks = []
    with trio.move_on_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(send_logs, cluster, container,
                                       LogRequest(timestamps=True), send, earlier_runs=False))
            async with receive:
                async for chunk in receive:
                    chunks.append(chunk)
    return bounded(chunks)


def bounded(chunks: Iterable[tuple[int, bytes]]) -> tuple[tuple[int, bytes], ...]:
    """The latest chunks, at most `_SNAPSHOT_LIMIT` bytes of them."""
    kept: collections.deque[tuple[int, bytes]] = collections.deque()
    size = 0
    for stream, data in chunks:
        kept.append((stream, data))
        size += len(data)
        while size > _SNAPSHOT_LIMIT:
            size -= len(kept.popleft()[1])
    return tuple(kept)


async def stream_logs(
    cluster: kube.ClusterBoundary, nursery: trio.Nursery, container: Container,
    request: LogRequest,
) -> AsyncIterator[tuple[int, bytes]]:
    """Yield ``(stream, bytes)`` log chunks.

    The reader runs in `nursery` (the engine's) under its own cancel scope, so a client that
    goes away mid-stream (the generator is closed) also closes the Kubernetes log stream.
    """
    send, receive = trio.open_memory_channel[tuple[int, bytes]](64)
    scope = trio.CancelScope()
    failures: list[Exception] = []

    async def produce() -> None:
        with scope:
            try:
                await send_logs(cluster, container, request, send)
            except Exception as error:  # handed to the reader, which owns the request
                failures.append(error)

    nursery.start_soon(produce)
    try:
        async with receive:
            async for item in receive:
                yield item
    finally:
        scope.cancel()
    if failures:
        # The response is already under way, so a refusal or a lost API server can only
        # end the stream; other failures are bugs and surface as such.
        _lost, rest = ExceptionGroup("logs", failures).split(kube.KubeError)
        if rest is not None:
            raise failures[0]
        log.warning("log stream of container %s ended: %s", container.short_id,
                    _first_leaf(failures[0]))


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
