"""Sessions over the API server's channel websockets: exec/attach and port-forward."""

from __future__ import annotations

import contextlib

import trio

from kubedock import wire

from ._errors import KubeError, PortForwardFailed
from ._spdy import SpdyChannels
from ._spdy_mux import MuxedForward
from ._websocket import WebSocket

# Large writes are split so one message never monopolises the API server's buffers.
_MAX_MESSAGE = 256 * 1024
# A read hands on what has arrived, up to this much: fewer, larger writes downstream.
_COALESCE = 256 * 1024


class ExecChannel:
    """One exec or attach session: `receive()` output until None, then read `exit_code`."""

    def __init__(self, socket: WebSocket | SpdyChannels) -> None:
        self._socket = socket
        self.exit_code: int | None = None
        """Set by the session's final status; None if it ended without one (attach, lost link)."""
        self.status_message: str | None = None
        self.start_failure: str | None = None
        """Why the command could not be started, in Docker's words (see `wire.ExitStatus`)."""
        self._held: bytes | None = None  # arrived while output was gathered; next in line
        self._stdin_sends: set[trio.CancelScope] = set()

    @property
    def can_close_stdin(self) -> bool:
        """Only v5 can end stdin alone; under v4 the process sees EOF when the session ends."""
        return self._socket.subprotocol == "v5.channel.k8s.io"

    async def send_stdin(self, data: bytes) -> None:
        """Raises `trio.BrokenResourceError` once the session is over, and once the process
        has ended (its exit status was received): nothing reads its input any more, so the
        kubelet stops taking data and a send would wait until the connection is given up."""
        with trio.CancelScope() as scope, memoryview(data) as view:
            self._stdin_sends.add(scope)
            try:
                for start in range(0, len(view), _MAX_MESSAGE):
                    if self.exit_code is not None:
                        break
                    await self._socket.send(wire.encode_stdin(view[start : start + _MAX_MESSAGE]))
            finally:
                self._stdin_sends.discard(scope)
        if self.exit_code is not None:
            raise trio.BrokenResourceError(f"the process has ended ({self.exit_code})")

    async def close_stdin(self) -> None:
        """Half-close stdin (v5); a no-op under v4 (see `can_close_stdin`) or once over."""
        if self.can_close_stdin:
            await self._send_control(wire.encode_close_stdin())

    async def resize(self, width: int, height: int) -> None:
        """Resize the TTY; a no-op once the session is over."""
        await self._send_control(wire.encode_resize(width, height))

    async def _send_control(self, message: bytes) -> None:
        # Unlike stdin data, nothing is lost when these come after the process ended.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._socket.send(message)

    async def receive(self) -> tuple[int, bytes] | None:
        """Next `(1 | 2, data)` (stdout, stderr), or None when the session is over.

        Consecutive messages of one stream that have arrived already come out as one."""
        while True:
            message, self._held = self._held, None
            if message is None:
                message = await self._socket.receive()
                if message is None:
                    return None
            output = self._output(message)
            if output is None:
                continue
            parts, size = [output[1]], len(output[1])
            while size < _COALESCE and (more := self._socket.receive_buffered()) is not None:
                if more[:1] != bytes([output[0]]):
                    self._held = more  # another stream's turn, or the status
                    break
                parts.append(more[1:])
                size += len(more) - 1
            return output[0], b"".join(parts)

    def _output(self, message: bytes) -> tuple[int, bytes] | None:
        """Output a message carries; any other message is taken in (the exit status)."""
        if not message:
            return None
        try:
            decoded = wire.decode_channel_message(message)
        except wire.WireFormatError as exc:
            raise KubeError(f"malformed exec message from the API server: {exc}") from exc
        if isinstance(decoded, wire.ExitStatus):
            self.exit_code = decoded.exit_code
            for send in self._stdin_sends:
                send.cancel()
            self.status_message = decoded.message or None
            self.start_failure = decoded.start_failure
        elif (
            isinstance(decoded, wire.ChannelData)
            and decoded.channel in (wire.Channel.STDOUT, wire.Channel.STDERR)
            and decoded.data
        ):
            return int(decoded.channel), decoded.data
        return None

    async def aclose(self) -> None:
        await self._socket.aclose()


class PortForwardStream(trio.abc.Stream):
    """A byte stream to one port of a pod, through the API server.

    The websocket protocol cannot carry a half-close, so this is not a
    `HalfCloseableStream`: the pod's connection ends when this stream is closed.
    Reading raises `PortForwardFailed` when the kubelet reports an error, typically that
    nothing listens on the port (yet).
    """

    def __init__(self, socket: WebSocket | MuxedForward, port: int) -> None:
        self.port = port
        self._socket = socket
        self._channels = wire.PortForwardChannels([port])
        self._buffer = b""
        self._failure: KubeError | None = None  # reported once the data before it is read
        self._closed = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError
        while not self._buffer:
            if self._failure is not None:
                raise self._failure
            message = await self._socket.receive()
            if message is None:
                return b""
            parts = self._take(message, [])
            while (sum(map(len, parts)) < _COALESCE and self._failure is None
                   and (message := self._socket.receive_buffered()) is not None):
                self._take(message, parts)
            # The one copy of the data on its way here: the channel byte goes in passing.
            self._buffer = b"".join(parts)
        if max_bytes is None or max_bytes >= len(self._buffer):
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:max_bytes], self._buffer[max_bytes:]
        return data

    def _take(self, message: bytes, parts: list[bytes | memoryview]
              ) -> list[bytes | memoryview]:
        try:
            event = self._channels.receive(message)
        except wire.WireFormatError as exc:
            self._failure = KubeError(f"malformed port-forward message: {exc}")
        else:
            if isinstance(event, wire.PortError):
                self._failure = PortForwardFailed(event.message.strip())
            elif event is not None:
                parts.append(event.data)
        return parts

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError
        if not data:
            await trio.lowlevel.checkpoint()
        with memoryview(data) as view:
            for start in range(0, len(view), _MAX_MESSAGE):
                chunk = view[start : start + _MAX_MESSAGE]
                await self._socket.send(self._channels.encode(self.port, chunk))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self._closed = True
        await self._socket.aclose()
