"""Shaping a streamed response body into the writes a Docker engine would make."""

from __future__ import annotations

from collections.abc import AsyncIterator

# What an unfollowed log is read ahead up to, to be written right behind the response head.
READ_AHEAD_LIMIT = 1 << 20


async def read_ahead(chunks: AsyncIterator[bytes],
                     limit: int = READ_AHEAD_LIMIT) -> AsyncIterator[bytes]:
    """Read ``chunks`` now, until they end or reach ``limit`` bytes; the body returned yields
    what was read as one chunk, then streams the rest.

    Docker writes the logs of a stopped container together with the response head, so the whole
    answer arrives at once. Clients rely on it: Testcontainers for Node stops keeping its process
    alive for the log socket once the head came, and a body that follows later is never read (the
    process runs out of work and exits). Reading before the head is sent keeps the head, the
    logs and the end of the body back to back.
    """
    held: list[bytes] = []
    size = 0
    ended = False
    while size < limit and not ended:
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            ended = True
        else:
            held.append(chunk)
            size += len(chunk)

    async def body() -> AsyncIterator[bytes]:
        if held:
            yield b"".join(held)
        if not ended:
            async for rest in chunks:
                yield rest

    return body()
