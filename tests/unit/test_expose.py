"""Port exposers over loopback, with stand-ins for the pod side."""

import os
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
import trio.testing

from kubedock.expose import serve_port_forward, serve_reverse_proxy, splice
from kubedock.expose._portforward import _forward
from kubedock.expose._splice import serve_tunnels
from kubedock.kube import ClusterUnreachable, PortForwardFailed


async def echo_upper_until_eof(stream: trio.SocketStream) -> None:
    """Answers every chunk in upper case; at EOF says 'bye' and closes."""
    async with stream:
        while data := await stream.receive_some():
            await stream.send_all(data.upper())
        await stream.send_all(b"bye")


async def serve(
    handler: Callable[[trio.SocketStream], Awaitable[None]], nursery: trio.Nursery
) -> int:
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    nursery.start_soon(serve_and_close, handler, listener)
    return int(listener.socket.getsockname()[1])


async def serve_and_close(
    handler: Callable[[trio.SocketStream], Awaitable[None]], listener: trio.SocketListener
) -> None:
    async with listener:
        await trio.serve_listeners(handler, [listener])


async def read_all(stream: trio.abc.ReceiveStream) -> bytes:
    received = b""
    while data := await stream.receive_some():
        received += data
    return received


async def test_splice_passes_half_close_both_ways() -> None:
    async with trio.open_nursery() as nursery:
        pod_port = await serve(echo_upper_until_eof, nursery)

        async def tunnel(client: trio.SocketStream) -> None:
            await splice(client, await trio.open_tcp_stream("127.0.0.1", pod_port))

        port = await serve(tunnel, nursery)
        client = await trio.open_tcp_stream("127.0.0.1", port)
        await client.send_all(b"hello")
        assert await client.receive_some() == b"HELLO"
        await client.send_eof()
        assert await read_all(client) == b"bye"
        await client.aclose()
        nursery.cancel_scope.cancel()


async def test_splice_keeps_bytes_exact_and_backpressure_with_a_slow_reader() -> None:
    payload = os.urandom(16 * 1024 * 1024 + 5)
    sender, left = (trio.SocketStream(end) for end in trio.socket.socketpair())
    right, receiver = (trio.SocketStream(end) for end in trio.socket.socketpair())
    sent = trio.Event()

    async def send() -> None:
        await sender.send_all(payload)
        await sender.send_eof()
        sent.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(splice, left, right)
        nursery.start_soon(send)
        await trio.sleep(0.2)
        # Nobody reads: the splice holds a bounded amount and the sender waits.
        assert not sent.is_set()
        received = bytearray()
        while data := await receiver.receive_some(100_000):
            received += data
        assert sent.is_set()
        await receiver.aclose()  # the other direction's end: the splice is done
    await sender.aclose()
    assert received == payload


async def test_reverse_proxy_waits_for_the_pod_to_listen() -> None:
    # Reserve a free port, then close it: "the pod" starts listening there later.
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        pod_port = probe.getsockname()[1]
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve_reverse_proxy, "127.0.0.1", pod_port))
        client = await trio.open_tcp_stream("127.0.0.1", port)
        await client.send_all(b"early")
        await trio.sleep(0.3)
        [listener] = await trio.open_tcp_listeners(pod_port, host="127.0.0.1")
        nursery.start_soon(serve_and_close, echo_upper_until_eof, listener)
        assert await client.receive_some() == b"EARLY"
        await client.send_eof()
        assert await read_all(client) == b"bye"
        await client.aclose()
        nursery.cancel_scope.cancel()


async def test_reverse_proxy_gives_up_after_the_retry_window() -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        pod_port = probe.getsockname()[1]
    async with trio.open_nursery() as nursery:
        serving = partial(serve_reverse_proxy, "127.0.0.1", pod_port, retry_seconds=0.3)
        port = await nursery.start(serving)
        client = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(5):
            assert await read_all(client) == b""
        await client.aclose()
        nursery.cancel_scope.cancel()


class FakeForward(trio.abc.Stream):
    """A port-forward whose pod refuses (PortForwardFailed) or echoes in upper case."""

    def __init__(self, refuse: bool, sent_log: list[bytes]) -> None:
        self.refuse = refuse
        self.sent_log = sent_log
        self.incoming = bytearray()
        self.arrived = trio.Event()
        self.closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            raise trio.ClosedResourceError
        self.sent_log.append(bytes(data))
        self.incoming += data
        self.arrived.set()
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.refuse:
            await trio.sleep(0.05)
            raise PortForwardFailed("dial tcp4 127.0.0.1:6379: connect: connection refused")
        await self.arrived.wait()
        self.arrived = trio.Event()
        data, self.incoming = bytes(self.incoming).upper(), bytearray()
        return data

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


async def test_port_forward_replays_what_was_sent_before_the_pod_listened() -> None:
    opened: list[FakeForward] = []

    failed_opens: list[bool] = []

    async def opener() -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        if len(opened) == 2 and not failed_opens:
            failed_opens.append(True)
            raise ClusterUnreachable("the API server restarts")
        forward = FakeForward(refuse=len(opened) < 3, sent_log=[])
        opened.append(forward)
        return forward

    client, proxy_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_forward, opener, 30.0, proxy_side)
        await client.send_all(b"ping")
        with trio.fail_after(10):
            assert await client.receive_some() == b"PING"
        await client.send_all(b"more")
        with trio.fail_after(10):
            assert await client.receive_some() == b"MORE"
        await client.aclose()
    assert len(opened) == 4
    assert failed_opens == [True]
    assert all(forward.closed for forward in opened)
    assert opened[-1].sent_log == [b"ping", b"more"]


async def test_port_forward_made_while_the_api_server_is_away_waits_for_it() -> None:
    opened: list[FakeForward] = []
    refused: list[bool] = []

    async def opener() -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        if len(refused) < 3:
            refused.append(True)
            raise ClusterUnreachable("all attempts to connect to the API server failed")
        opened.append(FakeForward(refuse=False, sent_log=[]))
        return opened[-1]

    client, proxy_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_forward, opener, 30.0, proxy_side)
        await client.send_all(b"ping")
        with trio.fail_after(10):
            assert await client.receive_some() == b"PING"
        await client.aclose()
    assert len(refused) == 3
    assert [forward.sent_log for forward in opened] == [[b"ping"]]


@pytest.mark.parametrize("retry_seconds", [0.0, 0.5])
async def test_port_forward_gives_up_after_the_retry_window(retry_seconds: float) -> None:
    opened: list[FakeForward] = []

    async def opener() -> trio.abc.Stream:
        opened.append(FakeForward(refuse=True, sent_log=[]))
        await trio.lowlevel.checkpoint()
        return opened[-1]

    client, proxy_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_forward, opener, retry_seconds, proxy_side)
        await client.send_all(b"ping")
        with trio.fail_after(5):
            assert await read_all(client) == b""
    assert all(forward.closed for forward in opened)
    assert (len(opened) == 1) == (retry_seconds == 0.0)


class BuggyCluster:
    """A port-forward that fails unexpectedly on its first connection, then echoes."""

    def __init__(self, pod_port: int) -> None:
        self.pod_port = pod_port
        self.opened = 0

    async def open_port_forward(self, pod: str, port: int) -> trio.abc.Stream:
        self.opened += 1
        if self.opened == 1:
            await trio.lowlevel.checkpoint()
            raise RuntimeError("a bug in the forward")
        return await trio.open_tcp_stream("127.0.0.1", self.pod_port)


async def test_an_unexpected_failure_ends_its_connection_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with trio.open_nursery() as nursery:
        pod_port = await serve(echo_upper_until_eof, nursery)
        port = await nursery.start(partial(serve_port_forward, BuggyCluster(pod_port), "web", 80))
        first = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(5):
            assert await read_all(first) == b"", "closed at once"
        second = await trio.open_tcp_stream("127.0.0.1", port)
        await second.send_all(b"still here")
        assert await second.receive_some() == b"STILL HERE"
        await first.aclose()
        await second.aclose()
        nursery.cancel_scope.cancel()
    [failure] = caplog.records
    assert failure.getMessage() == f"port {port} forwarded to pod web port 80: a connection failed"
    assert failure.exc_info is not None and str(failure.exc_info[1]) == "a bug in the forward"


class BrokenListener(trio.abc.Listener[trio.SocketStream]):
    def __init__(self) -> None:
        self.closed = False

    async def accept(self) -> trio.SocketStream:
        await trio.lowlevel.checkpoint()
        raise RuntimeError("the listener broke")

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


async def test_a_failed_listener_ends_its_port_only(caplog: pytest.LogCaptureFixture) -> None:
    listener = BrokenListener()

    async def never_called(client: trio.SocketStream) -> None:
        raise AssertionError("no connection was accepted")

    with trio.fail_after(5):
        await serve_tunnels(listener, never_called, "port 1234 proxied to 10.0.0.1:80")
    assert listener.closed
    assert caplog.messages == ["port 1234 proxied to 10.0.0.1:80: stopped listening"]
