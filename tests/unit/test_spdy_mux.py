"""Port-forwards sharing one SPDY connection, against an in-memory SPDY/3.1 peer that keeps
to the windows kubedock announces (the kubelet stands behind the API server instead)."""

from __future__ import annotations

import contextlib
import os
import random
import struct
import zlib
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from kubedock import wire
from kubedock.kube import ClusterUnreachable, PortForwardFailed, PortForwardStream
from kubedock.kube._spdy_mux import WINDOW, RefusedSecondForward, SpdySession, SpdySessions

PORT = 80
_SYN_STREAM, _RST_STREAM, _SETTINGS, _WINDOW_UPDATE = 1, 3, 4, 9
_REFUSED = 3
Handler = Callable[["Peer", int, trio.MemoryReceiveChannel[bytes]], Awaitable[None]]


def _headers(block: bytes) -> dict[bytes, bytes]:
    (count,), offset, pairs = struct.unpack_from("!I", block), 4, {}
    for _ in range(count):
        fields = []
        for _ in range(2):
            (length,) = struct.unpack_from("!I", block, offset)
            fields.append(block[offset + 4:offset + 4 + length])
            offset += 4 + length
        pairs[fields[0]] = fields[1]
    return pairs


class Peer:
    """The server's side: each forward's data stream goes to `handler`, which reads what
    kubedock sent (b"" at its end) and answers with `send`, within kubedock's windows."""

    def __init__(self, stream: trio.abc.Stream, handler: Handler, *,
                 refuse_after: int | None = None) -> None:
        self.stream = stream
        self._handler = handler
        self._refuse_after = refuse_after
        self._inflate = zlib.decompressobj()
        self._windows: dict[int, int] = {}
        self._initial_window = 64 * 1024
        self._window_grew = trio.Condition()
        self._send_lock = trio.Lock()
        self._inboxes: dict[int, trio.MemorySendChannel[bytes]] = {}
        self.data_streams: list[int] = []
        self.resets: list[int] = []
        self.ended = trio.Event()  # kubedock closed the connection

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            with contextlib.suppress(trio.ClosedResourceError):  # a test closed it
                await self._serve(nursery)
            for inbox in self._inboxes.values():
                inbox.close()
        self.ended.set()

    async def _serve(self, nursery: trio.Nursery) -> None:
        buffer = b""
        while data := await self.stream.receive_some():
            buffer += data
            while len(buffer) >= 8:
                first, second = struct.unpack_from("!II", buffer)
                length = second & 0xFFFFFF
                if len(buffer) < 8 + length:
                    break
                body, buffer = buffer[8:8 + length], buffer[8 + length:]
                await self._frame(nursery, first, second >> 24, body)

    async def _frame(self, nursery: trio.Nursery, first: int, flags: int, body: bytes) -> None:
        if not first & 0x80000000:
            inbox = self._inboxes.get(first & 0x7FFFFFFF)
            if inbox is not None:
                if body:
                    await inbox.send(body)
                if flags & 0x01:
                    await inbox.send(b"")
            return
        kind = first & 0xFFFF
        if kind == _SYN_STREAM:
            stream_id = struct.unpack_from("!I", body)[0]
            headers = _headers(self._inflate.decompress(body[10:]))
            assert headers[b"port"] == str(PORT).encode()
            self._windows[stream_id] = self._initial_window
            if headers[b"streamtype"] != b"data":
                return
            self.data_streams.append(stream_id)
            if self._refuse_after is not None and len(self.data_streams) > self._refuse_after:
                await self._send(wire.encode_rst_stream(stream_id - 2, _REFUSED)
                                 + wire.encode_rst_stream(stream_id, _REFUSED))
                return
            send, receive = trio.open_memory_channel[bytes](1000)
            self._inboxes[stream_id] = send
            nursery.start_soon(self._handler, self, stream_id, receive)
        elif kind == _SETTINGS:
            (count,) = struct.unpack_from("!I", body)
            for index in range(count):
                key, value = struct.unpack_from("!II", body, 4 + 8 * index)
                if key & 0xFFFFFF == 7:
                    self._initial_window = value
        elif kind == _WINDOW_UPDATE:
            stream_id, delta = struct.unpack_from("!II", body)
            if stream_id in self._windows:
                self._windows[stream_id] += delta
                async with self._window_grew:
                    self._window_grew.notify_all()
        elif kind == _RST_STREAM:
            stream_id = struct.unpack_from("!I", body)[0]
            self.resets.append(stream_id)
            inbox = self._inboxes.pop(stream_id, None)
            if inbox is not None:
                inbox.close()

    async def send(self, stream_id: int, data: bytes, *, fin: bool = False) -> None:
        view = memoryview(data)
        while view:
            async with self._window_grew:
                while self._windows[stream_id] <= 0:
                    await self._window_grew.wait()
            size = min(len(view), self._windows[stream_id], 100_000)
            self._windows[stream_id] -= size
            await self._send(wire.encode_data_head(stream_id, size) + bytes(view[:size]))
            view = view[size:]
        if fin:
            await self._send(wire.encode_data_head(stream_id, 0, fin=True)
                             + wire.encode_data_head(stream_id - 2, 0, fin=True))

    async def reset(self, stream_id: int) -> None:
        await self._send(wire.encode_rst_stream(stream_id)
                         + wire.encode_rst_stream(stream_id - 2))

    async def _send(self, frame: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(frame)


async def echo(peer: Peer, stream_id: int, inbox: trio.MemoryReceiveChannel[bytes]) -> None:
    """Sends back what comes, until kubedock resets the stream."""
    async for data in inbox:
        await peer.send(stream_id, data)


def serving(size: int) -> Handler:
    async def handler(peer: Peer, stream_id: int,
                      inbox: trio.MemoryReceiveChannel[bytes]) -> None:
        await peer.send(stream_id, _pattern(stream_id, size), fin=True)
    return handler


def _pattern(stream_id: int, size: int) -> bytes:
    return random.Random(stream_id).randbytes(size)


def session_with(nursery: trio.Nursery, handler: Handler, window: int = WINDOW
                 ) -> tuple[SpdySession, Peer]:
    ours, theirs = trio.testing.memory_stream_pair()
    peer = Peer(theirs, handler)
    nursery.start_soon(peer.serve)
    return SpdySession(ours, b"", window=window), peer


async def read_all(stream: PortForwardStream) -> bytes:
    received = bytearray()
    while data := await stream.receive_some(65536):
        received += data
    return bytes(received)


async def test_many_forwards_at_once_are_byte_exact_both_ways() -> None:
    async with trio.open_nursery() as nursery:
        session, peer = session_with(nursery, echo)
        results: dict[int, bytes] = {}
        payloads = {index: os.urandom(300_000 + 977 * index) for index in range(16)}

        async def one(index: int) -> None:
            forward = await session.open_forward(PORT)
            stream = PortForwardStream(forward, PORT)

            async def download() -> None:
                received = bytearray()
                while len(received) < len(payloads[index]):
                    received += await stream.receive_some()
                results[index] = bytes(received)

            async with trio.open_nursery() as inner:
                inner.start_soon(download)
                await stream.send_all(payloads[index])
            await stream.aclose()

        async with trio.open_nursery() as clients:
            for index in payloads:
                clients.start_soon(one, index)
        assert results == payloads
        assert len(peer.data_streams) == 16 and session.forwards == 0
        await session.aclose()
        nursery.cancel_scope.cancel()


async def test_one_forward_reset_or_closed_leaves_the_others() -> None:
    size = 2_000_000
    async with trio.open_nursery() as nursery:
        reset_now = trio.Event()

        async def handler(peer: Peer, stream_id: int,
                          inbox: trio.MemoryReceiveChannel[bytes]) -> None:
            if stream_id == 7:  # the second forward's data stream: reset mid-stream
                await peer.send(stream_id, b"a" * 1000)
                await reset_now.wait()
                await peer.reset(stream_id)
                return
            await peer.send(stream_id, _pattern(stream_id, size), fin=True)

        session, peer = session_with(nursery, handler)
        forwards = [await session.open_forward(PORT) for _ in range(4)]
        streams = [PortForwardStream(forward, PORT) for forward in forwards]
        assert await streams[1].receive_some(1000) == b"a" * 1000
        reset_now.set()
        assert await read_all(streams[1]) == b""  # the reset ends it
        with pytest.raises(trio.BrokenResourceError):  # nothing more is sent on it
            await streams[1].send_all(b"late")
        await streams[2].receive_some(10)
        await streams[2].aclose()  # the client leaves mid-stream: its streams are reset
        for index in (0, 3):
            stream_id = peer.data_streams[index]
            assert await read_all(streams[index]) == _pattern(stream_id, size)
        assert {forwards[2].data_id, forwards[2].error_id} <= set(peer.resets)
        await session.aclose()
        nursery.cancel_scope.cancel()


async def test_a_slow_reader_holds_back_its_own_stream_only() -> None:
    size = 8_000_000
    async with trio.open_nursery() as nursery:
        session, peer = session_with(nursery, serving(size), window=1024 * 1024)
        slow = PortForwardStream(await session.open_forward(PORT), PORT)
        fast = PortForwardStream(await session.open_forward(PORT), PORT)
        first = await slow.receive_some(10)
        assert await read_all(fast) == _pattern(peer.data_streams[1], size)
        # What waits for the slow reader is within the window kubedock announced.
        assert session._forwards[peer.data_streams[0]].held <= 1024 * 1024
        assert first + await read_all(slow) == _pattern(peer.data_streams[0], size)
        await session.aclose()
        nursery.cancel_scope.cancel()


async def test_the_connection_breaking_fails_its_forwards() -> None:
    async with trio.open_nursery() as nursery:
        started = trio.Event()

        async def handler(peer: Peer, stream_id: int,
                          inbox: trio.MemoryReceiveChannel[bytes]) -> None:
            await peer.send(stream_id, b"b" * 5000)
            if len(peer.data_streams) == 3:
                started.set()
            await trio.sleep_forever()

        session, peer = session_with(nursery, handler)
        streams = [PortForwardStream(await session.open_forward(PORT), PORT) for _ in range(3)]
        await started.wait()
        for stream in streams:
            assert await stream.receive_some(5000) == b"b" * 5000
        await peer.stream.aclose()
        for stream in streams:
            with pytest.raises(ClusterUnreachable):
                await stream.receive_some()
        with pytest.raises(trio.BrokenResourceError):
            await streams[0].send_all(b"more")
        assert not session.usable
        with pytest.raises(ClusterUnreachable):
            await session.open_forward(PORT)
        nursery.cancel_scope.cancel()


async def test_idle_connections_close_and_new_ones_open_on_demand(
        autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        peers: list[Peer] = []

        async def connect() -> tuple[trio.abc.Stream, bytes]:
            ours, theirs = trio.testing.memory_stream_pair()
            peers.append(Peer(theirs, serving(1000)))
            nursery.start_soon(peers[-1].serve)
            return ours, b""

        sessions = SpdySessions(idle_seconds=30)

        async def download(key: str) -> bytes:
            stream = PortForwardStream(await sessions.open_forward(key, PORT, connect), PORT)
            try:
                return await read_all(stream)
            finally:
                await stream.aclose()

        await download("pod-a")
        await trio.sleep(10)
        await download("pod-a")  # reused
        assert len(peers) == 1 and len(peers[0].data_streams) == 2
        await download("pod-b")  # a connection per pod
        assert len(peers) == 2
        await trio.sleep(31)
        assert len(await download("pod-a")) == 1000  # the idle ones closed, a new one opened
        assert len(peers) == 3
        for closed in peers[:2]:
            await closed.ended.wait()
        await sessions.aclose()
        nursery.cancel_scope.cancel()


async def test_a_server_that_refuses_a_second_pair_gets_a_connection_per_forward() -> None:
    async with trio.open_nursery() as nursery:
        peers: list[Peer] = []

        async def connect() -> tuple[trio.abc.Stream, bytes]:
            ours, theirs = trio.testing.memory_stream_pair()
            peers.append(Peer(theirs, serving(5000), refuse_after=1))
            nursery.start_soon(peers[-1].serve)
            return ours, b""

        sessions = SpdySessions()
        first = PortForwardStream(await sessions.open_forward("pod", PORT, connect), PORT)
        second = PortForwardStream(await sessions.open_forward("pod", PORT, connect), PORT)
        with pytest.raises(RefusedSecondForward):
            await second.receive_some()  # a KubeError: the port-forward's retry reopens it
        assert len(await read_all(first)) == 5000
        for _ in range(2):
            again = PortForwardStream(await sessions.open_forward("pod", PORT, connect), PORT)
            assert len(await read_all(again)) == 5000
            await again.aclose()
        assert len(peers) == 3
        await first.aclose()
        await sessions.aclose()
        nursery.cancel_scope.cancel()


async def test_a_refused_port_retires_the_connection() -> None:
    async with trio.open_nursery() as nursery:
        peers: list[Peer] = []

        async def refusing(peer: Peer, stream_id: int,
                           inbox: trio.MemoryReceiveChannel[bytes]) -> None:
            # What the kubelet does when nothing listens: a line on the error stream; it
            # reads the data stream no more.
            await peer.send(stream_id - 2, b"connection refused", fin=False)

        async def connect() -> tuple[trio.abc.Stream, bytes]:
            ours, theirs = trio.testing.memory_stream_pair()
            peers.append(Peer(theirs, refusing if not peers else serving(100)))
            nursery.start_soon(peers[-1].serve)
            return ours, b""

        sessions = SpdySessions()
        refused = PortForwardStream(await sessions.open_forward("pod", PORT, connect), PORT)
        with pytest.raises(PortForwardFailed, match="connection refused"):
            await refused.receive_some()
        await refused.aclose()
        await peers[0].ended.wait()  # closed with its last forward
        again = PortForwardStream(await sessions.open_forward("pod", PORT, connect), PORT)
        assert len(await read_all(again)) == 100
        assert len(peers) == 2
        await again.aclose()
        await sessions.aclose()
        nursery.cancel_scope.cancel()


async def test_after_a_broken_connection_the_next_forward_opens_a_new_one() -> None:
    async with trio.open_nursery() as nursery:
        peers: list[Peer] = []

        async def connect() -> tuple[trio.abc.Stream, bytes]:
            ours, theirs = trio.testing.memory_stream_pair()
            peers.append(Peer(theirs, echo))
            nursery.start_soon(peers[-1].serve)
            return ours, b""

        sessions = SpdySessions()
        first = PortForwardStream(await sessions.open_forward("pod", PORT, connect), PORT)
        await first.send_all(b"one")
        assert await first.receive_some() == b"one"
        await peers[0].stream.aclose()
        with pytest.raises(ClusterUnreachable):
            await first.receive_some()
        second = PortForwardStream(await sessions.open_forward("pod", PORT, connect), PORT)
        await second.send_all(b"two")
        assert await second.receive_some() == b"two"
        assert len(peers) == 2
        await first.aclose()
        await second.aclose()
        await sessions.aclose()
        nursery.cancel_scope.cancel()
