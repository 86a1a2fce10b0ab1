"""An unfollowed log body is read before the response head goes out, to follow it at once."""

from __future__ import annotations

from collections.abc import AsyncIterator

from kubedock.api._streams import read_ahead


class _Chunks:
    """An async iterator that records how far it was read."""

    def __init__(self, *items: bytes) -> None:
        self.items = list(items)
        self.read = 0

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        if self.read == len(self.items):
            raise StopAsyncIteration
        self.read += 1
        return self.items[self.read - 1]


async def _collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


async def test_a_short_body_is_read_whole_and_written_as_one_chunk() -> None:
    chunks = _Chunks(b"a", b"bc", b"d")
    body = await read_ahead(chunks)
    assert chunks.read == 3
    assert await _collect(body) == [b"abcd"]


async def test_an_empty_body_writes_nothing() -> None:
    assert await _collect(await read_ahead(_Chunks())) == []


async def test_past_the_limit_the_rest_streams() -> None:
    chunks = _Chunks(b"ab", b"cd", b"e", b"f")
    body = await read_ahead(chunks, limit=3)
    assert chunks.read == 2
    assert await _collect(body) == [b"abcd", b"e", b"f"]
