"""Sessions over the API server's channel websockets: exec/attach and port-forward."""

from __future__ import annotations

import contextlib

import trio

from kubedock import wire

from ._errors import KubeError, PortForwardFailed
from ._websocket import WebSocket

# Large writes are split so one message never monopolises the API server's buffers.
_MAX_MESSAGE = 32 * 1024


class ExecChannel:
    """One exec or attach session: `receive()` output until None, then read `exit_code`."""

    def __init__(self, socket: WebSocket) -> None:
        self._socket = socket
        self.exit_code: int | None = None
        """Set by the session's final status; None if it ended without one (attach, lost link)."""
        self.status_message: str | None = None
        self.start_failure: str | None = None
        """Why the command could not be started, in Docker's words (see `wire.ExitStatus`)."""

    @property
    def can_close_stdin(self) -> bool:
        """Only v5 can end stdin alone; under v4 the process sees EOF when the session ends."""
        return self._socket.subprotocol == "v5.channel.k8s.io"

    async def send_stdin(self, data: bytes) -> None:
        """Raises `trio.BrokenResourceError` once the session is over."""
        for start in range(0, len(data), _MAX_MESSAGE):
            await self._socket.send(wire.encode_stdin(data[start : start + _MAX_MESSAGE]))

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
        """Next `(1 | 2, data)` (stdout, stderr), or None when the session is over."""
        while True:
            message = await self._socket.receive()
            if message is None:
                return None
            if not message:
                continue
            try:
                decoded = wire.decode_channel_message(message)
            except wire.WireFormatError as exc:
                raise KubeError(f"malformed exec message from the API server: {exc}") from exc
            if isinstance(decoded, wire.ExitStatus):
                self.exit_code = decoded.exit_code
                self.status_message = decoded.message or None
                self.start_failure = decoded.start_failure
            elif (
                isinstance(decoded, wire.ChannelData)
                and decoded.channel in (wire.Channel.STDOUT, wire.Channel.STDERR)
                and decoded.data
            ):
                return int(decoded.channel), decoded.data

    async def aclose(self) -> None:
        await self._socket.aclose()


class PortForwardStream(trio.abc.Stream):
    """A byte stream to one port of a pod, through the API server.

    The websocket protocol cannot carry a half-close, so this is not a
    `HalfCloseableStream`: the pod's connection ends when this stream is closed.
    Reading raises `PortForwardFailed` when the kubelet reports an error, typically that
    nothing listens on the port (yet).
    """

    def __init__(self, socket: WebSocket, port: int) -> None:
        self.port = port
        self._socket = socket
        self._channels = wire.PortForwardChannels([port])
        self._buffer = b""
        self._closed = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError
        while not self._buffer:
            message = await self._socket.receive()
            if message is None:
                return b""
            try:
                event = self._channels.receive(message)
            except wire.WireFormatError as exc:
                raise KubeError(f"malformed port-forward message: {exc}") from exc
            if isinstance(event, wire.PortError):
                raise PortForwardFailed(event.message.strip())
            if event is not None:
                self._buffer = event.data
        size = len(self._buffer) if max_bytes is None else max_bytes
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError
        payload = bytes(data)
        if not payload:
            await trio.lowlevel.checkpoint()
        for start in range(0, len(payload), _MAX_MESSAGE):
            chunk = payload[start : start + _MAX_MESSAGE]
            await self._socket.send(self._channels.encode(self.port, chunk))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self._closed = True
        await self._socket.aclose()
