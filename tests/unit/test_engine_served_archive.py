"""kubedock's end of a served archive: the announcement, the token, the chunks both ways,
the pod network tried first, and the way back to the port-forward and then to the exec
whenever the pod network, the port-forward or the program in the pod will not serve."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio
import trio.testing

from kubedock import kube
from kubedock.engine import _served_archive as served_archive
from kubedock.podside import chunks, served

Serve = Callable[[trio.abc.Stream], Awaitable[None]]


class _Program(kube.ExecChannel):
    """The exec session of `kubedock archive get|put PATH --serve`: what it says, then its
    exit once `done` is set."""

    def __init__(self, said: bytes, exit_code: int) -> None:
        self._said = said
        self.exit_code = None
        self.status_message = None
        self._exit_code = exit_code
        self.done = trio.Event()
        self.done.set()

    async def receive(self) -> tuple[int, bytes] | None:
        await trio.lowlevel.checkpoint()
        if self._said:
            said, self._said = self._said, b""
            return 1, said
        await self.done.wait()
        self.exit_code = self._exit_code
        return None


class _Pod:
    """The routes to the program's listener, the program played by `serve`: the pod network
    (`connect`) and the cluster's port-forward (`open_port_forward`)."""

    def __init__(self, nursery: trio.Nursery, serve: Serve | None = None, *,
                 refusal: Exception | None = None, direct: Serve | Exception | None = None
                 ) -> None:
        self.nursery = nursery
        self.serve = serve
        self.refusal = refusal
        self.direct = direct
        self.forwarded: list[int] = []
        self.connected: list[tuple[str, int]] = []

    async def open_port_forward(self, pod: str, port: int) -> trio.abc.Stream:
        self.forwarded.append(port)
        if self.refusal is not None:
            raise self.refusal
        assert self.serve is not None
        return self._started(self.serve)

    async def connect(self, address: str, port: int) -> trio.abc.Stream:
        self.connected.append((address, port))
        if isinstance(self.direct, Exception):
            raise self.direct
        if self.direct is None:
            await trio.sleep_forever()  # a network that drops what kubedock sends
        assert self.direct is not None
        return self._started(self.direct)

    def _started(self, serve: Serve) -> trio.abc.Stream:
        ours, theirs = trio.testing.memory_stream_pair()
        self.nursery.start_soon(serve, theirs)
        return ours


def _session(program: _Program) -> contextlib.AbstractAsyncContextManager[kube.ExecChannel]:
    @contextlib.asynccontextmanager
    async def session() -> AsyncIterator[kube.ExecChannel]:
        yield program

    return session()


async def _read_token(stream: trio.abc.Stream) -> bytes:
    said = b""
    while not said.endswith(b"\n"):
        said += await stream.receive_some(1)
    return said


def _serving(data: bytes, tokens: list[bytes]) -> Serve:
    async def serve(stream: trio.abc.Stream) -> None:
        tokens.append(await _read_token(stream))
        await stream.send_all(served.READY)
        for start in range(0, len(data), 100_000):
            await stream.send_all(chunks.chunked(data[start : start + 100_000]))
        await stream.send_all(chunks.END_OF_CHUNKS)

    return serve


def _network(pod: _Pod) -> served_archive.PodNetwork:
    return served_archive.PodNetwork("auto", connect=pod.connect)


async def _get(pod: _Pod, network: served_archive.PodNetwork, address: str | None = "10.1.2.3",
               program: _Program | None = None) -> tuple[str, bytes] | None:
    """The route and the bytes of one get (None: left to the exec)."""
    program = program or _Program(b"40123 f00d\n", 0)
    async with served_archive.served(pod, network, "p", network.address(address),  # type: ignore[arg-type]
                                     _session(program)) as connection:
        if connection is None:
            return None
        received = b"".join([piece async for piece in served_archive.receive(connection)])
        return connection.route, received


async def test_the_archive_comes_over_the_pod_network_first() -> None:
    data = bytes(range(256)) * 5000
    tokens: list[bytes] = []
    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, direct=_serving(data, tokens))
        assert await _get(pod, _network(pod)) == ("pod network", data)
    assert pod.connected == [("10.1.2.3", 40123)] and pod.forwarded == []
    assert tokens == [b"f00d\n"]


async def test_over_a_port_forward_when_the_pod_network_is_not_tried() -> None:
    data = b"x" * 300_000
    tokens: list[bytes] = []
    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, _serving(data, tokens))
        never = served_archive.PodNetwork("never", connect=pod.connect)
        assert never.address("10.1.2.3") is None
        assert served_archive.serve_args(None) == ["--serve"]
        assert served_archive.serve_args("10.1.2.3") == ["--serve", "--pod-network"]
        assert await _get(pod, never) == ("port-forward", data)
        assert await _get(pod, _network(pod), address=None) == ("port-forward", data)
    assert pod.connected == [] and pod.forwarded == [40123, 40123]


async def test_a_refused_connection_falls_back_to_the_port_forward_and_is_not_remembered(
) -> None:
    tokens: list[bytes] = []
    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, _serving(b"abc", tokens), direct=ConnectionRefusedError(111, "no"))
        network = _network(pod)
        assert await _get(pod, network) == ("port-forward", b"abc")
        assert network.address("10.1.2.3") == "10.1.2.3"
    assert len(pod.connected) == 1 and pod.forwarded == [40123]


async def test_a_network_that_does_not_answer_is_left_alone_for_a_while(
        autojump_clock: trio.testing.MockClock) -> None:
    tokens: list[bytes] = []
    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, _serving(b"abc", tokens), direct=None)
        network = _network(pod)
        began = trio.current_time()
        assert await _get(pod, network) == ("port-forward", b"abc")
        assert trio.current_time() - began == pytest.approx(served_archive.CONNECT_SECONDS)
        # The next copies do not try the pod network again (nor wait for it)...
        assert network.address("10.1.2.3") is None
        began = trio.current_time()
        assert await _get(pod, network) == ("port-forward", b"abc")
        assert trio.current_time() == began
        assert len(pod.connected) == 1
        # ...until it is time to try again.
        await trio.sleep(served_archive.RETRY_SECONDS)
        assert network.address("10.1.2.3") == "10.1.2.3"
        pod.direct = _serving(b"def", tokens)
        assert await _get(pod, network) == ("pod network", b"def")
    assert len(pod.connected) == 2 and pod.forwarded == [40123, 40123]


async def test_no_route_to_the_pod_is_remembered_too() -> None:
    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, _serving(b"abc", []), direct=OSError(113, "No route to host"))
        network = _network(pod)
        assert await _get(pod, network) == ("port-forward", b"abc")
        assert network.address("10.1.2.3") is None


async def test_a_peer_that_does_not_take_the_token_falls_back_and_is_remembered() -> None:
    async def stranger(stream: trio.abc.Stream) -> None:
        await _read_token(stream)
        await stream.aclose()  # as the program does with a wrong token, or another service

    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, _serving(b"abc", []), direct=stranger)
        network = _network(pod)
        assert await _get(pod, network) == ("port-forward", b"abc")
        assert network.address("10.1.2.3") is None


async def test_a_program_from_before_serve_leaves_the_copy_to_the_exec() -> None:
    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery)
        program = _Program(b"usage: kubedock archive stat|get|put PATH\n", 64)
        assert await _get(pod, _network(pod), program=program) is None
    assert pod.forwarded == [] and pod.connected == []


async def test_a_refused_port_forward_leaves_the_copy_to_the_exec() -> None:
    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, refusal=kube.PortForwardFailed("connection refused"),
                   direct=ConnectionRefusedError(111, "no"))
        assert await _get(pod, _network(pod)) is None
    assert pod.forwarded == [40123]


async def test_a_connection_the_program_does_not_take_leaves_the_copy_to_the_exec() -> None:
    async def serve(stream: trio.abc.Stream) -> None:
        await _read_token(stream)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, serve)
        assert await _get(pod, _network(pod), address=None) is None


async def test_a_connection_ending_inside_the_archive_is_an_error() -> None:
    async def serve(stream: trio.abc.Stream) -> None:
        await _read_token(stream)
        await stream.send_all(served.READY + chunks.chunk_head(10) + b"abc")
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, direct=serve)
        network = _network(pod)
        async with served_archive.served(pod, network, "p", "10.1.2.3",  # type: ignore[arg-type]
                                         _session(_Program(b"40123 f00d\n", 1))) as connection:
            assert connection is not None
            received = []
            with pytest.raises(kube.ClusterUnreachable):
                async for piece in served_archive.receive(connection):
                    received.append(piece)
    assert received == [b"abc"]


async def test_a_put_goes_as_chunks_and_ends_with_the_program() -> None:
    taken = bytearray()
    program = _Program(b"40123 f00d\n", 0)
    program.done = trio.Event()

    async def serve(stream: trio.abc.Stream) -> None:
        await _read_token(stream)
        await stream.send_all(served.READY)
        decoder = chunks.ChunkDecoder()
        while not decoder.ended:
            taken.extend(b"".join(decoder.receive(await stream.receive_some())))
        program.done.set()

    async def produce(send: Callable[[bytes], Awaitable[None]]) -> None:
        for piece in (b"one", b"", b"two" * 100_000):
            await send(piece)

    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, direct=serve)
        network = _network(pod)
        async with served_archive.served(pod, network, "p", "10.1.2.3",  # type: ignore[arg-type]
                                         _session(program)) as connection:
            assert connection is not None
            await served_archive.send(connection, produce, bytearray())
    assert bytes(taken) == b"one" + b"two" * 100_000
    assert program.exit_code == 0


async def test_a_put_the_program_refuses_midway_ends_with_its_status() -> None:
    program = _Program(b"40123 f00d\n", 1)
    program.done = trio.Event()
    errors = bytearray()

    async def serve(stream: trio.abc.Stream) -> None:
        await _read_token(stream)
        await stream.send_all(served.READY)
        await stream.receive_some()
        program.done.set()
        await stream.aclose()

    async def produce(send: Callable[[bytes], Awaitable[None]]) -> None:
        while True:
            await send(b"x" * 65536)

    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, direct=serve)
        async with served_archive.served(pod, _network(pod), "p", "10.1.2.3",  # type: ignore[arg-type]
                                         _session(program)) as connection:
            assert connection is not None
            await served_archive.send(connection, produce, errors)
    assert program.exit_code == 1


async def test_with_the_stat_the_program_says_it_before_the_port() -> None:
    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, direct=_serving(b"abc", []))
        network = _network(pod)
        program = _Program(b'{"mode": 33188, "size": 3}\n40123 f00d\n', 0)
        async with served_archive.served(pod, network, "p", "10.1.2.3",  # type: ignore[arg-type]
                                         _session(program), with_stat=True) as connection:
            assert connection is not None
            assert connection.stat == b'{"mode": 33188, "size": 3}'
            assert b"".join([piece async for piece in served_archive.receive(connection)]) \
                == b"abc"
        # A program that cannot stat the path says no port: the caller asks again by exec.
        missing = _Program(b"no such file or directory: /nowhere\n", 2)
        async with served_archive.served(pod, network, "p", "10.1.2.3",  # type: ignore[arg-type]
                                         _session(missing), with_stat=True) as connection:
            assert connection is None
    assert len(pod.connected) == 1
