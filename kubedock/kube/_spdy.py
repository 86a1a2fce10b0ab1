"""Exec sessions and port-forward connections over SPDY/3.1, the API server's faster transport.

A websocket exec is translated into SPDY by the API server on its way to the kubelet; a
SPDY exec is passed through as it is (see `wire._spdy` for what that saves). A port-forward
over SPDY delivered its data about twice as fast as the kubelet's own websocket did; the
forwards to one pod share a connection (`kube._spdy_mux`). `SpdyChannels` offers what
`ExecChannel` uses of a `WebSocket`, in the messages of the websocket protocols, so it works
on either transport.

The connection is watched like a websocket's (`KeepalivePolicy`): pings go out when the
server has been silent for a while, and a connection that stays silent is given up.
"""

from __future__ import annotations

import ssl
from collections import deque
from functools import partial
from typing import Any

import trio

from kubedock import wire

from ._errors import ClusterUnreachable, KubeError
from ._websocket import KEEPALIVE, KeepalivePolicy, KeptAliveSession, upgraded

_RECEIVE_SIZE = 256 * 1024
_EXEC_PROTOCOL = "v4.channel.k8s.io"  # exec's protocol over SPDY; v5 is websocket-only
_PORTFORWARD_PROTOCOL = "portforward.k8s.io"


def decoded(decoder: wire.SpdyFrameDecoder, data: bytes) -> list[wire.SpdyEvent]:
    """The events `data` completes, malformed data as the API server's fault."""
    try:
        return decoder.receive(data)
    except wire.WireFormatError as exc:
        raise KubeError(f"malformed SPDY data from the API server: {exc}") from exc


class _SpdyUpgrade:
    def __init__(self, protocol: str, host: str, target: str,
                 headers: list[tuple[bytes, bytes]]) -> None:
        self._protocol = protocol
        self._upgrade = wire.Upgrade("POST", host, target, [
            (b"connection", b"Upgrade"),
            (b"upgrade", wire.SPDY_PROTOCOL.encode()),
            (b"x-stream-protocol-version", protocol.encode()),
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
            if protocol.decode(errors="replace") != self._protocol:
                raise wire.WireFormatError(f"the server chose the stream protocol {protocol!r}")
        return outcome


async def _open(auth: Any, path: str, params: list[tuple[str, str]], protocol: str,
                streams: list[list[tuple[str, str]]]) -> tuple[trio.abc.Stream, bytes]:
    """A SPDY connection with `streams` opened (their headers), ids 1, 3, 5... in order."""
    stream, switched = await upgraded(auth, path, params, partial(_SpdyUpgrade, protocol))
    headers = wire.HeaderEncoder()
    opening = b"".join(wire.encode_syn_stream(2 * index + 1, headers.encode(pairs))
                       for index, pairs in enumerate(streams))
    try:
        await stream.send_all(opening)
    except (trio.BrokenResourceError, ssl.SSLError) as exc:
        await trio.aclose_forcefully(stream)
        raise ClusterUnreachable(f"connection to the API server broke: {exc}") from exc
    return stream, switched.trailing


async def connect_exec(
    auth: Any,
    path: str,
    params: list[tuple[str, str]],
    *,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    keepalive: KeepalivePolicy = KEEPALIVE,
) -> SpdyChannels:
    """Open the exec at `path` (with `params`, its query) and its streams, with kr8s's
    `KubeAuth`. The TTY resize stream is not opened: a TTY exec goes by websocket."""
    wanted = [wire.Channel.ERROR, *([wire.Channel.STDIN] if stdin else []),
              *([wire.Channel.STDOUT] if stdout else []),
              *([wire.Channel.STDERR] if stderr else [])]
    stream, trailing = await _open(auth, path, params, _EXEC_PROTOCOL,
                                   [[("streamtype", channel.name.lower())] for channel in wanted])
    return SpdyChannels(stream, [int(channel) for channel in wanted], trailing,
                        subprotocol="v5.channel.k8s.io", gathered=wire.Channel.ERROR,
                        keepalive=keepalive)


async def connect_port_forwards(auth: Any, path: str) -> tuple[trio.abc.Stream, bytes]:
    """A SPDY connection for the port-forwards to the pod at `path`, no stream open yet
    (`kube._spdy_mux` opens them), and what arrived after the switch."""
    return await _open(auth, path, [], _PORTFORWARD_PROTOCOL, [])


class SpdyChannels(KeptAliveSession):
    """One SPDY connection whose streams are the channels of the websocket protocols.

    It offers what `ExecChannel` uses of a `WebSocket`: a stream's data comes out as a
    message led by its channel's number, the `gathered` channel's data as one message once
    its stream ended (the exec's status), and messages in are data for a channel's stream,
    or the end of it (`Channel.CLOSE`). The session ends with the connection.
    """

    _kind = "SPDY"

    def __init__(self, stream: trio.abc.Stream, channels: list[int], trailing: bytes, *,
                 subprotocol: str, gathered: int | None = None,
                 keepalive: KeepalivePolicy = KEEPALIVE) -> None:
        """`channels` are in the order of their streams (ids 1, 3, 5...)."""
        super().__init__(stream, keepalive)
        self.subprotocol = subprotocol
        self._channels = {2 * index + 1: channel for index, channel in enumerate(channels)}
        self._streams = {channel: stream_id for stream_id, channel in self._channels.items()}
        self._gathered = gathered
        self._decoder = wire.SpdyFrameDecoder()
        self._messages: deque[bytes] = deque()
        self._pings: list[int] = []  # the server's, to answer
        self._status = bytearray()
        self._status_given = False
        self._finished: set[int] = set()  # channels we ended
        self._next_ping = 1
        if trailing:
            self._take(trailing)

    async def send(self, message: bytes | bytearray | memoryview) -> None:
        """Send one channel message (data, or the end of a channel).

        Raises `trio.BrokenResourceError` once the session has ended, or when the API
        server takes nothing for as long as a connection may stay silent."""
        if self._ended:
            raise trio.BrokenResourceError("the session is over")
        with memoryview(message) as view:
            if view[0] == wire.Channel.CLOSE and len(view) == 2:
                frame = self._data_frame(view[1], b"", fin=True)
            else:
                frame = self._data_frame(view[0], view[1:])
        await self._send_in_time(frame)

    def _data_frame(self, channel: int, data: bytes | memoryview, *, fin: bool = False) -> bytes:
        stream_id = self._streams.get(channel)
        if stream_id is None or channel in self._finished:
            raise trio.BrokenResourceError(f"channel {channel} is not open for sending")
        if fin:
            self._finished.add(channel)
        # Pieces sent are 256 KiB at most, far below a frame's limit.
        return b"".join((wire.encode_data_head(stream_id, len(data), fin=fin), data))

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
            if data:
                self._take(data)
            else:
                self._ended = True
                self._give_status()

    def receive_buffered(self) -> bytes | None:
        """The next message if it has arrived already (no waiting, no I/O), else None."""
        return self._messages.popleft() if self._messages else None

    def _take(self, data: bytes) -> None:
        events = decoded(self._decoder, data)
        for event in events:
            if isinstance(event, wire.StreamData):
                channel = self._channels.get(event.stream_id)
                if channel is None:
                    continue
                if channel == self._gathered:
                    self._status += event.data
                    if event.fin:
                        self._give_status()
                elif event.data:
                    self._messages.append(self._message(channel, event.data))
            elif isinstance(event, wire.StreamReset):
                if self._channels.get(event.stream_id) == self._gathered:
                    self._give_status()
            elif isinstance(event, wire.Ping) and event.ping_id % 2 == 0:
                self._pings.append(event.ping_id)
            # A GOAWAY is followed by the end of the connection, which ends the session.

    def _message(self, channel: int, data: bytes | memoryview) -> bytes:
        return b"".join((bytes([channel]), data))

    def _give_status(self) -> None:
        if not self._status_given and self._status and self._gathered is not None:
            self._messages.append(self._message(self._gathered, bytes(self._status)))
        self._status_given = True

    def _ping_frame(self) -> bytes:
        ping_id, self._next_ping = self._next_ping, self._next_ping + 2  # ours are odd
        return wire.encode_ping(ping_id)

    async def aclose(self) -> None:
        try:
            if not self._ended:
                with trio.move_on_after(1):
                    await self._send_quietly(wire.encode_goaway())
        finally:
            self._ended = True
            await trio.aclose_forcefully(self._stream)
