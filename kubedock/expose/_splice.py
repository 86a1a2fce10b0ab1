"""Serving an exposed port and copying bytes both ways, shared by every port exposer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from kubedock._metrics import EXPOSED_BYTES
from kubedock.kube import KubeError

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024
_AHEAD = 2  # chunks read but not yet written, per direction of a connection
# What ends one tunnelled connection (and only it): either side going away, or the cluster.
CONNECTION_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError, KubeError)


async def serve_tunnels(
    listener: trio.abc.Listener[trio.SocketStream],
    handler: Callable[[trio.SocketStream], Awaitable[None]],
    description: str,
) -> None:
    """Serve each connection to `listener` with `handler`, until cancelled; close `listener`.

    An exposed port must not take kubedock down: an unexpected failure of one connection is
    logged and ends that connection only, and one of the listener itself ends this port only.
    """

    async def contained(client: trio.SocketStream) -> None:
        try:
            await handler(client)
        except Exception:
            log.exception("%s: a connection failed", description)
            await trio.aclose_forcefully(client)

    async with listener:
        try:
            await trio.serve_listeners(contained, [listener])
        except Exception:
            log.exception("%s: stopped listening", description)


async def tunnel(
    client: trio.abc.Stream, connect: Callable[[], Awaitable[trio.abc.Stream]]
) -> None:
    """Open the far side for `client`, then splice them; `client` is closed in every case."""
    try:
        upstream = await connect()
    except BaseException as exc:
        await trio.aclose_forcefully(client)
        if isinstance(exc, CONNECTION_ERRORS):
            return
        raise
    await splice(client, upstream)


async def splice(left: trio.abc.Stream, right: trio.abc.Stream) -> None:
    """Pipe `left` and `right` into each other until both directions are done; close both.

    For metrics, `left` is the client ("in" is what it sends, "out" what it receives).

    An end of stream is passed on as a half-close when the other side can take one, and
    ends the whole connection when it cannot; an error on either side ends it too.
    """
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_copy, left, right, nursery.cancel_scope, "in")
            nursery.start_soon(_copy, right, left, nursery.cancel_scope, "out")
    finally:
        # Nested: when we are being cancelled, the first close re-raises Cancelled.
        try:
            await trio.aclose_forcefully(left)
        finally:
            await trio.aclose_forcefully(right)


async def _copy(source: trio.abc.Stream, sink: trio.abc.Stream, both: trio.CancelScope,
                direction: str) -> None:
    # Reading goes on while a write waits for a slow sink, a few chunks ahead at most:
    # the far side keeps sending, memory stays bounded, and backpressure still reaches it.
    ahead, behind = trio.open_memory_channel[bytes | bytearray](_AHEAD)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_read, source, ahead, both)
        await _write(behind, sink, both, direction)


async def _read(source: trio.abc.Stream, into: trio.MemorySendChannel[bytes | bytearray],
                both: trio.CancelScope) -> None:
    try:
        async with into:
            while data := await source.receive_some(_CHUNK):
                await into.send(data)
    except CONNECTION_ERRORS:
        both.cancel()


async def _write(chunks: trio.MemoryReceiveChannel[bytes | bytearray], sink: trio.abc.Stream,
                 both: trio.CancelScope, direction: str) -> None:
    try:
        async with chunks:
            async for data in chunks:
                await sink.send_all(data)
                EXPOSED_BYTES.inc(direction, amount=len(data))
        if not isinstance(sink, trio.abc.HalfCloseableStream):
            both.cancel()
            return
        await sink.send_eof()
    except CONNECTION_ERRORS:
        both.cancel()
