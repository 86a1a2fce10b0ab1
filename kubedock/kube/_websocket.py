"""A small websocket client for the API server's streaming endpoints, native to trio.

kr8s's own websockets (httpx-ws) keep a background task group per session, so a session
cannot outlive the block that opened it and every error leaves it wrapped in an exception
group. Port-forward streams must be plain `trio.abc.Stream`s that the caller closes, so this
speaks the protocol itself (wsproto) with kr8s's credentials and TLS settings.

A connection can die without a word (the API server vanished, traffic is dropped): the
socket then waits forever. So a websocket pings the API server whenever it has heard nothing
for a while, and gives the connection up when not even the answer comes back in time. A
quiet session (an exec that prints nothing, an idle port-forward) stays alive: pongs count.
"""

from __future__ import annotations

import logging
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlencode

import attrs
import httpx
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from ._errors import ClusterUnreachable, KubeError, error_from_status

log = logging.getLogger(__name__)

_RECEIVE_SIZE = 65536
_HANDSHAKE_SECONDS = 30


@attrs.frozen
class KeepalivePolicy:
    """After `interval` seconds of silence from the server a ping goes out; a connection
    that stays silent for `timeout` seconds more is dead."""

    interval: float = 20.0
    timeout: float = 20.0


KEEPALIVE = KeepalivePolicy()


class Keepalive:
    """The ping bookkeeping of one connection, on trio's clock but free of I/O.

    Anything heard from the server proves the connection alive, a pong or data alike.
    """

    def __init__(self, policy: KeepalivePolicy, now: float) -> None:
        self.policy = policy
        self._heard = now
        self._pinged: float | None = None

    def heard(self, now: float) -> None:
        self._heard = now
        self._pinged = None

    def pinged(self, now: float) -> None:
        self._pinged = now

    def deadline(self) -> float:
        """When `due` next has something to say."""
        if self._pinged is None:
            return self._heard + self.policy.interval
        return self._pinged + self.policy.timeout

    def due(self, now: float) -> Literal["ping", "dead"] | None:
        if now < self.deadline():
            return None
        return "ping" if self._pinged is None else "dead"

    def silence(self, now: float) -> float:
        return now - self._heard


class WebSocket:
    """One open websocket. Messages are whole binary messages; `None` means closed.

    The connection is watched (`KeepalivePolicy`) while a task waits in `receive`: a dead
    one raises `ClusterUnreachable` there.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        connection: WSConnection,
        subprotocol: str | None,
        pending: Sequence[Event] = (),
        keepalive: KeepalivePolicy = KEEPALIVE,
    ) -> None:
        self.subprotocol = subprotocol
        self._stream = stream
        self._connection = connection
        self._events: deque[Event] = deque(pending)
        self._partial = bytearray()
        self._send_lock = trio.StrictFIFOLock()
        self._ended = False
        self._dead: str | None = None  # why the connection was given up
        self._keepalive = Keepalive(keepalive, trio.current_time())

    async def send(self, data: bytes) -> None:
        """Raises `trio.BrokenResourceError` once the session has ended, or when the API
        server takes nothing for as long as a connection may stay silent."""
        if self._connection.state is not ConnectionState.OPEN:
            raise trio.BrokenResourceError("websocket is closed")
        policy = self._keepalive.policy
        with trio.move_on_after(policy.interval + policy.timeout):
            await self._send_raw(self._connection.send(BytesMessage(data=data)))
            return
        # Dead, or a process that does not read its input: either way a reader's pings could
        # not get through any more.
        reason = f"the API server took nothing for {policy.interval + policy.timeout:.0f} s"
        await self._give_up(reason)
        raise trio.BrokenResourceError(reason)

    async def receive(self) -> bytes | None:
        """The next message; None when the session is over. Raises `ClusterUnreachable`
        when the connection broke or died."""
        while True:
            while self._events:
                message = await self._handle(self._events.popleft())
                if message is not None:
                    return message
            if self._dead is not None:
                raise ClusterUnreachable(self._dead)
            if self._ended:
                return None
            data = await self._receive_or_keep_alive()
            if data is None:
                continue
            self._keepalive.heard(trio.current_time())
            if not data:
                self._ended = True
                self._connection.receive_data(None)
            else:
                self._connection.receive_data(data)
            self._events.extend(self._connection.events())

    async def _receive_or_keep_alive(self) -> bytes | None:
        """Bytes from the server (b"" at its end), or None when there is none yet."""
        # Cancelling a read is safe (for TLS too, once the handshake is done); nothing is lost.
        with trio.move_on_at(self._keepalive.deadline()):
            try:
                return bytes(await self._stream.receive_some(_RECEIVE_SIZE))
            except (trio.BrokenResourceError, ssl.SSLError) as exc:
                raise ClusterUnreachable(f"connection to the API server broke: {exc}") from exc
            except trio.ClosedResourceError:
                if self._dead is None:
                    raise
                return None  # given up meanwhile (a stuck send)
        now = trio.current_time()
        if self._keepalive.due(now) == "ping" and self._connection.state is ConnectionState.OPEN:
            self._keepalive.pinged(now)
            # A send stuck behind a full, unacknowledged buffer is a sign of death too.
            with trio.move_on_at(self._keepalive.deadline()):
                try:
                    await self._send_raw(self._connection.send(Ping()))
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    if self._dead is None:
                        await self._give_up(f"connection to the API server broke: {exc}")
            now = trio.current_time()
        if self._keepalive.due(now) == "dead" and self._dead is None:
            await self._give_up(
                f"the API server stopped answering: nothing heard for "
                f"{self._keepalive.silence(now):.0f} s, not even an answer to a ping")
        return None

    async def _give_up(self, reason: str) -> None:
        log.warning("gave up a websocket session: %s", reason)
        self._dead = reason
        self._ended = True
        await trio.aclose_forcefully(self._stream)

    async def aclose(self) -> None:
        try:
            if self._connection.state is ConnectionState.OPEN:
                with trio.move_on_after(1):
                    await self._send_quietly(CloseConnection(code=1000))
        finally:
            self._ended = True
            await trio.aclose_forcefully(self._stream)

    async def _handle(self, event: Event) -> bytes | None:
        if isinstance(event, BytesMessage | TextMessage):
            data = event.data.encode() if isinstance(event.data, str) else bytes(event.data)
            self._partial += data
            if not event.message_finished:
                return None
            message = bytes(self._partial)
            self._partial.clear()
            return message
        if isinstance(event, Ping):
            await self._send_quietly(event.response())
        elif isinstance(event, CloseConnection):
            if self._connection.state is ConnectionState.REMOTE_CLOSING:
                await self._send_quietly(event.response())
            self._ended = True
        return None

    async def _send_quietly(self, event: Event) -> None:
        try:
            await self._send_raw(self._connection.send(event))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._ended = True

    async def _send_raw(self, data: bytes) -> None:
        async with self._send_lock:
            try:
                await self._stream.send_all(data)
            except ssl.SSLError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc


async def connect(
    auth: Any,
    path: str,
    params: Sequence[tuple[str, str]],
    subprotocols: Sequence[str],
    keepalive: KeepalivePolicy = KEEPALIVE,
) -> WebSocket:
    """Open `path` (below the API server URL) as a websocket, with kr8s's `KubeAuth`."""
    url = httpx.URL(auth.server)
    secure = url.scheme == "https"
    port = url.port or (443 if secure else 80)
    host_header = f"[{url.host}]:{port}" if ":" in url.host else f"{url.host}:{port}"
    request = Request(
        host=host_header,
        target=url.path.rstrip("/") + path + ("?" + urlencode(params) if params else ""),
        subprotocols=list(subprotocols),
        extra_headers=[(b"authorization", f"Bearer {auth.token}".encode())] if auth.token else [],
    )
    try:
        with trio.fail_after(_HANDSHAKE_SECONDS):
            stream = await _open_stream(auth, url.host, port, secure)
            try:
                return await _handshake(stream, request, keepalive)
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
    except trio.TooSlowError as exc:
        raise ClusterUnreachable(f"no websocket answer from {auth.server}") from exc


async def _open_stream(auth: Any, host: str, port: int, secure: bool) -> trio.abc.Stream:
    try:
        tcp = await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise ClusterUnreachable(f"cannot reach the API server at {auth.server}: {exc}") from exc
    if not secure:
        return tcp
    try:
        context = await auth.ssl_context()
        if not isinstance(context, ssl.SSLContext):
            context = ssl.create_default_context()
        tls = trio.SSLStream(
            tcp, context, server_hostname=auth.tls_server_name or host, https_compatible=True
        )
        await tls.do_handshake()
    except BaseException as exc:
        await trio.aclose_forcefully(tcp)
        if isinstance(exc, trio.BrokenResourceError | ssl.SSLError):
            raise ClusterUnreachable(f"TLS with {auth.server} failed: {exc}") from exc
        raise
    return tls


async def _handshake(
    stream: trio.abc.Stream, request: Request, keepalive: KeepalivePolicy
) -> WebSocket:
    connection = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(connection.send(request))
    rejected_status = 0
    body = bytearray()
    while True:
        try:
            data = await stream.receive_some(_RECEIVE_SIZE)
        except (trio.BrokenResourceError, ssl.SSLError) as exc:
            raise ClusterUnreachable(f"websocket handshake broke: {exc}") from exc
        connection.receive_data(bytes(data) if data else None)
        events = list(connection.events())
        for index, event in enumerate(events):
            if isinstance(event, AcceptConnection):
                return WebSocket(stream, connection, event.subprotocol, events[index + 1 :],
                                 keepalive)
            if isinstance(event, RejectConnection):
                rejected_status = event.status_code
                if not event.has_body:
                    raise error_from_status(rejected_status, b"")
            if isinstance(event, RejectData):
                body += event.data
                if event.body_finished:
                    raise error_from_status(rejected_status, bytes(body))
        if not data:
            if rejected_status:
                raise error_from_status(rejected_status, bytes(body))
            raise KubeError("the API server closed the connection during the websocket handshake")
