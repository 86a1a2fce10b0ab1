"""The DNS server: UDP and TCP on one port; ours answered from the view, the rest relayed."""

from __future__ import annotations

import errno
import logging
import secrets
import struct
from functools import partial

import trio

from ._message import (
    FORMERR,
    SERVFAIL,
    UDP_LIMIT,
    MalformedMessage,
    Query,
    error_reply,
    message_id,
    parse_query,
    with_id,
)
from ._resolve import resolve, settled
from ._view import View, normal_ip

log = logging.getLogger(__name__)

UPSTREAM_TIMEOUT = 4.0
# How long an answer may wait for a starting pod to be reported: the kubelet reports a new
# pod's address and readiness within about a second of `main` starting, and stub resolvers
# give up on a server after 5 s.
HOLD = 3.0
_MAX_HELD = 256  # UDP queries waiting at once; beyond that they are answered as things stand
_TCP_IDLE_TIMEOUT = 10.0
_MAX_UDP = 65535
_BIND_ATTEMPTS = 20


class Views:
    """The current view, replaced as the pods change; answers may wait for the next one."""

    def __init__(self, view: View) -> None:
        self.current = view
        self._replaced = trio.Event()

    def replace(self, view: View) -> None:
        self.current = view
        self._replaced.set()
        self._replaced = trio.Event()

    async def settled(self, source: str, query: Query, hold: float) -> View:
        """The first view in which the answer to ``query`` is final, or the current one after
        ``hold`` seconds."""
        started = trio.current_time()
        waited = False
        with trio.move_on_after(hold) as waiting:
            while not settled(self.current, source, query.question):
                waited = True
                await self._replaced.wait()
        if waited:
            # Worth telling: a pod took longer than that to be reported or to become Ready.
            log.log(logging.INFO if waiting.cancelled_caught else logging.DEBUG,
                    "%s for %s from %s after %.0f ms of waiting for a starting pod",
                    "gave up" if waiting.cancelled_caught else "answered",
                    query.question.name, source, (trio.current_time() - started) * 1000)
        return self.current


async def serve_dns(
    views: Views,
    upstream: tuple[str, int],
    *,
    host: str = "0.0.0.0",
    port: int = 53,
    hold: float = HOLD,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve on ``host:port`` (UDP and TCP); reports the bound port.

    Each query is answered from the view current when it arrived, unless its answer waits on
    a starting pod (see `settled`): then from the first view that settles it, for at most
    ``hold`` seconds. ``upstream`` answers everything that is not a kubedock pod's name; its
    answer goes back as it came (rcode included), only the message id restored.
    """
    udp, listeners = await _bind(host, port)
    bound = udp.getsockname()[1]
    held = trio.CapacityLimiter(_MAX_HELD)
    with udp:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.serve_listeners,
                                       partial(_serve_tcp, views, upstream, hold), listeners))
            task_status.started(bound)
            while True:
                data, source = await udp.recvfrom(_MAX_UDP)
                ip = normal_ip(source[0])
                query = _parse(data, ip)
                if isinstance(query, bytes):
                    if query:
                        await _send_udp(udp, query, source)
                    continue
                # Settled names of ours are answered in line; waits and relays get a task each.
                view = views.current
                final = settled(view, ip, query.question)
                if final:
                    reply = _answer_locally(view, query, data, ip, tcp=False)
                    if reply is not None:
                        if reply:
                            await _send_udp(udp, reply, source)
                        continue
                nursery.start_soon(_answer_udp, udp, views, upstream, 0.0 if final else hold,
                                   held, query, data, source)


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
        except BaseException:
            udp.close()  # cancelled: no socket left for the garbage collector to warn about
            raise
    raise OSError(errno.EADDRINUSE, f"no port free for both UDP and TCP on {host}")


async def _answer_udp(udp: trio.socket.SocketType, views: Views, upstream: tuple[str, int],
                      hold: float, held: trio.CapacityLimiter, query: Query, data: bytes,
                      source: tuple[str, int]) -> None:
    ip = normal_ip(source[0])
    view = views.current
    if hold:
        token = object()
        try:
            held.acquire_on_behalf_of_nowait(token)
        except trio.WouldBlock:
            pass  # too many waiting already: this one is answered as things stand
        else:
            try:
                view = await views.settled(ip, query, hold)
            finally:
                held.release_on_behalf_of(token)
    reply = _answer_locally(view, query, data, ip, tcp=False)
    if reply is None:
        reply = await _relay(upstream, data, tcp=False)
    if reply:
        await _send_udp(udp, reply, source)


async def _send_udp(udp: trio.socket.SocketType, reply: bytes, source: tuple[str, int]) -> None:
    try:
        await udp.sendto(reply, source)
    except OSError as error:
        log.debug("cannot answer %s: %s", source, error)


async def _serve_tcp(views: Views, upstream: tuple[str, int], hold: float,
                     stream: trio.SocketStream) -> None:
    source = normal_ip(stream.socket.getpeername()[0])
    async with stream:
        try:
            while True:
                with trio.move_on_after(_TCP_IDLE_TIMEOUT) as idle:
                    data = await _receive_frame(stream)
                if idle.cancelled_caught or data is None:
                    return
                query = _parse(data, source)
                if isinstance(query, bytes):
                    reply: bytes | None = query
                else:
                    view = await views.settled(source, query, hold)
                    reply = _answer_locally(view, query, data, source, tcp=True)
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


def _parse(data: bytes, source: str) -> Query | bytes:
    """The query in ``data``, or else the error reply to it (b"" to drop it)."""
    try:
        return parse_query(data)
    except MalformedMessage as error:
        log.debug("malformed query from %s: %s", source, error)
        return error_reply(data, FORMERR) or b""


def _answer_locally(view: View, query: Query, data: bytes, source: str, *,
                    tcp: bool) -> bytes | None:
    """Our reply to ``query``; None when the upstream server answers it, b"" to drop it."""
    try:
        return resolve(view, source, query, limit=None if tcp else UDP_LIMIT)
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
