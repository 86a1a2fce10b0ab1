"""Docker endpoints kubedock lacks answer 501 naming themselves; unknown paths stay 404."""

from __future__ import annotations

from functools import partial

import httpx
import pytest
import trio

from kubedock.api import create_app, serve_http
from kubedock.engine import Engine

# (method, a concrete path, the endpoint as the message names it)
MISSING = [
    ("POST", "/containers/abc/pause", "POST /containers/{id}/pause"),
    ("POST", "/containers/abc/unpause", "POST /containers/{id}/unpause"),
    ("POST", "/commit", "POST /commit"),
    ("GET", "/containers/abc/changes", "GET /containers/{id}/changes"),
    ("GET", "/containers/abc/export", "GET /containers/{id}/export"),
    ("GET", "/containers/abc/attach/ws", "GET /containers/{id}/attach/ws"),
    ("PUT", "/volumes/data", "PUT /volumes/{name}"),
    ("POST", "/build/cancel", "POST /build/cancel"),
    ("POST", "/session", "POST /session"),
    ("GET", "/images/docker.io/library/busybox:1.36/history", "GET /images/{name}/history"),
    ("GET", "/images/search", "GET /images/search"),
    ("POST", "/auth", "POST /auth"),
    ("GET", "/distribution/busybox:1.36/json", "GET /distribution/{name}/json"),
    ("GET", "/plugins", "GET /plugins"),
    ("POST", "/plugins/vieux/sshfs:latest/enable", "POST /plugins/{name}/enable"),
    ("GET", "/swarm", "GET /swarm"),
    ("POST", "/swarm/init", "POST /swarm/init"),
    ("GET", "/nodes", "GET /nodes"),
    ("GET", "/services", "GET /services"),
    ("POST", "/services/create", "POST /services/create"),
    ("GET", "/tasks", "GET /tasks"),
    ("GET", "/secrets", "GET /secrets"),
    ("POST", "/secrets/create", "POST /secrets/create"),
    ("GET", "/configs", "GET /configs"),
    ("DELETE", "/configs/abc", "DELETE /configs/{id}"),
]


@pytest.mark.parametrize("prefix", ["", "/v1.45"])
@pytest.mark.parametrize(("method", "path", "endpoint"), MISSING,
                         ids=[f"{m} {p}" for m, p, _ in MISSING])
async def test_missing_endpoint_is_501_naming_it(
    client: httpx.AsyncClient, prefix: str, method: str, path: str, endpoint: str
) -> None:
    answer = await client.request(method, prefix + path)
    assert answer.status_code == 501
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["message"].startswith(f"{endpoint} is not supported by kubedock: ")


@pytest.mark.parametrize("path", ["/nothing", "/v1.45/nothing", "/containers/abc/nothing",
                                  "/volumes/a/b/c/d"])
async def test_unknown_path_is_page_not_found(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 404
    assert answer.json() == {"message": "page not found"}


async def test_a_known_path_with_another_method_is_page_not_found(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/v1.45/containers/create")
    assert answer.status_code == 404
    assert answer.json() == {"message": "page not found"}


async def test_implemented_endpoints_are_not_shadowed(client: httpx.AsyncClient) -> None:
    answer = await client.post("/containers/abc/resize", params={"h": 24, "w": 80})
    assert answer.status_code == 404
    assert answer.json() == {"message": "No such container: abc"}
    answer = await client.delete("/images/busybox:1.36")
    assert answer.status_code == 404


async def test_attach_over_a_websocket_is_501(nursery: trio.Nursery, engine: Engine) -> None:
    (bound,) = await nursery.start(partial(serve_http, create_app(engine),
                                           binds=["127.0.0.1:0"]))
    host, port = bound.rsplit(":", 1)
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        await stream.send_all(
            b"GET /v1.45/containers/abc/attach/ws?stream=1 HTTP/1.1\r\nHost: docker\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        received = b""
        with trio.fail_after(5):
            while b"}" not in received:
                data = await stream.receive_some()
                assert data, received
                received += data
    assert received.startswith(b"HTTP/1.1 501 ")
    assert b'"GET /containers/{id}/attach/ws is not supported by kubedock: ' in received
