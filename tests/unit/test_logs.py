"""Container logs against a scripted log API: every line once, in order, whatever its stamp."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import trio
import trio.testing

from kubedock import kube
from kubedock.engine import STDERR, STDOUT, LogRequest
from kubedock.engine._logs import send_logs
from kubedock.engine._records import Container, ContainerConfig


def stamp(second: int, nanoseconds: int) -> bytes:
    return f"2026-11-30T00:49:{second:02d}.{nanoseconds:09d}Z".encode()


class ScriptedLogs:
    """The log API of one pod: per stream, stamped lines; each call serves the lines from
    `sinceTime` (whole seconds, as the API server), and a follow breaks once after
    `break_after` lines, as a restarted API server would."""

    def __init__(self, lines: dict[str | None, list[tuple[bytes, bytes]]],
                 break_after: int | None = None,
                 written_later: dict[str | None, list[tuple[bytes, bytes]]] | None = None
                 ) -> None:
        self.lines = lines
        self.break_after = break_after
        self.written_later = written_later or {}
        self.calls: list[dict[str, Any]] = []

    async def split_streams_supported(self) -> bool:
        return None not in self.lines

    @contextlib.asynccontextmanager
    async def logs(self, pod: str, *, follow: bool = False, timestamps: bool = False,
                   tail_lines: int | None = None, since_seconds: int | None = None,
                   since_time: datetime | None = None, stream: str | None = None
                   ) -> AsyncIterator[AsyncIterator[bytes]]:
        self.calls.append({"follow": follow, "since_time": since_time, "stream": stream})
        if len(self.calls) == 2:
            for written, lines in self.written_later.items():
                self.lines[written] = sorted(self.lines[written] + lines)
        assert timestamps
        served = [
            stamped + b" " + text for stamped, text in self.lines[stream]
            if since_time is None or stamped.decode() >= since_time.strftime("%Y-%m-%dT%H:%M:%S")
        ]
        broken = follow and self.break_after is not None and len(self.calls) == 1

        async def chunks() -> AsyncIterator[bytes]:
            # One chunk with every line, as the kubelet often sends a burst of output.
            for index, line in enumerate(served):
                if broken and index == self.break_after:
                    raise kube.ClusterUnreachable("connection reset")
                yield line

        yield chunks()


def container() -> Container:
    record = Container(id="c" * 64, name="c", created=datetime.now(UTC),
                       config=ContainerConfig(image="busybox:1.36"))
    record.pod_name = "pod"
    return record


async def collect(source: ScriptedLogs, request: LogRequest) -> list[tuple[int, bytes]]:
    send, receive = trio.open_memory_channel[tuple[int, bytes]](100)
    received = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_logs, cast(kube.Cluster, source), container(), request, send)
        async with receive:
            async for item in receive:
                received.append(item)
    return received


# Lines of one write: the kubelet stamps them within the same microsecond.
BURST = [(stamp(42, 692151221 + i), f"entry{i}\n".encode()) for i in range(6)]


async def test_lines_sharing_a_microsecond_are_all_shown() -> None:
    source = ScriptedLogs({"Stdout": BURST, "Stderr": []})
    for request in (LogRequest(), LogRequest(follow=True), LogRequest(follow=True, tail=3)):
        received = await collect(source, request)
        expected = [text for _, text in BURST]
        if request.tail:
            expected = expected[-request.tail:]
        assert [text for _, text in received] == expected, request


async def test_lines_with_the_very_same_stamp_are_all_shown() -> None:
    same = [(stamp(42, 5), b"a\n"), (stamp(42, 5), b"b\n"), (stamp(42, 5), b"c\n")]
    source = ScriptedLogs({"Stdout": same, "Stderr": [(stamp(42, 5), b"e\n")]})
    received = await collect(source, LogRequest(follow=True))
    assert sorted(received) == [(STDOUT, b"a\n"), (STDOUT, b"b\n"), (STDOUT, b"c\n"),
                                (STDERR, b"e\n")]


async def test_a_broken_follow_resumes_after_exactly_the_lines_sent() -> None:
    same = [(stamp(42, 7), f"{i}\n".encode()) for i in range(5)] + [(stamp(43, 0), b"last\n")]
    source = ScriptedLogs({None: same}, break_after=3)
    with trio.move_on_after(10):
        received = await collect(source, LogRequest(follow=True))
    assert [text for _, text in received] == [b"0\n", b"1\n", b"2\n", b"3\n", b"4\n", b"last\n"]
    assert len(source.calls) == 2
    assert source.calls[1]["since_time"] == datetime(2026, 11, 30, 0, 49, 42, tzinfo=UTC)


async def test_since_and_until_filter_below_the_second() -> None:
    lines = [(stamp(42, 100_000), b"before\n"), (stamp(42, 200_000), b"inside\n"),
             (stamp(42, 300_000), b"after\n")]
    source = ScriptedLogs({"Stdout": lines, "Stderr": []})
    start = datetime(2026, 11, 30, 0, 49, 42, tzinfo=UTC).timestamp()
    received = await collect(source, LogRequest(since=start + 150e-6, until=start + 250e-6))
    assert received == [(STDOUT, b"inside\n")]


async def test_since_beyond_the_last_datetime_shows_nothing() -> None:
    # Docker takes any 64-bit number of seconds.
    source = ScriptedLogs({"Stdout": BURST, "Stderr": []})
    assert await collect(source, LogRequest(since=float(2**63 - 1))) == []


async def test_follow_after_history_resumes_each_stream_after_its_own_last_line() -> None:
    # stderr's history is read after stdout's: a stdout line written in between has an earlier
    # stamp than stderr's last line and must still be shown once.
    stdout = [(stamp(42, 10), b"o1\n"), (stamp(42, 30), b"o2\n")]
    stderr = [(stamp(42, 20), b"e1\n"), (stamp(42, 40), b"e2\n")]
    source = ScriptedLogs({"Stdout": stdout, "Stderr": stderr},
                          written_later={"Stdout": [(stamp(42, 35), b"o3\n")]})
    received = await collect(source, LogRequest(follow=True, tail=10))
    assert received[:3] == [(STDOUT, b"o1\n"), (STDERR, b"e1\n"), (STDOUT, b"o2\n")]
    assert sorted(received[3:]) == [(STDOUT, b"o3\n"), (STDERR, b"e2\n")]


class SilentFollow:
    """A log whose follow goes silent too long once (no line shown yet), then ends."""

    def __init__(self) -> None:
        self.since_times: list[datetime | None] = []

    async def split_streams_supported(self) -> bool:
        return False

    @contextlib.asynccontextmanager
    async def logs(self, pod: str, *, follow: bool = False, timestamps: bool = False,
                   tail_lines: int | None = None, since_seconds: int | None = None,
                   since_time: datetime | None = None, stream: str | None = None
                   ) -> AsyncIterator[AsyncIterator[bytes]]:
        self.since_times.append(since_time)
        first = len(self.since_times) == 1

        async def chunks() -> AsyncIterator[bytes]:
            if first:
                raise kube.ClusterUnreachable("nothing heard for 60 s")
            for line in ():
                yield line

        yield chunks()


async def test_a_silent_tailed_follow_resumes_from_when_it_began(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Resuming from the start of the log would show again what the tail left out.
    source = SilentFollow()
    began = datetime.now(UTC).replace(microsecond=0)
    await collect(cast(ScriptedLogs, source), LogRequest(follow=True, tail=0))
    first, resumed = source.since_times
    assert first is None
    assert resumed is not None and began <= resumed <= datetime.now(UTC)
