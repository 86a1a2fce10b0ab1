"""Log lines of a TTY container end as the terminal ended them (CR LF), as Docker keeps them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import trio

from kubedock.engine import Container, ContainerConfig, LogRequest
from kubedock.engine._logs import send_logs

# What the log API gives for a container that printed "hi\r\nthere\r\n$ " on its terminal: the
# runtime keeps each line without its ending, and the API ends every complete one with LF.
LOG = (b"2026-11-25T10:00:02.100000000Z hi\n2026-11-25T10:00:02.200000000Z there\n"
       b"2026-11-25T10:00:02.300000000Z $ ")


class ScriptedCluster:
    async def split_streams_supported(self) -> bool:
        return False

    @contextlib.asynccontextmanager
    async def logs(self, pod: str, **options: Any) -> AsyncIterator[AsyncIterator[bytes]]:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(LOG), 7):
                yield LOG[start : start + 7]

        yield chunks()


async def logged(tty: bool) -> list[tuple[int, bytes]]:
    container = Container(id="c" * 64, name="c", created=datetime.now(UTC),
                          config=ContainerConfig(image="busybox:1.36", tty=tty), pod_name="p")
    send, receive = trio.open_memory_channel[tuple[int, bytes]](64)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_logs, ScriptedCluster(), container, LogRequest(), send)
        return [item async for item in receive]


@pytest.mark.parametrize(("tty", "end"), [(True, b"\r\n"), (False, b"\n")])
async def test_line_ends(tty: bool, end: bytes) -> None:
    assert await logged(tty) == [(1, b"hi" + end), (1, b"there" + end), (1, b"$ ")]
