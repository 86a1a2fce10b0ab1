"""kubedock's end of a served archive: the announcement, the token, the chunks, and the way
back to the exec whenever the program in the pod or the port-forward will not serve."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from kubedock import kube
from kubedock.engine import _served_archive as served_archive
from kubedock.podside import chunks


class _Program(kube.ExecChannel):
    """The exec session of `kubedock archive get PATH --serve`: what it says, then its exit."""

    def __init__(self, said: bytes, exit_code: int) -> None:
        self._said = said
        self.exit_code = None
        self.status_message = None
        self._exit_code = exit_code

    async def receive(self) -> tuple[int, bytes] | None:
        await trio.lowlevel.checkpoint()
        if self._said:
            said, self._said = self._said, b""
            return 1, said
        self.exit_code = self._exit_code
        return None


class _Pod:
    """The cluster's port-forward to the program's listener, the program played by `serve`."""

    def __init__(self, nursery: trio.Nursery, serve: object = None,
                 refusal: Exception | None = None) -> None:
        self.nursery = nursery
        self.serve = serve
        self.refusal = refusal
        self.forwarded: list[int] = []

    async def open_port_forward(self, pod: str, port: int) -> trio.abc.Stream:
        self.forwarded.append(port)
        if self.refusal is not None:
            raise self.refusal
        ours, theirs = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self.serve, theirs)  # type: ignore[arg-type]
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


async def test_the_archive_comes_over_the_connection_the_program_announced() -> None:
    data = bytes(range(256)) * 5000
    tokens: list[bytes] = []

    async def serve(stream: trio.abc.Stream) -> None:
        tokens.append(await _read_token(stream))
        await stream.send_all(chunks.READY)
        for start in range(0, len(data), 100_000):
            piece = data[start : start + 100_000]
            await stream.send_all(chunks.chunk_head(len(piece)) + piece)
        await stream.send_all(chunks.END_OF_CHUNKS)

    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, serve)
        program = _Program(b"40123 f00d\n", 0)
        async with served_archive.served(pod, "p", _session(program)) as connection:  # type: ignore[arg-type]
            assert connection is not None
            received = b"".join([piece async for piece in served_archive.receive(connection)])
    assert received == data
    assert pod.forwarded == [40123] and tokens == [b"f00d\n"]


async def test_a_program_from_before_serve_leaves_the_copy_to_the_exec() -> None:
    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery)
        program = _Program(b"usage: kubedock archive stat|get|put PATH\n", 64)
        async with served_archive.served(pod, "p", _session(program)) as connection:  # type: ignore[arg-type]
            assert connection is None
    assert pod.forwarded == []


async def test_a_refused_port_forward_leaves_the_copy_to_the_exec() -> None:
    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, refusal=kube.PortForwardFailed("connection refused"))
        async with served_archive.served(pod, "p", _session(_Program(b"40123 f00d\n", 1))  # type: ignore[arg-type]
                                         ) as connection:
            assert connection is None
    assert pod.forwarded == [40123]


async def test_a_connection_the_program_does_not_take_leaves_the_copy_to_the_exec() -> None:
    async def serve(stream: trio.abc.Stream) -> None:
        await _read_token(stream)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, serve)
        async with served_archive.served(pod, "p", _session(_Program(b"40123 f00d\n", 1))  # type: ignore[arg-type]
                                         ) as connection:
            assert connection is None


async def test_a_connection_ending_inside_the_archive_is_an_error() -> None:
    async def serve(stream: trio.abc.Stream) -> None:
        await _read_token(stream)
        await stream.send_all(chunks.READY + chunks.chunk_head(10) + b"abc")
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        pod = _Pod(nursery, serve)
        async with served_archive.served(pod, "p", _session(_Program(b"40123 f00d\n", 1))  # type: ignore[arg-type]
                                         ) as connection:
            assert connection is not None
            received = []
            with pytest.raises(kube.ClusterUnreachable):
                async for piece in served_archive.receive(connection):
                    received.append(piece)
    assert received == [b"abc"]
