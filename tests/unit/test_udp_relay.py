"""UDP exposure over loopback: the pod's relay (`toolbox udp-relay`) and kubedock's listeners."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from kubedock import wire
from kubedock.expose import serve_udp_proxy, serve_udp_relay
from kubedock.podside._udp import relay_datagrams


async def serve_echo_with_source(*, task_status: trio.TaskStatus[int]) -> None:
    """Answers each datagram with `<the port it came from>:<itself>`."""
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind(("127.0.0.1", 0))
        task_status.started(sock.getsockname()[1])
        while True:
            payload, source = await sock.recvfrom(65535)
            await sock.sendto(f"{source[1]}:".encode() + payload, source)


async def ask(port: int, payload: bytes, client: trio.socket.SocketType | None = None) -> bytes:
    own = client is None
    if client is None:
        client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await client.bind(("127.0.0.1", 0))
    try:
        await client.sendto(payload, ("127.0.0.1", port))
        with trio.fail_after(5):
            answer, _ = await client.recvfrom(65535)
        return bytes(answer)
    finally:
        if own:
            client.close()


# -- the relay in the pod, with frames on a pipe ---------------------------------------------

@contextlib.contextmanager
def relay_thread(port: int, **options: float) -> Iterator[tuple[int, int]]:
    """The relay on pipes: yields (the fd frames are written to, the fd answers come from)."""
    to_relay, from_kubedock = os.pipe()
    from_relay, to_kubedock = os.pipe()
    thread = threading.Thread(target=relay_datagrams, args=(port, to_relay, to_kubedock),
                              kwargs=options)
    thread.start()
    try:
        yield from_kubedock, from_relay
    finally:
        os.close(from_kubedock)
        thread.join(5)
        assert not thread.is_alive()
        for fd in (to_relay, from_relay, to_kubedock):
            os.close(fd)


def sockets_towards(port: int) -> int:
    """How many UDP sockets are connected to 127.0.0.1:port (one per peer a relay keeps)."""
    lines = Path("/proc/self/net/udp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[2] == f"0100007F:{port:04X}")


def echo_thread() -> tuple[int, threading.Event]:
    """A blocking echo-with-source server for the relay tests; stops when the event is set."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        with sock:
            while not stop.is_set():
                try:
                    payload, source = sock.recvfrom(65535)
                except TimeoutError:
                    continue
                sock.sendto(f"{source[1]}:".encode() + payload, source)

    threading.Thread(target=serve, daemon=True).start()
    return sock.getsockname()[1], stop


def exchange(into: int, out_of: int, decoder: wire.DatagramDecoder, peer: tuple[str, int],
             payload: bytes) -> wire.Datagram:
    os.write(into, wire.encode_datagram(peer, payload))
    while not (found := decoder.feed(os.read(out_of, 65536))):
        pass
    [answer] = found
    return answer


def test_the_relay_answers_each_peer_from_its_own_socket() -> None:
    port, stop = echo_thread()
    try:
        with relay_thread(port) as (into, out_of):
            decoder = wire.DatagramDecoder()
            one = exchange(into, out_of, decoder, ("10.0.0.1", 1000), b"one")
            two = exchange(into, out_of, decoder, ("10.0.0.2", 1000), b"two")
            again = exchange(into, out_of, decoder, ("10.0.0.1", 1000), b"again")
    finally:
        stop.set()
    assert one.peer == again.peer == ("10.0.0.1", 1000) and two.peer == ("10.0.0.2", 1000)
    source_one, _, text = one.payload.partition(b":")
    assert text == b"one"
    assert two.payload.partition(b":")[0] != source_one  # a socket per peer
    assert again.payload == source_one + b":again"  # kept while the peer is active


def test_the_relay_forgets_quiet_peers_and_bounds_their_number() -> None:
    now = [0.0]
    port, stop = echo_thread()
    try:
        with relay_thread(port, max_peers=2, idle_seconds=10,
                          clock=lambda: now[0]) as (into, out_of):  # type: ignore[arg-type]
            decoder = wire.DatagramDecoder()

            def source_of(peer: tuple[str, int]) -> bytes:
                return exchange(into, out_of, decoder, peer, b"x").payload.partition(b":")[0]

            first = source_of(("10.0.0.1", 1))
            source_of(("10.0.0.2", 2))
            assert source_of(("10.0.0.1", 1)) == first
            source_of(("10.0.0.3", 3))  # the longest quiet (10.0.0.2) goes
            assert sockets_towards(port) == 2
            assert source_of(("10.0.0.1", 1)) == first
            now[0] = 11.0  # everyone is quiet for longer than allowed
            source_of(("10.0.0.4", 4))
            assert sockets_towards(port) == 1
    finally:
        stop.set()


# -- kubedock's listeners --------------------------------------------------------------------

@contextlib.asynccontextmanager
async def relay_process(port: int, opened: list[int],
                        delay: float = 0) -> AsyncIterator[trio.abc.Stream]:
    """`kubedock toolbox udp-relay`, connected to as `Toolbox.udp_relay` does (there through
    a port-forward)."""
    opened.append(port)
    await trio.sleep(delay)
    relay = await trio.lowlevel.open_process(
        [sys.executable, "-m", "kubedock", "toolbox", "udp-relay", str(port)],
        stdout=subprocess.PIPE)
    assert relay.stdout is not None
    try:
        said = b""
        while not said.endswith(b"\n"):
            said += await relay.stdout.receive_some()
        async with await trio.open_tcp_stream("127.0.0.1", int(said)) as stream:
            yield stream
        with trio.fail_after(5):
            assert await relay.wait() == 0  # ends with its connection
    finally:
        relay.kill()
        with trio.CancelScope(shield=True):
            await relay.wait()
            await relay.stdout.aclose()


async def test_datagrams_through_the_relay_reach_the_pod_and_answers_their_client() -> None:
    opened: list[int] = []
    async with trio.open_nursery() as nursery:
        pod_port = await nursery.start(serve_echo_with_source)
        port = await nursery.start(partial(
            serve_udp_relay, partial(relay_process, pod_port, opened, 0.3)))
        # Sent before the stream to the relay is open: it waits for it.
        one = await ask(port, b"one")
        two = await ask(port, b"two")
        assert one.endswith(b":one") and two.endswith(b":two")
        assert one.partition(b":")[0] != two.partition(b":")[0]
        assert opened == [pod_port]  # one stream for every client
        nursery.cancel_scope.cancel()


async def test_a_relay_that_ends_is_reopened_for_the_next_datagram() -> None:
    opened: list[int] = []

    @contextlib.asynccontextmanager
    async def ending_at_once() -> AsyncIterator[trio.abc.Stream]:
        opened.append(0)
        if len(opened) == 1:
            left, right = trio.testing.memory_stream_pair()
            await right.aclose()
            yield left
            return
        async with relay_process(pod_port, opened) as stream:
            yield stream

    async with trio.open_nursery() as nursery:
        pod_port = await nursery.start(serve_echo_with_source)
        port = await nursery.start(partial(serve_udp_relay, ending_at_once))
        client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await client.bind(("127.0.0.1", 0))
        with client:
            await client.sendto(b"lost", ("127.0.0.1", port))
            answer = b""
            with trio.fail_after(5):
                while not answer.endswith(b":again"):
                    with trio.move_on_after(0.2):
                        answer = await ask(port, b"again", client)
        nursery.cancel_scope.cancel()


async def test_the_proxy_answers_each_client_from_its_own_socket() -> None:
    async with trio.open_nursery() as nursery:
        pod_port = await nursery.start(serve_echo_with_source)
        port = await nursery.start(partial(serve_udp_proxy, "127.0.0.1", pod_port))
        client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await client.bind(("127.0.0.1", 0))
        with client:
            first = await ask(port, b"a", client)
            second = await ask(port, b"b", client)
        other = await ask(port, b"c")
        assert first.partition(b":")[0] == second.partition(b":")[0]  # kept for the client
        assert other.partition(b":")[0] != first.partition(b":")[0]
        assert (first.partition(b":")[2], second.partition(b":")[2]) == (b"a", b"b")
        nursery.cancel_scope.cancel()


async def test_the_proxy_forgets_quiet_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "PEER_IDLE_SECONDS", 0.2)
    async with trio.open_nursery() as nursery:
        pod_port = await nursery.start(serve_echo_with_source)
        port = await nursery.start(partial(serve_udp_proxy, "127.0.0.1", pod_port))
        client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await client.bind(("127.0.0.1", 0))
        with client:
            await ask(port, b"a", client)
            assert sockets_towards(pod_port) == 1
            await trio.sleep(0.3)
            assert sockets_towards(pod_port) == 0
            assert (await ask(port, b"b", client)).endswith(b":b")
        nursery.cancel_scope.cancel()
