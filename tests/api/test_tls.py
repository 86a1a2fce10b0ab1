"""TLS and mutual TLS on the API listeners, served by hypercorn at port 0."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from clusterless import clusterless_engine
from test_hijack import (
    EXEC_REQUEST,
    FRAMES,
    UPGRADE,
    UPGRADED_HEAD,
    Recorder,
    connect_with_a_small_buffer,
    make_app,
    seconds_to_stop_beside_a_client_reading_nothing,
)

from kubedock._sidecar_tls import new_sidecar_identity
from kubedock.api import ServerTLS, create_app, serve_http
from kubedock.podside._dind import tls_context


def client_context(tls: Any, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca)
    if cert and key:
        context.load_cert_chain(cert, key)
    return context


@pytest.fixture
async def kubedock_api(nursery: trio.Nursery, tls_files: Any, tmp_path: Path
                       ) -> AsyncIterator[list[str]]:
    """kubedock's app with mutual TLS on TCP, and a unix socket: [host:port, unix:path]."""
    async with trio.open_nursery() as engine_nursery:
        engine = clusterless_engine(engine_nursery)
        tls = ServerTLS(str(tls_files.server_cert), str(tls_files.server_key), str(tls_files.ca))
        binds = ["127.0.0.1:0", f"unix:{tmp_path / 'docker.sock'}"]
        yield await nursery.start(serve_http, create_app(engine), binds, tls)
        engine_nursery.cancel_scope.cancel()


async def ping(bound: str, context: ssl.SSLContext) -> httpx.Response:
    async with httpx.AsyncClient(verify=context) as client:
        return await client.get(f"https://{bound}/_ping")


async def test_a_client_with_a_certificate_is_served(kubedock_api: list[str],
                                                     tls_files: Any) -> None:
    context = client_context(tls_files, tls_files.client_cert, tls_files.client_key)
    answer = await ping(kubedock_api[0], context)
    assert (answer.status_code, answer.text) == (200, "OK")


@pytest.mark.parametrize("who", ["no certificate", "stranger"])
async def test_other_clients_are_refused_in_the_handshake(kubedock_api: list[str],
                                                          tls_files: Any, who: str,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    caplog.set_level(logging.INFO, "kubedock")
    if who == "stranger":
        context = client_context(tls_files, tls_files.stranger_cert, tls_files.stranger_key)
    else:
        context = client_context(tls_files, None, None)
    host, port = kubedock_api[0].rsplit(":", 1)
    # In TLS 1.3 the client's side of the handshake ends before the server has checked the
    # client's certificate: the refusal reaches the client as the end of the connection.
    async with await trio.open_ssl_over_tcp_stream(host, int(port), ssl_context=context) as client:
        with pytest.raises(trio.BrokenResourceError):
            await client.send_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
            with trio.fail_after(5):
                await client.receive_some()
    [refusal] = [r.getMessage() for r in caplog.records if "TLS handshake" in r.getMessage()]
    assert "refused" in refusal and "CERTIFICATE" in refusal


async def test_plain_http_gets_no_answer_on_the_tls_listener(kubedock_api: list[str]) -> None:
    with pytest.raises(httpx.TransportError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://{kubedock_api[0]}/_ping")


async def test_the_unix_socket_stays_plain(kubedock_api: list[str]) -> None:
    transport = httpx.AsyncHTTPTransport(uds=kubedock_api[1].removeprefix("unix:"))
    async with httpx.AsyncClient(transport=transport) as client:
        answer = await client.get("http://docker/_ping")
    assert (answer.status_code, answer.text) == (200, "OK")


async def test_a_raw_stream_is_taken_over_tls(nursery: trio.Nursery, tls_files: Any) -> None:
    tls = ServerTLS(str(tls_files.server_cert), str(tls_files.server_key), str(tls_files.ca))
    (bound,) = await nursery.start(partial(serve_http, make_app(Recorder()), ["127.0.0.1:0"], tls))
    host, port = bound.rsplit(":", 1)
    context = client_context(tls_files, tls_files.client_cert, tls_files.client_key)
    async with await trio.open_ssl_over_tcp_stream(host, int(port), ssl_context=context) as client:
        await client.send_all(EXEC_REQUEST % UPGRADE)
        received = b""
        with trio.fail_after(5):
            while data := await client.receive_some():
                received += data
    assert received == UPGRADED_HEAD + FRAMES


async def test_a_tls_client_reading_nothing_holds_no_shutdown(tls_files: Any) -> None:
    tls = ServerTLS(str(tls_files.server_cert), str(tls_files.server_key), str(tls_files.ca))
    context = client_context(tls_files, tls_files.client_cert, tls_files.client_key)

    async def connect(host: str, port: int) -> trio.SSLStream[trio.SocketStream]:
        stream = trio.SSLStream(await connect_with_a_small_buffer(host, port), context,
                                server_hostname=host)
        await stream.do_handshake()
        return stream

    stopped = await seconds_to_stop_beside_a_client_reading_nothing(
        partial(serve_http, make_app(Recorder()), ["127.0.0.1:0"], tls), connect)
    assert stopped < 2


async def test_kubedocks_own_sidecars_are_clients_too(nursery: trio.Nursery, tls_files: Any,
                                                      tmp_path: Path) -> None:
    sidecar = new_sidecar_identity("abc", str(tls_files.server_cert))
    for name, text in sidecar.files.items():
        (tmp_path / name).write_text(text)
    tls = ServerTLS(str(tls_files.server_cert), str(tls_files.server_key), str(tls_files.ca),
                    own_clients=sidecar.certificate)
    (bound,) = await nursery.start(serve_http, make_app(Recorder()), ["127.0.0.1:0"], tls)
    # What the sidecar trusts is kubedock's certificate itself, whatever name reaches it.
    context = tls_context(str(tmp_path))
    async with httpx.AsyncClient(verify=context) as client:
        answer = await client.get(f"https://{bound.replace('127.0.0.1', 'localhost')}/version")
    assert answer.json() == {"ApiVersion": "1.41"}
