"""The websocket protocol (RFC 6455) from a client's side: the opening handshake, frames out,
messages in.

Written for throughput: the API server's port-forward and exec streams carry archives and
whole databases, so every step works on whole buffers (masking is four `bytes.translate`
passes, one per key byte, not a loop over bytes), a read may hold many frames and all of
them are decoded at once, and a payload is copied once, out of the receive buffer.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import struct
from collections.abc import Sequence

import attrs

from ._errors import WireFormatError
from ._upgrade import Rejected, Switched, Upgrade

_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_XOR_TABLES = [bytes(value ^ key for value in range(256)) for key in range(256)]
_MAX_CONTROL_PAYLOAD = 125


class Opcode(enum.IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


_OPCODES = frozenset(Opcode)


@attrs.frozen
class Message:
    """A whole data message (TEXT or BINARY, fragments joined) or one control frame."""

    opcode: Opcode
    data: bytes


def mask(data: bytes | bytearray | memoryview, key: bytes) -> bytearray:
    """`data` XOR the 4-byte `key` repeated from its first byte (masking and unmasking alike)."""
    masked = bytearray(data)
    for lane in range(4):
        masked[lane::4] = masked[lane::4].translate(_XOR_TABLES[key[lane]])
    return masked


def encode_frame(opcode: Opcode, payload: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """One final, masked frame (what a client sends); `key` is the 4-byte masking key."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    if len(key) != 4:
        raise ValueError("a masking key has 4 bytes")
    return b"".join((head, key, mask(payload, key)))


def encode_close(code: int, reason: str = "") -> bytes:
    """The payload of a close frame."""
    return struct.pack("!H", code) + reason.encode()[:_MAX_CONTROL_PAYLOAD - 2]


def decode_close(payload: bytes) -> tuple[int, str]:
    """Code and reason of a close frame's payload; 1005 (no status) for an empty one."""
    if not payload:
        return 1005, ""
    if len(payload) == 1:
        raise WireFormatError("a close frame's payload of one byte")
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode(errors="replace")


class MessageDecoder:
    """Turns what a server sends, cut anywhere, into messages.

    Control frames come out as they arrive, also between the fragments of a data message.
    A message larger than `max_message` is refused before it is buffered, so memory stays
    bounded by one message and one read.
    """

    def __init__(self, max_message: int = 16 * 1024 * 1024) -> None:
        self._max_message = max_message
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragments_size = 0
        self._fragmented: Opcode | None = None

    def receive(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """Every message completed by `data`."""
        # Frames are read where they are: from `data` itself when nothing is left over
        # from before (the usual case), so only an unfinished frame is copied to the buffer.
        buffered = bool(self._buffer)
        if buffered:
            self._buffer += data
        buffer = self._buffer if buffered else data
        messages: list[Message] = []
        start, end = 0, len(buffer)
        with memoryview(buffer) as view:
            while end - start >= 2:
                first, second = buffer[start], buffer[start + 1]
                if first & 0x70:
                    raise WireFormatError("a frame with reserved bits set (no extension)")
                if second & 0x80:
                    raise WireFormatError("a masked frame from the server")
                opcode, length, head = first & 0x0F, second & 0x7F, 2
                if length == 126:
                    if end - start < 4:
                        break
                    length, head = int.from_bytes(view[start + 2:start + 4], "big"), 4
                elif length == 127:
                    if end - start < 10:
                        break
                    length, head = int.from_bytes(view[start + 2:start + 10], "big"), 10
                self._check(opcode, bool(first & 0x80), length)
                if end - start < head + length:
                    break
                payload = bytes(view[start + head:start + head + length])
                start += head + length
                message = self._frame(Opcode(opcode), bool(first & 0x80), payload)
                if message is not None:
                    messages.append(message)
            if not buffered:
                self._buffer += view[start:]
        if buffered:
            del self._buffer[:start]
        return messages

    def _check(self, opcode: int, final: bool, length: int) -> None:
        if opcode not in _OPCODES:
            raise WireFormatError(f"unknown opcode {opcode:#x}")
        if opcode >= Opcode.CLOSE:
            if not final or length > _MAX_CONTROL_PAYLOAD:
                raise WireFormatError("a fragmented or oversized control frame")
        elif opcode == Opcode.CONTINUATION:
            if self._fragmented is None:
                raise WireFormatError("a continuation frame outside a fragmented message")
        elif self._fragmented is not None:
            raise WireFormatError("a new message before the fragmented one ended")
        if opcode < Opcode.CLOSE and self._fragments_size + length > self._max_message:
            raise WireFormatError(f"a message larger than {self._max_message} bytes")

    def _frame(self, opcode: Opcode, final: bool, payload: bytes) -> Message | None:
        if opcode >= Opcode.CLOSE:
            return Message(opcode, payload)
        if final and opcode != Opcode.CONTINUATION:
            return Message(opcode, payload)
        if opcode != Opcode.CONTINUATION:
            self._fragmented = opcode
        self._fragments.append(payload)
        self._fragments_size += len(payload)
        if not final:
            return None
        assert self._fragmented is not None
        message = Message(self._fragmented, b"".join(self._fragments))
        self._fragments, self._fragments_size, self._fragmented = [], 0, None
        return message


# -- the opening handshake ----------------------------------------------------------------

@attrs.frozen
class Accepted:
    """The server switched to the websocket protocol; `trailing` is what it sent after."""

    subprotocol: str | None
    trailing: bytes


class ClientHandshake:
    """The client's half of the opening handshake (an HTTP/1.1 upgrade)."""

    def __init__(self, host: str, target: str, subprotocols: Sequence[str],
                 headers: Sequence[tuple[bytes, bytes]], key: bytes) -> None:
        """`key` is 16 random bytes; `host` is the Host header."""
        self._key = base64.b64encode(key)
        self._subprotocols = tuple(subprotocols)
        request_headers = [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-key", self._key),
            (b"sec-websocket-version", b"13"),
            *headers,
        ]
        if self._subprotocols:
            request_headers.append(
                (b"sec-websocket-protocol", ", ".join(self._subprotocols).encode()))
        self._upgrade = Upgrade("GET", host, target, request_headers)
        self.request = self._upgrade.request

    def receive(self, data: bytes) -> Accepted | Rejected | None:
        """Feed what the server sent (b"" at its end); the outcome once it is known."""
        outcome = self._upgrade.receive(data)
        if isinstance(outcome, Switched):
            return self._accepted(outcome)
        return outcome

    def _accepted(self, switched: Switched) -> Accepted:
        headers = switched.headers
        if headers.get(b"upgrade", b"").lower() != b"websocket":
            raise WireFormatError("the server switched to a protocol other than websocket")
        expected = base64.b64encode(hashlib.sha1(self._key + _ACCEPT_GUID).digest())
        if headers.get(b"sec-websocket-accept") != expected:
            raise WireFormatError("the server's Sec-WebSocket-Accept does not match the key")
        subprotocol = headers[b"sec-websocket-protocol"].decode() if (
            b"sec-websocket-protocol" in headers) else None
        if subprotocol is not None and subprotocol not in self._subprotocols:
            raise WireFormatError(f"the server chose a subprotocol not offered: {subprotocol}")
        return Accepted(subprotocol, switched.trailing)
