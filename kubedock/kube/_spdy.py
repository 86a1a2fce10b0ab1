"""Exec sessions over SPDY/3.1, the API server's faster transport for bulk streams.

A websocket exec is translated into SPDY by the API server on its way to the kubelet; a
SPDY exec is passed through as it is (see `wire._spdy` for what that saves). `SpdyExec`
offers what `ExecChannel` uses of a `WebSocket` and speaks the same messages as the
`v5.channel.k8s.io` websocket: a stdin message becomes data on the stdin stream, the
half-close of stdin that stream's end, output comes out with its channel byte, and the
exit status (the error stream) as one channel-3 message once that stream has ended.

The connection is watched like a websocket's (`KeepalivePolicy`): pings go out when the
server has been silent for a while, and a connection that stays silent is given up.
"""

from __future__ import annotations

import logging
import ssl
from collections import deque
from typing import Any

import trio

from kubedock import wire

from ._errors import ClusterUnreachable, KubeError
from ._websocket import KEEPALIVE, Keepalive, KeepalivePolicy, upgraded

log = logging.getLogger(__name__)

_RECEIVE_SIZE = 256 * 1024
_STREAM_PROTOCOL = "v4.channel.k8s.io"  # exec's protocol over SPDY; v5 is websocket-only
_OUTPUT = (wire.Channel.STDOUT, wire.Channel.STDERR)


class _SpdyUpgrade:
    def __init__(self, host: str, target: str, headers: list[tuple[bytes, bytes]]) -> None:
        self._upgrade = wire.Upgrade("POST", host, target, [
            (b"connection", b"Upgrade"),
            (b"upgrade", wire.SPDY_PROTOCOL.encode()),
            (b"x-stream-protocol-version", _STREAM_PROTOCOL.encode()),
            (b"content-length", b"0"),
            *headers,
        ])
        self.request = self._upgrade.request

    def receive(self, data: bytes) -> wire.Switched | wire.Rejected | None:
        outcome = self._upgrade.receive(data)
        if isinstance(outcome, wire.Switched):
            upgrade = outcome.headers.get(b"upgrade", b"").decode(errors="replace")
            protocol = outcome.headers.get(b"x-stream-protocol-version", b"")
            if upgrade.lower() != wire.SPDY_PROTOCOL.lower():
                raise wire.WireFormatError(f"the server switched to {upgrade!r}, not SPDY")
            if protocol.decode(errors="replace") != _STREAM_PROTOCOL:
                raise wire.WireFormatError(f"the server chose the stream protocol {protocol!r}")
        return outcome


async def connect_exec(
    auth: Any,
    path: str,
    params: list[tuple[str, str]],
    *,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    keepalive: KeepalivePolicy = KEEPALIVE,
) -> SpdyExec:
    """Open the exec at `path` (with `params`, its query) and its streams, with kr8s's
    `KubeAuth`. The TTY resize stream is not opened: a TTY exec goes by websocket."""
    stream, switched = await upgraded(auth, path, params, _SpdyUpgrade)
    wanted = [wire.Channel.ERROR, *([wire.Channel.STDIN] if stdin else []),
              *([wire.Channel.STDOUT] if stdout else []),
              *([wire.Channel.STDERR] if stderr else [])]
    # Client streams have odd ids, in the order they are opened.
    channels = {2 * index + 1: channel for index, channel in enumerate(wanted)}
    headers = wire.HeaderEncoder()
    opening = b"".join(
        wire.encode_syn_stream(stream_id, headers.encode([("streamtype", channel.name.lower())]))
        for stream_id, channel in channels.items())
    try:
        await stream.send_all(opening)
    except (trio.BrokenResourceError, ssl.SSLError) as exc:
        await trio.aclose_forcefully(stream)
        raise ClusterUnreachable(f"connection to the API server broke: {exc}") from exc
    return SpdyExec(stream, channels, switched.trailing, keepalive)


class SpdyExec:
    """One exec session over SPDY; see the module's description."""

    subprotocol = "v5.channel.k8s.io"  # the messages it speaks, half-closing stdin included

    def __init__(self, stream: trio.abc.Stream, channels: dict[int, wire.Channel],
                 trailing: bytes, keepalive: KeepalivePolicy = KEEPALIVE) -> None:
        self._stream = stream
        self._channels = channels
        self._stdin = next((stream_id for stream_id, channel in channels.items()
                            if channel == wire.Channel.STDIN), None)
        self._decoder = wire.SpdyFrameDecoder()
        self._messages: deque[bytes] = deque()
        self._pings: list[int] = []  # the server's, to answer
        self._status = bytearray()
        self._status_given = False
        self._stdin_closed = False
        self._send_lock = trio.StrictFIFOLock()
        self._ended = False
        self._dead: str | None = None
        self._next_ping = 1
        self._keepalive = Keepalive(keepalive, trio.current_time())
        if trailing:
            self._take(trailing)

    async def send(self, message: bytes | bytearray | memoryview) -> None:
        """Send one channel message (stdin data, or the half-close of stdin).

        Raises `trio.BrokenResourceError` once the session has ended, or when the API
        server takes nothing for as long as a connection may stay silent."""
        if self._ended:
            raise trio.BrokenResourceError("exec session is over")
        with memoryview(message) as view:
            channel, payload = view[0], view[1:]
            if channel == wire.Channel.CLOSE and bytes(payload) == bytes([wire.Channel.STDIN]):
                frame = self._stdin_frame(b"", fin=True)
                self._stdin_closed = True
            elif channel == wire.Channel.STDIN:
                frame = self._stdin_frame(payload)
            else:
                raise ValueError(f"a SPDY exec does not carry channel {channel} messages")
        policy = self._keepalive.policy
        with trio.move_on_after(policy.interval + policy.timeout):
            await self._send_raw(frame)
            return
        reason = f"the API server took nothing for {policy.interval + policy.timeout:.0f} s"
        await self._give_up(reason)
        raise trio.BrokenResourceError(reason)

    def _stdin_frame(self, data: bytes | memoryview, *, fin: bool = False) -> bytes:
        if self._stdin is None or self._stdin_closed:
            raise trio.BrokenResourceError("the exec has no open stdin")
        # Upload pieces are 256 KiB, far below a frame's limit.
        return b"".join((wire.encode_data_head(self._stdin, len(data), fin=fin), data))

    async def receive(self) -> bytes | None:
        """The next message; None when the session is over. Raises `ClusterUnreachable`
        when the connection broke or died."""
        while True:
            while self._pings:
                await self._send_quietly(wire.encode_ping(self._pings.pop(0)))
            if self._messages:
                return self._messages.popleft()
            if self._dead is not None:
                raise ClusterUnreachable(self._dead)
            if self._ended:
                return None
            data = await self._receive_or_keep_alive()
            if data is None:
                continue
            self._keepalive.heard(trio.current_time())
            if data:
                self._take(data)
            else:
                self._ended = True
                self._give_status()

    def receive_buffered(self) -> bytes | None:
        """The next message if it has arrived already (no waiting, no I/O), else None."""
        return self._messages.popleft() if self._messages else None

    def _take(self, data: bytes) -> None:
        try:
            events = self._decoder.receive(data)
        except wire.WireFormatError as exc:
            raise KubeError(f"malformed SPDY data from the API server: {exc}") from exc
        for event in events:
            if isinstance(event, wire.StreamData):
                channel = self._channels.get(event.stream_id)
                if channel == wire.Channel.ERROR:
                    self._status += event.data
                    if event.fin:
                        self._give_status()
                elif channel in _OUTPUT and event.data:
                    self._messages.append(b"".join((bytes([channel]), event.data)))
            elif isinstance(event, wire.StreamReset):
                if self._channels.get(event.stream_id) == wire.Channel.ERROR:
                    self._give_status()
            elif isinstance(event, wire.Ping) and event.ping_id % 2 == 0:
                self._pings.append(event.ping_id)
            # A GOAWAY is followed by the end of the connection, which ends the session.

    def _give_status(self) -> None:
        if not self._status_given and self._status:
            self._messages.append(b"".join((bytes([wire.Channel.ERROR]), self._status)))
        self._status_given = True

    async def _receive_or_keep_alive(self) -> bytes | None:
        """Bytes from the server (b"" at its end), or None when there is none yet."""
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
        if self._keepalive.due(now) == "ping":
            self._keepalive.pinged(now)
            with trio.move_on_at(self._keepalive.deadline()):
                ping_id, self._next_ping = self._next_ping, self._next_ping + 2
                await self._send_quietly(wire.encode_ping(ping_id))
            now = trio.current_time()
        if self._keepalive.due(now) == "dead" and self._dead is None:
            await self._give_up(
                f"the API server stopped answering: nothing heard for "
                f"{self._keepalive.silence(now):.0f} s, not even an answer to a ping")
        return None

    async def _give_up(self, reason: str) -> None:
        log.warning("gave up a SPDY exec session: %s", reason)
        self._dead = reason
        self._ended = True
        await trio.aclose_forcefully(self._stream)

    async def aclose(self) -> None:
        try:
            if not self._ended:
                with trio.move_on_after(1):
                    await self._send_quietly(wire.encode_goaway())
        finally:
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
