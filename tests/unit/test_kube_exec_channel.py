"""`ExecChannel` over a transport that stands in for the API server (no sockets)."""

from __future__ import annotations

import json
from typing import cast

import pytest
import trio

from kubedock.kube import ExecChannel
from kubedock.kube._spdy import SpdyChannels

_EXITED_2 = b"\x03" + json.dumps({
    "status": "Failure",
    "reason": "NonZeroExitCode",
    "details": {"causes": [{"reason": "ExitCode", "message": "2"}]},
}).encode()


class _StoppedReading:
    """A kubelet whose process ended early: it takes no more stdin, then reports the exit."""

    subprotocol = "v4.channel.k8s.io"

    def __init__(self) -> None:
        self.exited = trio.Event()
        self.sent: list[bytes] = []
        self._told = False

    async def send(self, message: bytes) -> None:
        if self.sent:
            await trio.sleep_forever()
        self.sent.append(bytes(message))

    async def receive(self) -> bytes | None:
        await self.exited.wait()
        if self._told:
            return None
        self._told = True
        return _EXITED_2

    def receive_buffered(self) -> bytes | None:
        return None


async def test_stdin_waiting_to_be_taken_gives_up_when_the_exit_status_arrives() -> None:
    transport = _StoppedReading()
    channel = ExecChannel(cast(SpdyChannels, transport))

    async def exit_reported() -> None:
        await trio.testing.wait_all_tasks_blocked()
        transport.exited.set()
        assert await channel.receive() is None

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(exit_reported)
            with pytest.raises(trio.BrokenResourceError, match="ended"):
                await channel.send_stdin(b"x" * (600 * 1024))
    assert channel.exit_code == 2
    assert len(transport.sent) == 1


async def test_stdin_after_the_exit_status_is_refused_at_once() -> None:
    transport = _StoppedReading()
    transport.exited.set()
    channel = ExecChannel(cast(SpdyChannels, transport))
    with trio.fail_after(5):
        await channel.receive()
        with pytest.raises(trio.BrokenResourceError):
            await channel.send_stdin(b"x")
    assert transport.sent == []
