"""Request bodies buffer at most about `BUFFER_LIMIT` bytes ahead of the route."""

from __future__ import annotations

import trio

from kubedock.api._body import BUFFER_LIMIT, BoundedBody

CHUNK = 64 * 1024


async def test_a_slow_reader_holds_the_feeder_back() -> None:
    body = BoundedBody(None, None)
    total = 8 * BUFFER_LIMIT
    largest = 0

    async def feed() -> None:
        nonlocal largest
        for _ in range(total // CHUNK):
            await body.feed(b"x" * CHUNK)
            largest = max(largest, len(body._data))
        body.set_complete()

    received = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        async for chunk in body:
            received += len(chunk)
            await trio.sleep(0.001)
    assert received == total
    assert largest <= BUFFER_LIMIT + CHUNK


async def test_awaiting_the_whole_body_lifts_the_limit() -> None:
    body = BoundedBody(None, None)

    async def feed() -> None:
        for _ in range(3 * BUFFER_LIMIT // CHUNK):
            await body.feed(b"y" * CHUNK)
        body.set_complete()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        with trio.fail_after(5):
            assert len(await body) == 3 * BUFFER_LIMIT
