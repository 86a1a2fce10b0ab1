"""Taking over an HTTP/1.1 connection for Docker's raw streams, on hypercorn 0.18.0.

Docker answers exec start and attach with a response head (`101 UPGRADED` when the client sent
`Upgrade: tcp`, else `200 OK`) and then a raw, bidirectional byte stream with neither chunked
encoding nor a length, ended by closing the connection. ASGI cannot express that, so `serve` runs
hypercorn with one extension in every HTTP/1.x request's scope:

    hijack = Hijack.of(request.scope)
    stream = await hijack.take(101 if hijack.upgrade_requested else 200, headers)

`take` writes the head in a write of its own and returns the connection as a
`trio.abc.HalfCloseableStream`. docker-py reads frames from the socket beneath its HTTP parser, so
payload that reaches it in the same read as the head is lost: like Docker, take the connection
first and start the process (whose output follows) afterwards. Whatever the app sends through
ASGI afterwards is discarded, and the connection is closed, never reused, once the stream is
closed or the app returns.

The takeover reaches into hypercorn's HTTP/1.1 protocol object, which is why hypercorn is pinned.
Over TLS the stream is the same, with one difference: trio's TLS streams cannot half-close, so
the end of a hijacked TLS stream closes both directions at once.
"""

import contextlib
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, cast

import attrs
import h11
import trio
from h11 import MIGHT_SWITCH_PROTOCOL  # type: ignore[attr-defined]  # documented, not in __all__
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config
from hypercorn.events import Event as HypercornEvent
from hypercorn.events import RawData
from hypercorn.protocol.events import Data, Event, StreamClosed
from hypercorn.protocol.h11 import H11Protocol, H11WSConnection
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import (
    AppWrapper,
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    ConnectionState,
    LifespanState,
    Scope,
)
from hypercorn.utils import repr_socket_addr

log = logging.getLogger(__name__)

HIJACK_EXTENSION = "kubedock.hijack"

# How long an unread request body may go on arriving after the answer (see `_Connection._close`).
LINGER_SECONDS = 5.0

_REASONS = {101: b"UPGRADED", 200: b"OK"}
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[^\r\n\x00]*")
_UPGRADE_HEADERS = ((b"Connection", b"Upgrade"), (b"Upgrade", b"tcp"))


class HijackedStream(trio.abc.HalfCloseableStream):
    """The raw connection after the response head.

    `receive_some` returns b"" once the client half-closes (or goes away); `send_all` raises
    `trio.BrokenResourceError` once the client is gone.
    """

    def __init__(
        self,
        transport: trio.abc.Stream,
        send_lock: trio.Lock,
        inbound: trio.MemoryReceiveChannel[bytes],
    ) -> None:
        self._transport = transport
        self._send_lock = send_lock
        self._inbound = inbound
        self._unread = b""
        self._closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the hijacked stream is closed")
        async with self._send_lock:
            await self._transport.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._transport.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the hijacked stream is closed")
        if not isinstance(self._transport, trio.abc.HalfCloseableStream):
            raise trio.BrokenResourceError("a TLS connection cannot be half-closed; close it")
        async with self._send_lock:
            await self._transport.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if self._closed:
            raise trio.ClosedResourceError("the hijacked stream is closed")
        if not self._unread:
            try:
                self._unread = await self._inbound.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return b""
        size = len(self._unread) if max_bytes is None else max_bytes
        chunk, self._unread = self._unread[:size], self._unread[size:]
        return chunk

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        self._inbound.close()
        try:
            # The FIN goes out behind any data still queued, so the client reads all output.
            # (A TLS stream's close sends its close_notify behind the data in the same way.)
            if isinstance(self._transport, trio.abc.HalfCloseableStream):
                await self._transport.send_eof()
        except (trio.BrokenResourceError, trio.BusyResourceError, trio.ClosedResourceError):
            pass
        finally:
            await self._transport.aclose()


class _Inbound:
    """Stands in for hypercorn's HTTP stream once the connection is taken: receives raw bytes."""

    def __init__(self, send: trio.MemorySendChannel[bytes]) -> None:
        self._send = send

    async def handle(self, event: Event) -> None:
        if isinstance(event, Data):
            # Once the app closed the stream, the client's late bytes go nowhere.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._send.send(event.data)
        elif isinstance(event, StreamClosed):
            self._send.close()


class Hijack:
    """The `HIJACK_EXTENSION` scope extension of one HTTP/1.x request."""

    def __init__(
        self, connection: "_Connection", protocol: H11Protocol, *, upgrade_requested: bool
    ) -> None:
        self._connection = connection
        self._protocol = protocol
        self._request_stream = protocol.stream
        self._stream: HijackedStream | None = None
        self.writes_together = False
        self.upgrade_requested = upgrade_requested
        """The client sent `Connection: Upgrade` and `Upgrade: tcp`: answer 101, not 200."""

    @classmethod
    def of(cls, scope: Mapping[str, Any]) -> "Hijack":
        """The extension in a request's ASGI scope (Quart: `request.scope`)."""
        hijack = cls.offered(scope)
        if hijack is None:
            raise RuntimeError("this connection cannot be taken (served by kubedock's serve?)")
        return hijack

    @classmethod
    def offered(cls, scope: Mapping[str, Any]) -> "Hijack | None":
        """The extension, if the server offers it for this request."""
        hijack = scope.get("extensions", {}).get(HIJACK_EXTENSION)
        return hijack if isinstance(hijack, cls) else None

    @property
    def taken(self) -> bool:
        return self._stream is not None

    def write_head_with_body(self) -> None:
        """Write this response's head, its first body chunk and, when that was the last, its end
        in one write, as Docker writes the logs of a finished container: a client may stop
        waiting for the socket once it has the head (Testcontainers for Node unreferences it,
        and its process exits with the body unread when that arrives in a later packet).
        Call it before responding."""
        self.writes_together = True

    async def take(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> HijackedStream:
        """Write the response head and hand over the connection.

        `status` is 101 (the head then also says `Connection: Upgrade`, `Upgrade: tcp`) or 200.
        Call it after reading the whole request body and before sending any response.
        """
        if self._stream is not None:
            raise RuntimeError("the connection is already taken")
        head = _format_head(status, headers)
        protocol, connection = self._protocol, self._protocol.connection
        if protocol.stream is not self._request_stream:
            raise trio.BrokenResourceError("the client closed the connection")
        if (
            not isinstance(connection, h11.Connection)
            or connection.our_state is not h11.SEND_RESPONSE
            or connection.their_state not in (h11.DONE, MIGHT_SWITCH_PROTOCOL)
        ):
            raise RuntimeError("take the connection after the request body, before responding")
        assert isinstance(self._request_stream, HTTPStream)
        # Silence the request's HTTP stream: the app's later ASGI messages, its end and the
        # client's disconnect no longer concern it (so nothing answers 500 or reuses the
        # connection). The pass-through connection hypercorn built for websockets hands every
        # byte h11 has not parsed yet, and every later one, to the stream that replaces it.
        self._request_stream.closed = True
        send, receive = trio.open_memory_channel[bytes](0)
        protocol.stream = _Inbound(send)  # type: ignore[assignment]
        protocol.connection = H11WSConnection(connection)
        # The reader waits here when h11 paused after an upgrade request or pipelined bytes.
        await protocol.can_read.set()
        transport = cast(trio.abc.Stream, self._connection.stream)
        self._stream = HijackedStream(transport, self._connection.send_lock, receive)
        await self._stream.send_all(head)
        return self._stream

    async def _release(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()


def _format_head(status: int, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    if status not in _REASONS:
        raise ValueError(f"a hijacked connection answers 101 or 200, not {status}")
    lines = [b"HTTP/1.1 %d %s" % (status, _REASONS[status])]
    names = set()
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise ValueError(f"bad response header {name!r}: {value!r}")
        names.add(name.lower())
        lines.append(name + b": " + value)
    if status == 101:
        lines += [b"%s: %s" % pair for pair in _UPGRADE_HEADERS if pair[0].lower() not in names]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _upgrade_requested(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    connection_tokens, upgrade = [], b""
    for name, value in headers:
        if name.lower() == b"connection":
            connection_tokens += [token.strip().lower() for token in value.split(b",")]
        elif name.lower() == b"upgrade":
            upgrade = value.strip().lower()
    return b"upgrade" in connection_tokens and upgrade == b"tcp"


class _Connection(TCPServer):
    """hypercorn's per-connection server, offering the hijack extension to HTTP/1.x requests;
    its failures end it alone, and it closes lingering after an early answer (see `_close`)."""

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        state: ConnectionState,
        stream: trio.SocketStream | trio.SSLStream[trio.SocketStream],
    ) -> None:
        super().__init__(partial(self._call_app, app), config, context, state, stream)  # type: ignore[arg-type]
        self._lifetime = trio.CancelScope()
        self._lingering = False
        self._holding = False
        self._held: list[bytes] = []

    def hold_writes(self) -> None:
        """Keep what hypercorn writes from now on, until `release_writes` writes it at once."""
        self._holding = True

    async def release_writes(self) -> None:
        self._holding = False
        if self._held:
            held, self._held = b"".join(self._held), []
            await super().protocol_send(RawData(held))

    async def protocol_send(self, event: HypercornEvent) -> None:
        if isinstance(event, RawData) and self._holding:
            self._held.append(event.data)
            return
        await self.release_writes()
        await super().protocol_send(event)

    async def run(self) -> None:
        if not await self._handshake():
            return
        # hypercorn lets an unexpected error of one connection (in its protocol code, say) end
        # the server; here it ends that connection only.
        try:
            with self._lifetime:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._close_once_ended)
                    await super().run()
                    nursery.cancel_scope.cancel()
        except Exception:
            log.exception("HTTP connection failed")
        finally:
            await self.stream.aclose()  # also when a lingering close was cut short

    async def _close_once_ended(self) -> None:
        """Close the connection's socket as soon as the connection is cancelled (the server
        stops, a lingering close runs out).

        hypercorn writes under a cancel shield, as does the end of a response (see
        `_call_app`): a client that reads nothing (stalled, or gone without a word) would
        hold such a write, and with it the server's shutdown, forever. A closed socket ends
        the write at once.
        """
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)

    async def _close(self) -> None:
        """Close; lingering when the answer went out before the request body was read.

        hypercorn closes at once, and a client still sending the body (Python's http.client
        sends it all before it reads) meets a reset instead of the answer (a 413, say). So the
        answer is followed by a half-close, and the rest of the body is read (h11 drops it) for
        up to `LINGER_SECONDS`, or until the client closes too.
        """
        protocol = self.protocol.protocol
        if (
            not self._lingering
            and isinstance(protocol, H11Protocol)
            and isinstance(protocol.connection, h11.Connection)
            and protocol.connection.their_state is h11.SEND_BODY
        ):
            self._lingering = True
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self.stream.send_eof()
            self._lifetime.deadline = trio.current_time() + LINGER_SECONDS
            return
        await super()._close()

    async def _handshake(self) -> bool:
        """Whether the connection may go on: a plain one, or TLS with a completed handshake.

        hypercorn drops a connection whose TLS handshake fails without a word; this says who
        was refused and why (a client without a certificate, or with one of another CA).
        """
        stream = self.stream
        if isinstance(stream, trio.SSLStream):
            try:
                with trio.fail_after(self.config.ssl_handshake_timeout):
                    await stream.do_handshake()
            except (trio.BrokenResourceError, trio.TooSlowError) as error:
                sock = stream.transport_stream.socket
                try:
                    peer = repr_socket_addr(sock.family, sock.getpeername())
                except OSError:
                    peer = "a client that left"
                # A port probe connects and leaves: not worth a line unless debugging.
                probe = isinstance(error.__cause__, ssl.SSLEOFError)
                level = logging.DEBUG if probe else logging.INFO
                log.log(level, "TLS handshake with %s refused: %s", peer,
                        error.__cause__ or "too slow")
                await trio.aclose_forcefully(stream)
                return False
        return True  # after a handshake here, hypercorn's own returns at once

    async def _call_app(
        self,
        app: AppWrapper,
        scope: Scope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        sync_spawn: Callable[..., object],
        call_soon: Callable[..., object],
    ) -> None:
        protocol = self.protocol.protocol
        if scope["type"] != "http" or not isinstance(protocol, H11Protocol):
            await app(scope, receive, send, sync_spawn, call_soon)
            return
        hijack = Hijack(self, protocol, upgrade_requested=_upgrade_requested(scope["headers"]))
        # ASGI wants extension values to be dicts; this one is an object with methods.
        cast(dict[str, object], scope["extensions"])[HIJACK_EXTENSION] = hijack

        bodies = 0

        async def send_unless_taken(message: ASGISendEvent) -> None:
            if hijack.taken:
                return
            if hijack.writes_together:
                await send_together(message)
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # hypercorn ends the response inside this send: it tells the app about the
                # disconnect, then recycles or closes the connection. quart-trio cancels the
                # request as soon as it hears of the disconnect, which would abort that close
                # halfway (when the request body is still unread) and leave the connection
                # stalled with the client's next request unanswered.
                with trio.CancelScope(shield=True):
                    await send(message)
            else:
                await send(message)

        async def send_together(message: ASGISendEvent) -> None:
            """Head and first body chunk (and the end, when it follows at once) in one write."""
            nonlocal bodies
            if message["type"] == "http.response.start":
                self.hold_writes()
            if message["type"] != "http.response.body":
                await send(message)
                return
            bodies += 1
            last = not message.get("more_body", False)
            with trio.CancelScope(shield=last):  # as above
                await send(message)
                if last or bodies > 1 or not message.get("body"):
                    await self.release_writes()

        try:
            await app(scope, receive, send_unless_taken, sync_spawn, call_soon)
        finally:
            await hijack._release()


@attrs.frozen
class ServerTLS:
    """TLS of the TCP listeners: the server's certificate and key (PEM files) and, for mutual
    TLS, the CA certificates of clients (a client must then present a certificate one signed)."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    # PEM certificates of kubedock's own clients (its Docker socket sidecars), trusted as well.
    own_clients: str = ""


def _hypercorn_config(binds: Sequence[str], tls: ServerTLS | None) -> Config:
    config = Config()
    config.include_server_header = False  # the app says which server it is
    if tls is None:
        config.bind = list(binds)
        return config
    # hypercorn serves `bind` over TLS and `insecure_bind` without; a unix socket stays plain.
    config.bind = [bind for bind in binds if not bind.startswith("unix:")]
    config.insecure_bind = [bind for bind in binds if bind.startswith("unix:")]
    config.certfile, config.keyfile = tls.cert_file, tls.key_file
    if tls.client_ca_file:
        config.ca_certs = tls.client_ca_file
        config.verify_mode = ssl.CERT_REQUIRED
    # Connections are taken over only in HTTP/1.1, so HTTP/2 is never offered.
    config.alpn_protocols = ["http/1.1"]
    return config


def _listeners(config: Config, tls: ServerTLS | None
               ) -> tuple[list[trio.SocketListener], list[trio.abc.Listener[Any]]]:
    """The bound sockets' listeners, and what serves each (a TLS listener around secure ones)."""
    sockets = config.create_sockets()
    context = config.create_ssl_context()
    if context is not None and tls is not None and tls.own_clients:
        context.load_verify_locations(cadata=tls.own_clients)
    bound: list[trio.SocketListener] = []
    serving: list[trio.abc.Listener[Any]] = []
    for sock in [*sockets.secure_sockets, *sockets.insecure_sockets]:
        sock.listen(config.backlog)
        plain = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        bound.append(plain)
        if context is not None and sock in sockets.secure_sockets:
            # hypercorn's connection does the handshake (within its ssl_handshake_timeout).
            serving.append(trio.SSLListener(plain, context))
        else:
            serving.append(plain)
    return bound, serving


async def serve(
    app: ASGIFramework,
    binds: Sequence[str],
    tls: ServerTLS | None = None,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` (ASGI, e.g. a QuartTrio app) with the hijack extension over HTTP/1.1.

    `binds` are `host:port` (port 0 picks a free port) or `unix:/path`; `task_status.started`
    reports the bound addresses in the same syntax. With `tls`, the TCP binds serve TLS.
    The app's lifespan runs around serving.
    When `shutdown_trigger` returns, listening stops and open connections (idle keep-alive and
    hijacked ones included) get hypercorn's graceful timeout, 3 s, to finish; then the lifespan
    shuts down and `serve` returns. Cancelling `serve` stops everything at once.
    """
    config = _hypercorn_config(binds, tls)
    wrapped = ASGIWrapper(app)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)
    bound, listeners = _listeners(config, tls)
    try:
        async with trio.open_nursery() as lifespan_nursery:
            await lifespan_nursery.start(lifespan.handle_lifespan)
            await lifespan.wait_for_startup()
            async with trio.open_nursery() as connections:
                handler = partial(
                    _Connection, wrapped, config, context, ConnectionState(lifespan_state.copy())
                )
                async with trio.open_nursery() as accepting:
                    accepting.start_soon(
                        partial(
                            trio.serve_listeners, handler, listeners, handler_nursery=connections
                        )
                    )
                    task_status.started(
                        [repr_socket_addr(listener.socket.family, listener.socket.getsockname())
                         for listener in bound]
                    )
                    await (shutdown_trigger or trio.sleep_forever)()
                    accepting.cancel_scope.cancel()
                await context.terminated.set()
                connections.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
            await lifespan.wait_for_shutdown()
            lifespan_nursery.cancel_scope.cancel()
    finally:
        for listener in bound:
            listener.socket.close()
