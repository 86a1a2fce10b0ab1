"""Request bodies read with backpressure.

Quart's connection appends every ASGI body message to the request's buffer as soon as the
server delivers it, however slowly the route reads: a 1 GB `PUT /archive` towards a slow pod
would sit in memory. Here the connection waits while the buffer holds `BUFFER_LIMIT` bytes
that the route has not taken yet, so hypercorn stops reading the socket and TCP slows the
client down. A route that awaits the whole body (JSON requests) lifts the limit.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import trio
from quart_trio.asgi import TrioASGIHTTPConnection
from quart_trio.wrappers.request import TrioBody, TrioRequest

BUFFER_LIMIT = 1024 * 1024


class BoundedBody(TrioBody):
    def __init__(self, expected_content_length: int | None,
                 max_content_length: int | None) -> None:
        super().__init__(expected_content_length, max_content_length)
        self._taken = trio.Event()
        self._whole = False

    async def feed(self, data: bytes) -> None:
        """Append `data` once the route has taken what was buffered beyond the limit."""
        while len(self._data) >= BUFFER_LIMIT and not self._whole:
            await self._taken.wait()
        self.append(data)

    async def __anext__(self) -> bytes:
        data = await super().__anext__()
        self._taken.set()
        self._taken = trio.Event()
        return data

    def __await__(self) -> Generator[Any, None, Any]:
        self._whole = True
        self._taken.set()
        return super().__await__()


class BoundedRequest(TrioRequest):
    body_class = BoundedBody


class BoundedHTTPConnection(TrioASGIHTTPConnection):
    async def handle_messages(  # type: ignore[override]
        self, nursery: trio.Nursery, request: Any, receive: Any
    ) -> None:
        body: BoundedBody = request.body
        while True:
            message = await receive()
            if message["type"] == "http.request":
                await body.feed(message.get("body", b""))
                if not message.get("more_body", False):
                    body.set_complete()
            elif message["type"] == "http.disconnect":
                break
        nursery.cancel_scope.cancel()
