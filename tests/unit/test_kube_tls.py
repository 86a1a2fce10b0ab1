"""The websocket's TLS stream against trio's own TLS server on loopback."""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from kubedock.kube._tls import TlsStream

ServerSide = Callable[[trio.SSLStream[trio.SocketStream]], Awaitable[None]]


async def with_server(tls_files: Any, serve: ServerSide,
                      client: Callable[[TlsStream], Awaitable[None]],
                      trusted: bool = True) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tls_files.server_cert, tls_files.server_key)
    client_context = ssl.create_default_context(
        cafile=str(tls_files.ca if trusted else tls_files.stranger_cert))

    async def handler(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, server_context, server_side=True)
        with contextlib.suppress(trio.BrokenResourceError, ssl.SSLError):
            await serve(tls)

    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    async with listener, trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handler, [listener])
        with trio.fail_after(20):
            tls = TlsStream(await trio.open_tcp_stream("127.0.0.1", port), client_context,
                            "localhost")
            try:
                await tls.do_handshake()
                await client(tls)
            finally:
                await tls.aclose()
        nursery.cancel_scope.cancel()


async def read_all(stream: trio.abc.ReceiveStream, sizes: list[int] | None = None) -> bytes:
    received = bytearray()
    while data := await stream.receive_some():
        received += data
        if sizes is not None:
            sizes.append(len(data))
    return bytes(received)


@pytest.mark.parametrize("close_notify", [True, False])
async def test_a_large_download_arrives_whole_and_in_large_reads(
        tls_files: Any, close_notify: bool) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 7)

    async def serve(tls: trio.SSLStream[trio.SocketStream]) -> None:
        await tls.send_all(payload)
        if close_notify:
            await tls.aclose()
        else:
            await tls.transport_stream.aclose()

    sizes: list[int] = []

    async def client(tls: TlsStream) -> None:
        assert await read_all(tls, sizes) == payload
        assert await tls.receive_some() == b""

    await with_server(tls_files, serve, client)
    # One TLS record holds 16 KiB; a read hands on every record that has arrived.
    assert max(sizes) > 16 * 1024


async def test_sending_and_receiving_at_once(tls_files: Any) -> None:
    payload = os.urandom(2 * 1024 * 1024)

    async def serve(tls: trio.SSLStream[trio.SocketStream]) -> None:
        received = 0
        while received < len(payload):
            data = await tls.receive_some()
            received += len(data)
            await tls.send_all(data)
        await tls.aclose()

    async def client(tls: TlsStream) -> None:
        async def upload() -> None:
            for start in range(0, len(payload), 100_000):
                await tls.send_all(payload[start:start + 100_000])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(upload)
            assert await read_all(tls) == payload

    await with_server(tls_files, serve, client)


async def test_max_bytes_is_honoured_and_nothing_is_lost(tls_files: Any) -> None:
    async def serve(tls: trio.SSLStream[trio.SocketStream]) -> None:
        await tls.send_all(b"0123456789")
        await tls.aclose()

    async def client(tls: TlsStream) -> None:
        assert await tls.receive_some(4) == b"0123"
        assert await read_all(tls) == b"456789"

    await with_server(tls_files, serve, client)


async def test_an_untrusted_server_fails_the_handshake(tls_files: Any) -> None:
    async def serve(tls: trio.SSLStream[trio.SocketStream]) -> None:
        await tls.do_handshake()

    async def client(tls: TlsStream) -> None:
        raise AssertionError("the handshake should have failed")

    with pytest.RaisesGroup(ssl.SSLError, flatten_subgroups=True):
        await with_server(tls_files, serve, client, trusted=False)


async def test_a_second_connection_resumes_the_first_ones_session(tls_files: Any) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tls_files.server_cert, tls_files.server_key)
    client_context = ssl.create_default_context(cafile=str(tls_files.ca))

    async def handler(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, server_context, server_side=True)
        with contextlib.suppress(trio.BrokenResourceError, ssl.SSLError):
            await tls.send_all(b"hello")
            await tls.aclose()

    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    resumed = []
    async with listener, trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handler, [listener])
        session = None
        for _ in range(2):
            tls = TlsStream(await trio.open_tcp_stream("127.0.0.1", port), client_context,
                            "localhost", session=session)
            await tls.do_handshake()
            assert await read_all(tls) == b"hello"
            assert tls.context is client_context
            session = tls.session
            resumed.append(tls._ssl.session_reused)
            await tls.aclose()
        nursery.cancel_scope.cancel()
    assert resumed == [False, True]
