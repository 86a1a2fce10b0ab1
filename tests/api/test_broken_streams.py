"""A streamed answer that breaks off below the API (a copy out cut by the API server) ends its
connection without the body's last chunk, on a real hypercorn: the client sees a failed
transfer, not a short one that looks whole, and the server logs the reason, not a traceback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import partial

import pytest
import trio
from quart_trio import QuartTrio

from kubedock import kube
from kubedock.api._app import _ending_broken_streams
from kubedock.api._hijack import serve


def streaming_app() -> QuartTrio:
    app = QuartTrio(__name__)

    @app.route("/broken")
    async def broken() -> tuple[AsyncIterator[bytes], int]:
        async def body() -> AsyncIterator[bytes]:
            yield b"first part"
            await trio.sleep(0.01)
            raise kube.ClusterUnreachable("the exec session ended without a status")

        return body(), 200

    return app


async def test_a_broken_stream_ends_the_connection_without_the_last_chunk(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture,
) -> None:
    (bound,) = await nursery.start(partial(
        serve, _ending_broken_streams(streaming_app()), binds=["127.0.0.1:0"]))
    host, port = bound.rsplit(":", 1)
    async with await trio.open_tcp_stream(host, int(port)) as client:
        await client.send_all(b"GET /broken HTTP/1.1\r\nHost: docker\r\n\r\n")
        received = b""
        with trio.fail_after(5):
            while data := await client.receive_some():
                received += data
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"first part" in body
    assert not body.endswith(b"0\r\n\r\n")
    assert "GET /broken broke off: the exec session ended without a status" in caplog.text
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
