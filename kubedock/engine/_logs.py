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
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from typing import Literal, TypeVar

import attrs
import trio

from .. import kube
from ._records import Container

T = TypeVar("T")

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


@attrs.frozen
class _Line:
    at: float
    stamp: bytes
    text: bytes


def _split_timestamp(line: bytes) -> _Line:
    stamp, _, text = line.partition(b" ")
    try:
        at = datetime.fromisoformat(_trim_nanoseconds(stamp.decode())).timestamp()
    except ValueError:
        return _Line(math.inf, b"", line)
    return _Line(at, stamp, text)


def _trim_nanoseconds(stamp: str) -> str:
    # fromisoformat takes at most microseconds; Kubernetes writes nanoseconds.
    head, dot, fraction = stamp.partition(".")
    if not dot:
        return stamp
    digits = fraction.rstrip("Z")
    suffix = fraction[len(digits):]
    return f"{head}.{digits[:6]}{suffix}".replace("Z", "+00:00")


def _wanted(line: _Line, request: LogRequest) -> bool:
    if request.since is not None and line.at < request.since:
        return False
    return request.until is None or line.at <= request.until


def _render(line: _Line, request: LogRequest) -> bytes:
    return line.stamp + b" " + line.text if request.timestamps else line.text


async def _lines(
    cluster: kube.Cluster, pod: str, stream: Literal["Stdout", "Stderr"] | None, *,
    follow: bool, tail: int | None, since: float | None, line_end: bytes = b"\n",
) -> AsyncIterator[_Line]:
    since_time = datetime.fromtimestamp(math.floor(since), UTC) if since and since > 0 else None
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
    cluster: kube.Cluster, container: Container, request: LogRequest,
    send: trio.MemorySendChannel[tuple[int, bytes]],
) -> None:
    """Send ``(stream, bytes)`` for a container's logs; stream 1 is stdout, 2 stderr."""
    async with send:
        # The reader may go away at any time; that ends the stream, quietly.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await _send_logs(cluster, container, request, send)


async def _send_logs(
    cluster: kube.Cluster, container: Container, request: LogRequest,
    send: trio.MemorySendChannel[tuple[int, bytes]],
) -> None:
    streams = [s for s, wanted in ((STDOUT, request.stdout), (STDERR, request.stderr)) if wanted]
    if container.saved_logs is not None:
        for item in _tail([(s, d) for s, d in container.saved_logs if s in streams], request.tail):
            await send.send(item)
        return
    pod = container.pod_name
    if pod is None or not streams:
        return
    if container.config.tty or not await cluster.split_streams_supported():
        if STDOUT in streams or container.config.tty:
            await _pump(cluster, pod, None, request, send, tail=request.tail,
                        line_end=_TERMINAL_LINE_END if container.config.tty else b"\n")
        return
    # Kubernetes cannot tail one stream of a log, so history is read whole, merged in time order
    # and tailed here; following then resumes after the last line shown.
    after = None
    if not request.follow or request.tail is not None:
        history: list[list[tuple[float, int, bytes]]] = []
        for stream in streams:
            history.append([
                (line.at, stream, _render(line, request))
                async for line in _lines(cluster, pod, _STREAM_NAMES[stream], follow=False,
                                         tail=None, since=request.since)
                if _wanted(line, request)
            ])
        merged = list(heapq.merge(*history, key=lambda entry: entry[0]))
        for _, stream, data in _tail(merged, request.tail):
            await send.send((stream, data))
        if not request.follow:
            return
        after = merged[-1][0] if merged else None
    async with trio.open_nursery() as nursery:
        for stream in streams:
            nursery.start_soon(partial(_pump, cluster, pod, stream, request, send, after=after))


def _tail(items: list[T], tail: int | None) -> list[T]:
    if tail is None:
        return items
    return items[-tail:] if tail > 0 else []


# How often a broken follow tries the API server again.
_RESUME_SECONDS = 1.0


async def _pump(
    cluster: kube.Cluster, pod: str, stream: int | None, request: LogRequest,
    send: trio.MemorySendChannel[tuple[int, bytes]], *, tail: int | None = None,
    after: float | None = None, line_end: bytes = b"\n",
) -> None:
    name = _STREAM_NAMES[stream] if stream is not None else None
    while True:
        since = request.since if after is None else max(request.since or 0, after)
        try:
            async for line in _lines(cluster, pod, name, follow=request.follow, tail=tail,
                                     since=since, line_end=line_end):
                if _wanted(line, request) and (after is None or line.at > after):
                    await send.send((stream or STDOUT, _render(line, request)))
                    after = line.at
            return
        except kube.ClusterUnreachable:
            if not request.follow:
                raise
        # A follow outlives API server restarts: resume after the last line sent.
        tail = None
        await trio.sleep(_RESUME_SECONDS)


async def snapshot_logs(
    cluster: kube.Cluster, container: Container
) -> tuple[tuple[int, bytes], ...]:
    """Everything logged so far, bounded, for a pod about to be deleted."""
    kept: collections.deque[tuple[int, bytes]] = collections.deque()
    size = 0
    send, receive = trio.open_memory_channel[tuple[int, bytes]](64)
    with trio.move_on_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_logs, cluster, container, LogRequest(), send)
            async with receive:
                async for stream, data in receive:
                    kept.append((stream, data))
                    size += len(data)
                    while size > _SNAPSHOT_LIMIT:
                        size -= len(kept.popleft()[1])
    return tuple(kept)
