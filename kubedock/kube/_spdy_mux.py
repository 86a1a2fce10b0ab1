"""Port-forwards to one pod share one SPDY connection, as kubectl's do.

Each forwarded connection is a pair of SPDY streams (error and data) tied by a `requestid`
header; opening one costs a SYN_STREAM pair instead of a TLS handshake and an upgrade
through the API server to the kubelet. Sixteen downloads at once no longer queue behind
sixteen connection setups.

There is no reader task: whichever forward wants data while none has arrived for it reads
the connection for all (one at a time) and hands what it read to each forward's inbox. So
nothing is read while nobody wants anything, and each forward's inbox is bounded: kubedock
announces a window per stream (SPDY/3.1 flow control) and grants more as that forward's
reader takes the data, so a peer that keeps to the windows stops only the slow stream. The
kubelet keeps to none; against it, reading pauses for every stream of the connection while
one inbox holds more than `_INBOX_LIMIT` bytes (kubectl's forwards share such pauses too).

A broken connection fails only the forwards on it; the next forward opens a new one. A
connection without forwards is closed once it has been idle for `idle_seconds` (checked
whenever a forward opens, and at the end). Where the server refuses a second stream pair on
a connection, that pod's forwards go one connection each, as before.
"""

from __future__ import annotations

import contextlib
import ssl
from collections import deque
from collections.abc import Awaitable, Callable

import trio

from kubedock import wire

from ._errors import ClusterUnreachable, KubeError
from ._spdy import decoded
from ._websocket import KEEPALIVE, KeepalivePolicy, KeptAliveSession

_RECEIVE_SIZE = 256 * 1024
# Per stream, granted again once half of it has been read: each grant is a write of its own
# (1 MiB windows cost 8% of the CPU of 16 downloads at once, for nothing against the kubelet).
WINDOW = 4 * 1024 * 1024
_SESSION_WINDOW = 1 << 30  # SPDY/3.1's session window: never the limit
_INBOX_LIMIT = 8 * 1024 * 1024  # for peers that ignore the window
_LAST_STREAM_ID = (1 << 31) - 1
_ERROR, _DATA = 1, 0  # channels of the port-forward protocol

Connect = Callable[[], Awaitable[tuple[trio.abc.Stream, bytes]]]


class RefusedSecondForward(KubeError):
    """The server reset a new stream pair on a connection that carries others."""


class SpdySession(KeptAliveSession):
    """One SPDY connection carrying any number of port-forwards (`open_forward`)."""

    _kind = "SPDY"

    def __init__(self, stream: trio.abc.Stream, trailing: bytes,
                 keepalive: KeepalivePolicy = KEEPALIVE, window: int = WINDOW) -> None:
        super().__init__(stream, keepalive)
        self.window = window
        self._decoder = wire.SpdyFrameDecoder()
        self._headers = wire.HeaderEncoder()
        self._open_lock = trio.Lock()  # header blocks share one zlib stream: sent in order
        self._next_stream = 1
        self._next_request = 0
        self._forwards: dict[int, MuxedForward] = {}  # by both their stream ids
        self._pings: list[int] = []
        self._reading = False
        self._waiting: set[MuxedForward] = set()
        self._session_unacked = 0
        self.idle_since: float | None = trio.current_time()
        self.opened = 0  # forwards ever opened here
        self._going_away = False  # the server said GOAWAY: the open forwards go on
        self._retired = False
        self.refused_a_second = False
        if trailing:
            self._take(trailing)

    @property
    def usable(self) -> bool:
        """Whether a new forward may open here."""
        return (not (self._ended or self._going_away or self._retired)
                and self._next_stream + 4 < _LAST_STREAM_ID)

    def retire(self) -> None:
        """Open no more forwards here; the connection closes with its last forward."""
        self._retired = True

    @property
    def forwards(self) -> int:
        return len(set(self._forwards.values()))

    async def open_forward(self, port: int) -> MuxedForward:
        """A new forward to `port`; raises `ClusterUnreachable` when the connection broke."""
        async with self._open_lock:
            if not self.usable:
                raise ClusterUnreachable(self._dead or "the SPDY connection is closed")
            error_id, data_id = self._next_stream, self._next_stream + 2
            self._next_stream += 4
            request = str(self._next_request)
            self._next_request += 1
            forward = MuxedForward(self, error_id, data_id, port, shared=self.opened > 0)
            frames = [wire.encode_settings(self.window),
                      wire.encode_window_update(0, _SESSION_WINDOW)] if self.opened == 0 else []
            for stream_id, kind in ((error_id, "error"), (data_id, "data")):
                block = self._headers.encode(
                    [("streamtype", kind), ("port", str(port)), ("requestid", request)])
                frames.append(wire.encode_syn_stream(stream_id, block))
            self._forwards[error_id] = self._forwards[data_id] = forward
            self.opened += 1
            self.idle_since = None
            try:
                await self.send_frame(b"".join(frames))
            except trio.BrokenResourceError as exc:
                self._drop(forward)
                raise ClusterUnreachable(f"connection to the API server broke: {exc}") from exc
        return forward

    async def send_frame(self, frame: bytes) -> None:
        """Send whole frames; raises `trio.BrokenResourceError` once the connection is over."""
        if self._ended:
            raise trio.BrokenResourceError(self._dead or "the SPDY connection is closed")
        await self._send_raw(frame)

    async def _send_raw(self, data: bytes) -> None:
        # A frame cut short by a cancellation would garble the connection for every forward
        # on it: a send is finished even when its forward is being closed, within the time a
        # connection may stay silent.
        policy = self._keepalive.policy
        with trio.CancelScope(shield=True,
                              deadline=trio.current_time() + policy.interval + policy.timeout
                              ) as scope:
            await super()._send_raw(data)
        if scope.cancelled_caught:
            reason = f"the API server took nothing for {policy.interval + policy.timeout:.0f} s"
            await self._give_up(reason)
            self._fail_all(reason)
            raise trio.BrokenResourceError(reason)

    def _ping_frame(self) -> bytes:
        return wire.encode_ping(1)  # ours are odd; one at a time is outstanding

    async def pump(self, forward: MuxedForward) -> None:
        """Read the connection once for every forward, or wait while another forward reads
        (or while an inbox is full); returns when `forward` may have something new."""
        if self._reading or self._inbox_full():
            self._waiting.add(forward)
            try:
                await forward.wake.wait()
            finally:
                self._waiting.discard(forward)
                forward.wake = trio.Event()
            return
        self._reading = True
        try:
            while self._pings:
                await self.send_frame(wire.encode_ping(self._pings.pop(0)))
            data = await self._receive_or_keep_alive()
            if data:
                self._take(data)
            elif data == b"":
                self._ended = True
                self._fail_all("the API server ended the SPDY connection")
                await trio.aclose_forcefully(self._stream)
            if self._dead is not None:
                self._fail_all(self._dead)
            elif self._session_unacked >= _SESSION_WINDOW // 2:
                update = wire.encode_window_update(0, self._session_unacked)
                self._session_unacked = 0
                await self.send_frame(update)
        except (KubeError, trio.BrokenResourceError, trio.ClosedResourceError,
                ssl.SSLError) as exc:
            reason = str(exc) or "connection to the API server broke"
            if not self._ended:  # else closed here, on purpose
                await self._give_up(reason)
            self._fail_all(reason)
        finally:
            self._reading = False
            self.wake_a_reader()

    def wake_a_reader(self) -> None:
        """Let a waiting forward read (the reader left, or an inbox emptied); one that was
        woken by its data will not read."""
        if self._reading:
            return
        for forward in self._waiting:
            if not forward.wake.is_set():
                forward.wake.set()
                return

    def _inbox_full(self) -> bool:
        return any(forward.held > _INBOX_LIMIT for forward in self._forwards.values())

    def _take(self, data: bytes) -> None:
        events = decoded(self._decoder, data)
        for event in events:
            if isinstance(event, wire.StreamData):
                self._session_unacked += len(event.data)
                forward = self._forwards.get(event.stream_id)
                if forward is not None:
                    forward.deliver(event.stream_id, event.data, fin=event.fin)
            elif isinstance(event, wire.StreamReset):
                forward = self._forwards.get(event.stream_id)
                if forward is not None:
                    forward.reset(event.stream_id)
            elif isinstance(event, wire.Ping) and event.ping_id % 2 == 0:
                self._pings.append(event.ping_id)
            elif isinstance(event, wire.GoAway):
                self._going_away = True

    def _fail_all(self, reason: str) -> None:
        for forward in set(self._forwards.values()):
            forward.fail(reason)

    def _drop(self, forward: MuxedForward) -> None:
        for stream_id in (forward.error_id, forward.data_id):
            self._forwards.pop(stream_id, None)
        self._waiting.discard(forward)
        if not self._forwards:
            self.idle_since = trio.current_time()
        self.wake_a_reader()

    async def close_forward(self, forward: MuxedForward) -> None:
        self._drop(forward)
        if not self.usable and not self._forwards:
            await self.aclose()
            return
        # As kubectl does: the kubelet then closes its connection to the pod's port.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.send_frame(wire.encode_rst_stream(forward.error_id)
                                  + wire.encode_rst_stream(forward.data_id))

    async def aclose(self) -> None:
        self._ended = True
        self._fail_all("the SPDY connection was closed")
        await trio.aclose_forcefully(self._stream)


class MuxedForward:
    """One forwarded connection on a `SpdySession`, offering `PortForwardStream` the
    messages of the port-forward websocket protocol (so it works on either transport)."""

    subprotocol = wire.PORTFORWARD_SUBPROTOCOL

    def __init__(self, session: SpdySession, error_id: int, data_id: int, port: int, *,
                 shared: bool) -> None:
        self.error_id, self.data_id = error_id, data_id
        self.wake = trio.Event()
        self.held = 0  # bytes in the inbox
        self._session = session
        self._shared = shared
        self._announce = port.to_bytes(2, "little")
        self._unannounced = {_ERROR, _DATA}
        self._messages: deque[tuple[bytes, int]] = deque()  # with the data's size
        self._remote_ended: set[int] = set()
        self._heard = False
        self._failure: KubeError | None = None
        self._unacked = 0  # data read since the last window update
        self._closed = False

    # -- fed by the session's reader ------------------------------------------------------

    def deliver(self, stream_id: int, data: bytes | memoryview, *, fin: bool) -> None:
        if data:
            self._heard = True
            channel = _DATA if stream_id == self.data_id else _ERROR
            if channel == _ERROR:
                # The kubelet reads this forward's data stream no more, and a frame for it
                # that nobody reads stalls its side of the connection: no new forwards here.
                self._session.retire()
            self._messages.append((self._message(channel, data), len(data)))
            self.held += len(data)
        if fin:
            self._remote_ended.add(stream_id)
        self.wake.set()

    def reset(self, stream_id: int) -> None:
        if self._shared and not self._heard and not self._remote_ended:
            self._session.refused_a_second = True
            self._failure = RefusedSecondForward(
                "the server reset a second port-forward on one SPDY connection")
        self._remote_ended.update((self.error_id, self.data_id))
        self.wake.set()

    def fail(self, reason: str) -> None:
        if self._remote_ended != {self.error_id, self.data_id} and self._failure is None:
            self._failure = ClusterUnreachable(reason)
        self.wake.set()

    def _message(self, channel: int, data: bytes | memoryview) -> bytes:
        if channel in self._unannounced:
            self._unannounced.discard(channel)
            return b"".join((bytes([channel]), self._announce, data))
        return b"".join((bytes([channel]), data))

    # -- what PortForwardStream uses ------------------------------------------------------

    async def receive(self) -> bytes | None:
        """The next message; None once the pod's side is over. Raises `ClusterUnreachable`
        when the connection broke, `RefusedSecondForward` when the server refused this pair."""
        while True:
            if self._unacked >= self._session.window // 2:
                update, self._unacked = self._unacked, 0
                with contextlib.suppress(trio.BrokenResourceError):
                    await self._session.send_frame(
                        wire.encode_window_update(self.data_id, update))
            if (message := self.receive_buffered()) is not None:
                return message
            if self._failure is not None:
                raise self._failure
            if self._closed or self._remote_ended == {self.error_id, self.data_id}:
                return None
            await self._session.pump(self)

    def receive_buffered(self) -> bytes | None:
        """The next message if it has arrived already (no waiting, no I/O), else None."""
        if not self._messages:
            return None
        message, size = self._messages.popleft()
        # Only the data stream's window is granted again: the error stream carries a line.
        if message[0] == _DATA:
            self._unacked += size
        self.held -= size
        self._session.wake_a_reader()  # in case reading paused for this inbox
        return message

    async def send(self, message: bytes | bytearray | memoryview) -> None:
        """Data for the pod's port: a message of channel 0.

        The end of the client's side is not passed on (no FIN): the container runtime ends
        a forward a second after its input ended, and would cut a longer answer short."""
        if self._closed or self.data_id in self._remote_ended:
            # Past the pod's end nobody reads the data stream, and a frame left unread there
            # would hold up the kubelet's side of the connection.
            raise trio.BrokenResourceError("this forward is over")
        with memoryview(message) as view:
            frame = b"".join((wire.encode_data_head(self.data_id, len(view) - 1), view[1:]))
        await self._session.send_frame(frame)

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        self.wake.set()  # a receive waiting in another task ends
        await self._session.close_forward(self)


class SpdySessions:
    """The shared connections, one per pod (`key`), opened on demand by `connect`."""

    def __init__(self, keepalive: KeepalivePolicy = KEEPALIVE, idle_seconds: float = 30.0
                 ) -> None:
        self._keepalive = keepalive
        self._idle_seconds = idle_seconds
        self._sessions: dict[str, SpdySession] = {}
        self._opening: dict[str, trio.Lock] = {}
        self._one_each: set[str] = set()  # pods whose server refused a second stream pair

    async def open_forward(self, key: str, port: int, connect: Connect) -> MuxedForward:
        await self._close_idle()
        if key in self._one_each:
            return await self._alone(port, connect)
        async with self._opening.setdefault(key, trio.Lock()):
            session = self._sessions.get(key)
            if session is not None and session.refused_a_second:
                self._one_each.add(key)
                del self._sessions[key]
                if session.forwards == 0:
                    await session.aclose()
                return await self._alone(port, connect)
            if session is None or not session.usable:
                if session is not None and session.forwards == 0:
                    await session.aclose()
                session = self._sessions[key] = SpdySession(*await connect(), self._keepalive)
        return await session.open_forward(port)

    async def _alone(self, port: int, connect: Connect) -> MuxedForward:
        session = SpdySession(*await connect(), self._keepalive)
        try:
            forward = await session.open_forward(port)
        except BaseException:
            await session.aclose()
            raise
        session.retire()
        return forward

    async def _close_idle(self) -> None:
        now = trio.current_time()
        for key, session in list(self._sessions.items()):
            idle = session.idle_since
            if (not session.usable and session.forwards == 0) or (
                    idle is not None and now - idle >= self._idle_seconds):
                del self._sessions[key]
                if not self._opening[key].locked():
                    del self._opening[key]
                await session.aclose()

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.aclose()
