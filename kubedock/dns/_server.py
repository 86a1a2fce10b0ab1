"""The DNS server: UDP and TCP on one port; ours answered from the view, the rest relayed."""

from __future__ import annotations

import errno
import logging
import secrets
import struct
from collections.abc import Callable
from functools import partial

import trio

from ._message import (
    FORMERR,
    SERVFAIL,
    UDP_LIMIT,
    MalformedMessage,
    error_reply,
    message_id,
    parse_query,
    with_id,
)
from ._resolve import resolve
from ._view import View, normal_ip

log = logging.getLogger(__name__)

UPSTREAM_TIMEOUT = 4.0
_TCP_IDLE_TIMEOUT = 10.0
_MAX_UDP = 65535
_BIND_ATTEMPTS = 20


async def serve_dns(
    view: Callable[[], View],
    upstream: tuple[str, int],
    *,
    host: str = "0.0.0.0",
    port: int = 53,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve on ``host:port`` (UDP and TCP); reports the bound port.

    ``view`` gives the current snapshot: each query is answered from the one current when it
    arrived. ``upstream`` answers everything that is not a kubedock pod's name; its answer goes
    back as it came (rcode included), only the message id restored.
    """
    udp, listeners = await _bind(host, port)
    bound = udp.getsockname()[1]
    with udp:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.serve_listeners, partial(_serve_tcp, view, upstream),
                                       listeners))
            task_status.started(bound)
            while True:
                data, source = await udp.recvfrom(_MAX_UDP)
                # Our own names are answered in line; only relays wait, each in its own task.
                reply = _answer_locally(view(), data, source[0], tcp=False)
                if reply is None:
                    nursery.start_soon(_relay_udp, udp, upstream, data, source)
                elif reply:
                    await _send_udp(udp, reply, source)


async def _bind(host: str, port: int
                ) -> tuple[trio.socket.SocketType, list[trio.SocketListener]]:
    """A UDP socket and TCP listeners on one port; port 0 picks one free for both."""
    family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
    for _attempt in range(_BIND_ATTEMPTS):
        udp = trio.socket.socket(family, trio.socket.SOCK_DGRAM)
        try:
            await udp.bind((host, port))
            return udp, await trio.open_tcp_listeners(udp.getsockname()[1], host=host)
        except OSError as error:
            udp.close()
            # The port UDP got may be taken for TCP; another free one will do.
            if port != 0 or error.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no port free for both UDP and TCP on {host}")


async def _relay_udp(udp: trio.socket.SocketType, upstream: tuple[str, int], data: bytes,
                     source: tuple[str, int]) -> None:
    await _send_udp(udp, await _relay(upstream, data, tcp=False), source)


async def _send_udp(udp: trio.socket.SocketType, reply: bytes, source: tuple[str, int]) -> None:
    try:
        await udp.sendto(reply, source)
    except OSError as error:
        log.debug("cannot answer %s: %s", source, error)


async def _serve_tcp(view: Callable[[], View], upstream: tuple[str, int],
                     stream: trio.SocketStream) -> None:
    source = stream.socket.getpeername()[0]
    async with stream:
        try:
            while True:
                with trio.move_on_after(_TCP_IDLE_TIMEOUT) as idle:
                    data = await _receive_frame(stream)
                if idle.cancelled_caught or data is None:
                    return
                reply = _answer_locally(view(), data, source, tcp=True)
                if reply is None:
                    reply = await _relay(upstream, data, tcp=True)
                if not reply:
                    return
                await stream.send_all(struct.pack(">H", len(reply)) + reply)
        except trio.BrokenResourceError:
            return


async def _receive_frame(stream: trio.abc.ReceiveStream) -> bytes | None:
    """One length-prefixed TCP message (RFC 1035 §4.2.2); None at end of stream."""
    buffer = b""
    wanted = 2
    length: int | None = None
    while len(buffer) < wanted:
        chunk = await stream.receive_some(wanted - len(buffer))
        if not chunk:
            return None
        buffer += chunk
        if length is None and len(buffer) >= 2:
            length = struct.unpack(">H", buffer[:2])[0]
            buffer, wanted = buffer[2:], length
    return buffer


def _answer_locally(view: View, data: bytes, source: str, *, tcp: bool) -> bytes | None:
    """Our reply to ``data``; None when the upstream server answers it, b"" to drop it."""
    try:
        query = parse_query(data)
    except MalformedMessage as error:
        log.debug("malformed query from %s: %s", source, error)
        return error_reply(data, FORMERR) or b""
    try:
        return resolve(view, normal_ip(source), query, limit=None if tcp else UDP_LIMIT)
    except Exception:
        log.exception("cannot answer %s from %s", query.question, source)
        return error_reply(data, SERVFAIL) or b""


async def _relay(upstream: tuple[str, int], data: bytes, *, tcp: bool) -> bytes:
    relayed = await _forward(upstream, data, tcp=tcp)
    return relayed if relayed is not None else error_reply(data, SERVFAIL) or b""


async def _forward(upstream: tuple[str, int], data: bytes, *, tcp: bool) -> bytes | None:
    """The upstream's answer to ``data`` (id restored), None if it does not answer in time."""
    original_id = message_id(data)
    assert original_id is not None
    # A fresh id and socket per query: an answer cannot be taken for another query's.
    relay_id = secrets.randbits(16)
    with trio.move_on_after(UPSTREAM_TIMEOUT):
        try:
            if tcp:
                stream = await trio.open_tcp_stream(*upstream)
                async with stream:
                    message = with_id(data, relay_id)
                    await stream.send_all(struct.pack(">H", len(message)) + message)
                    reply = await _receive_frame(stream)
            else:
                reply = await _forward_udp(upstream, with_id(data, relay_id), relay_id)
        except OSError as error:
            log.warning("upstream DNS %s:%d failed: %s", *upstream, error)
            return None
        if reply is not None and message_id(reply) == relay_id:
            return with_id(reply, original_id)
    return None


async def _forward_udp(upstream: tuple[str, int], message: bytes, relay_id: int) -> bytes:
    family = trio.socket.AF_INET6 if ":" in upstream[0] else trio.socket.AF_INET
    with trio.socket.socket(family, trio.socket.SOCK_DGRAM) as sock:
        await sock.connect(upstream)
        await sock.send(message)
        while True:
            reply = await sock.recv(_MAX_UDP)
            if message_id(reply) == relay_id:
                return reply
