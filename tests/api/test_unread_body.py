"""A request body the route never reads does not cost the client its pooled connection."""

from __future__ import annotations

from functools import partial

import trio
from clusterless import clusterless_engine

from kubedock.api import create_app, serve_http


async def test_answer_before_the_body_keeps_the_connection(nursery: trio.Nursery) -> None:
    (bound,) = await nursery.start(partial(serve_http, create_app(clusterless_engine(nursery)),
                                           ["127.0.0.1:0"]))
    host, port = bound.rsplit(":", 1)
    client = await trio.open_tcp_stream(host, int(port))
    # The route answers without the body; the body comes late, then the next request.
    await client.send_all(b"GET /containers/json HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n")
    await trio.sleep(0.2)
    await client.send_all(b"{}GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
    received = b""
    with trio.move_on_after(5):
        while received.count(b"HTTP/1.1 200") < 2 or not received.endswith(b"OK"):
            chunk = await client.receive_some()
            if not chunk:
                break
            received += chunk
    assert received.count(b"HTTP/1.1 200") == 2, received
    assert received.endswith(b"OK")
    await client.aclose()
