"""A small websocket client for the API server's streaming endpoints, native to trio.

kr8s's own websockets (httpx-ws) keep a background task group per session, so a session
cannot outlive the block that opened it and every error leaves it wrapped in an exception
group. Port-forward streams must be plain `trio.abc.Stream`s that the caller closes, so this
speaks the protocol itself (`wire`'s framing, and `TlsStream`, which decrypts a whole read at
once) with kr8s's credentials and TLS settings.

A connection can die without a word (the API server vanished, traffic is dropped): the
socket then waits forever. So a websocket pings the API server whenever it has heard nothing
for a while, and gives the connection up when not even the answer comes back in time. A
quiet session (an exec that prints nothing, an idle port-forward) stays alive: pongs count.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlencode

import attrs
import httpx
import trio

from kubedock import wire

from ._errors import ClusterUnreachable, KubeError, error_from_status
from ._tls import TlsStream

log = logging.getLogger(__name__)

_RECEIVE_SIZE = 256 * 1024
_DATA = (wire.Opcode.BINARY, wire.Opcode.TEXT)
_HANDSHAKE_SECONDS = 30
_Switched = TypeVar("_Switched", covariant=True)


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


class KeptAliveSession:
    """What a websocket and a SPDY session share: one stream to the API server, sends in
    order, and the keepalive (`KeepalivePolicy`) of a task that waits for the server."""

    _kind = "streaming"  # for the log

    def __init__(self, stream: trio.abc.Stream, keepalive: KeepalivePolicy) -> None:
        self._stream = stream
        self._send_lock = trio.StrictFIFOLock()
        self._ended = False
        self._dead: str | None = None  # why the connection was given up
        self._keepalive = Keepalive(keepalive, trio.current_time())

    def _ping_frame(self) -> bytes | None:
        """A ping to send now; None when the session no longer takes one."""
        raise NotImplementedError

    async def _send_in_time(self, frame: bytes) -> None:
        """Send `frame`; raises `trio.BrokenResourceError` when the API server takes nothing
        for as long as a connection may stay silent."""
        policy = self._keepalive.policy
        with trio.move_on_after(policy.interval + policy.timeout):
            await self._send_raw(frame)
            return
        # Dead, or a process that does not read its input: either way a reader's pings could
        # not get through any more.
        reason = f"the API server took nothing for {policy.interval + policy.timeout:.0f} s"
        await self._give_up(reason)
        raise trio.BrokenResourceError(reason)

    async def _receive_or_keep_alive(self) -> bytes | None:
        """Bytes from the server (b"" at its end), or None when there is none yet."""
        # Cancelling a read is safe (for TLS too, once the handshake is done); nothing is lost.
        with trio.move_on_at(self._keepalive.deadline()):
            try:
                data = bytes(await self._stream.receive_some(_RECEIVE_SIZE))
            except (trio.BrokenResourceError, ssl.SSLError) as exc:
                raise ClusterUnreachable(f"connection to the API server broke: {exc}") from exc
            except trio.ClosedResourceError:
                if self._dead is None:
                    raise
                return None  # given up meanwhile (a stuck send)
            self._keepalive.heard(trio.current_time())
            return data
        now = trio.current_time()
        if self._keepalive.due(now) == "ping" and (ping := self._ping_frame()) is not None:
            self._keepalive.pinged(now)
            # A send stuck behind a full, unacknowledged buffer is a sign of death too.
            with trio.move_on_at(self._keepalive.deadline()):
                try:
                    await self._send_raw(ping)
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
        log.warning("gave up a %s session: %s", self._kind, reason)
        self._dead = reason
        self._ended = True
        await trio.aclose_forcefully(self._stream)

    async def _send_quietly(self, frame: bytes) -> None:
        try:
            await self._send_raw(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._ended = True

    async def _send_raw(self, data: bytes) -> None:
        async with self._send_lock:
            try:
                await self._stream.send_all(data)
            except ssl.SSLError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc


class WebSocket(KeptAliveSession):
    """One open websocket. Messages are whole binary messages; `None` means closed.

    The connection is watched (`KeepalivePolicy`) while a task waits in `receive`: a dead
    one raises `ClusterUnreachable` there.
    """

    _kind = "websocket"

    def __init__(
        self,
        stream: trio.abc.Stream,
        subprotocol: str | None,
        trailing: bytes = b"",
        keepalive: KeepalivePolicy = KEEPALIVE,
    ) -> None:
        super().__init__(stream, keepalive)
        self.subprotocol = subprotocol
        self._decoder = wire.MessageDecoder()
        self._messages: deque[wire.Message] = deque()
        self._close_sent = False
        if trailing:
            self._messages.extend(self._decode(trailing))

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        """Send one binary message.

        Raises `trio.BrokenResourceError` once the session has ended, or when the API
        server takes nothing for as long as a connection may stay silent."""
        if self._close_sent or self._ended:
            raise trio.BrokenResourceError("websocket is closed")
        await self._send_in_time(wire.encode_frame(wire.Opcode.BINARY, data, os.urandom(4)))

    async def receive(self) -> bytes | None:
        """The next message; None when the session is over. Raises `ClusterUnreachable`
        when the connection broke or died."""
        while True:
            while self._messages:
                message = await self._handle(self._messages.popleft())
                if message is not None:
                    return message
            if self._dead is not None:
                raise ClusterUnreachable(self._dead)
            if self._ended:
                return None
            data = await self._receive_or_keep_alive()
            if data is None:
                continue
            if not data:
                self._ended = True
            else:
                self._messages.extend(self._decode(data))

    def receive_buffered(self) -> bytes | None:
        """The next message if it has arrived already (no waiting, no I/O), else None."""
        if self._messages and self._messages[0].opcode in _DATA:
            return self._messages.popleft().data
        return None

    def _decode(self, data: bytes) -> list[wire.Message]:
        try:
            return self._decoder.receive(data)
        except wire.WireFormatError as exc:
            raise KubeError(f"malformed websocket data from the API server: {exc}") from exc

    def _ping_frame(self) -> bytes | None:
        return None if self._close_sent else wire.encode_frame(wire.Opcode.PING, b"",
                                                              os.urandom(4))

    async def aclose(self) -> None:
        try:
            if not self._close_sent and not self._ended:
                with trio.move_on_after(1):
                    await self._send_close(wire.encode_close(1000))
        finally:
            self._ended = True
            await trio.aclose_forcefully(self._stream)

    async def _handle(self, message: wire.Message) -> bytes | None:
        if message.opcode in _DATA:
            return message.data
        if message.opcode == wire.Opcode.PING:
            if not self._close_sent:
                await self._send_quietly(
                    wire.encode_frame(wire.Opcode.PONG, message.data, os.urandom(4)))
        elif message.opcode == wire.Opcode.CLOSE:
            if not self._close_sent:
                code, _ = self._close_reply(message.data)
                await self._send_close(wire.encode_close(code))
            self._ended = True
        return None

    @staticmethod
    def _close_reply(payload: bytes) -> tuple[int, str]:
        try:
            code, reason = wire.decode_close(payload)
        except wire.WireFormatError:
            return 1002, ""
        # 1005 means "no code given" and must not be sent back.
        return (1000 if code == 1005 else code), reason

    async def _send_close(self, payload: bytes) -> None:
        self._close_sent = True
        await self._send_quietly(wire.encode_frame(wire.Opcode.CLOSE, payload, os.urandom(4)))


async def connect(
    auth: Any,
    path: str,
    params: Sequence[tuple[str, str]],
    subprotocols: Sequence[str],
    keepalive: KeepalivePolicy = KEEPALIVE,
) -> WebSocket:
    """Open `path` (below the API server URL) as a websocket, with kr8s's `KubeAuth`."""
    def handshake(host: str, target: str, headers: list[tuple[bytes, bytes]]
                  ) -> wire.ClientHandshake:
        return wire.ClientHandshake(host=host, target=target, subprotocols=subprotocols,
                                    headers=headers, key=os.urandom(16))

    stream, accepted = await upgraded(auth, path, params, handshake)
    return WebSocket(stream, accepted.subprotocol, accepted.trailing, keepalive)


class _Handshake(Protocol[_Switched]):
    request: bytes

    def receive(self, data: bytes) -> _Switched | wire.Rejected | None: ...


async def upgraded(
    auth: Any,
    path: str,
    params: Sequence[tuple[str, str]],
    handshake: Callable[[str, str, list[tuple[bytes, bytes]]], _Handshake[_Switched]],
) -> tuple[trio.abc.Stream, _Switched]:
    """A connection to the API server upgraded to another protocol by `handshake(host,
    target, credential headers)`, and the handshake's outcome; rejections are raised."""
    url = httpx.URL(auth.server)
    secure = url.scheme == "https"
    port = url.port or (443 if secure else 80)
    host_header = f"[{url.host}]:{port}" if ":" in url.host else f"{url.host}:{port}"
    opening = handshake(
        host_header,
        url.path.rstrip("/") + path + ("?" + urlencode(params) if params else ""),
        [(b"authorization", f"Bearer {auth.token}".encode())] if auth.token else [],
    )
    try:
        with trio.fail_after(_HANDSHAKE_SECONDS):
            stream = await _open_stream(auth, url.host, port, secure)
            try:
                outcome = await _handshake(stream, opening)
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
    except trio.TooSlowError as exc:
        raise ClusterUnreachable(f"no streaming answer from {auth.server}") from exc
    # By the answer, a TLS 1.3 server has sent its session ticket too.
    if isinstance(stream, TlsStream) and stream.session is not None:
        _sessions[stream.context] = stream.session
    return stream, outcome


async def _open_stream(auth: Any, host: str, port: int, secure: bool) -> trio.abc.Stream:
    try:
        tcp = await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise ClusterUnreachable(f"cannot reach the API server at {auth.server}: {exc}") from exc
    if not secure:
        return tcp
    try:
        context = await _tls_context(auth)
        tls = TlsStream(tcp, context, server_hostname=auth.tls_server_name or host,
                        session=_sessions.get(context))
        await tls.do_handshake()
    except BaseException as exc:
        await trio.aclose_forcefully(tcp)
        if isinstance(exc, trio.BrokenResourceError | ssl.SSLError):
            raise ClusterUnreachable(f"TLS with {auth.server} failed: {exc}") from exc
        raise
    return tls


_contexts: dict[tuple[object, ...], ssl.SSLContext] = {}
# The last session of each context: a connection that resumes one skips the certificates'
# exchange and checks (CPU on both sides), which short port-forward connections add up.
_sessions: dict[ssl.SSLContext, ssl.SSLSession] = {}


async def _tls_context(auth: Any) -> ssl.SSLContext:
    """kr8s's TLS settings as a context, made once for as long as they stay the same.

    kr8s builds a new context per call, loading the key and certificates from disk: about
    a millisecond each, which many short port-forward connections paid again and again.
    Rewritten files (rotated credentials) make a new one.
    """
    files = [getattr(auth, name, None)
             for name in ("client_cert_file", "client_key_file", "server_ca_file")]
    key = (id(auth), getattr(auth, "_insecure_skip_tls_verify", None),
           *((path, _modified(path)) for path in files))
    context = _contexts.get(key)
    if context is None:
        made = await auth.ssl_context()
        context = made if isinstance(made, ssl.SSLContext) else ssl.create_default_context()
        _contexts.clear()  # one server's settings at a time
        _sessions.clear()
        _contexts[key] = context
    return context


def _modified(path: object) -> int | None:
    try:
        return os.stat(path).st_mtime_ns if path else None  # type: ignore[arg-type]
    except OSError:
        return None


async def _handshake(stream: trio.abc.Stream, handshake: _Handshake[_Switched]) -> _Switched:
    await stream.send_all(handshake.request)
    while True:
        try:
            data = await stream.receive_some(_RECEIVE_SIZE)
        except (trio.BrokenResourceError, ssl.SSLError) as exc:
            raise ClusterUnreachable(f"streaming handshake broke: {exc}") from exc
        try:
            outcome = handshake.receive(bytes(data))
        except wire.WireFormatError as exc:
            raise KubeError(f"streaming handshake with the API server failed: {exc}") from exc
        if isinstance(outcome, wire.Rejected):
            raise error_from_status(outcome.status, outcome.body)
        if outcome is not None:
            return outcome
