"""SPDY/3.1 framing from a client's side, as far as Kubernetes' exec streams use it.

The API server passes a SPDY exec straight through to the kubelet, where it translates a
websocket exec into SPDY itself: measured on the local cluster, the same upload took 1.6 to
1.8 times as long over the websocket. SPDY frames are also unmasked and carry up to 16 MiB.

Each of the exec's streams (error, stdin, stdout, stderr) is a SPDY stream the client opens
with a `streamtype` header. Header blocks are zlib streams; kubedock compresses its own
without SPDY's preset dictionary (a reader only needs the dictionary when the stream says it
used one) and never needs to read the server's: what it wants from a reply is the stream id.
The kubelet's SPDY does no flow control: it sends without waiting for WINDOW_UPDATE and
ignores the ones it gets, so kubedock ignores the server's windows too. It does announce its
own receive windows (`encode_settings`, `encode_window_update`): a peer that keeps to them
stops only the stream whose reader is slow (see `kube._spdy_mux`).
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Sequence

import attrs

from ._errors import WireFormatError

SPDY_PROTOCOL = "SPDY/3.1"
_VERSION = 3
_CONTROL = 0x8000
FLAG_FIN = 0x01
MAX_DATA = (1 << 24) - 1
_CONTROL_LIMIT = 1 << 20  # header blocks of the few streams of an exec are small
_SETTINGS_INITIAL_WINDOW = 7
STATUS_CANCEL = 5  # RST_STREAM: the stream is no longer needed
STATUS_REFUSED = 3  # RST_STREAM: the peer will not take the stream


class FrameType(enum.IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


@attrs.frozen
class StreamData:
    """Bytes on a stream; `fin` when the server sent its last on it."""

    stream_id: int
    data: bytes | memoryview
    fin: bool


@attrs.frozen
class StreamReset:
    stream_id: int
    status: int


@attrs.frozen
class Ping:
    """A ping to answer (the server's, with an even id) or the answer to ours (odd)."""

    ping_id: int


@attrs.frozen
class GoAway:
    last_stream_id: int
    status: int


SpdyEvent = StreamData | StreamReset | Ping | GoAway


class HeaderEncoder:
    """Header blocks of one connection: a single zlib stream, flushed after each block."""

    def __init__(self) -> None:
        # A few small blocks per connection: a small window and little memory suffice, and
        # the default (a 256 KiB state) cost more CPU than the rest of opening a stream.
        self._compressor = zlib.compressobj(wbits=10, memLevel=1)

    def encode(self, headers: Sequence[tuple[str, str]]) -> bytes:
        block = bytearray(struct.pack("!I", len(headers)))
        for name, value in headers:
            for text in (name.lower(), value):
                raw = text.encode()
                block += struct.pack("!I", len(raw)) + raw
        return self._compressor.compress(bytes(block)) + self._compressor.flush(zlib.Z_SYNC_FLUSH)


def encode_syn_stream(stream_id: int, header_block: bytes) -> bytes:
    """Open stream `stream_id` (odd: the client's); `header_block` from `HeaderEncoder`."""
    body = struct.pack("!IIH", stream_id, 0, 0) + header_block
    return _control(FrameType.SYN_STREAM, 0, body)


def encode_data_head(stream_id: int, length: int, *, fin: bool = False) -> bytes:
    """The 8 bytes that precede `length` bytes of data on a stream."""
    if not 0 <= length <= MAX_DATA:
        raise ValueError(f"a data frame holds at most {MAX_DATA} bytes")
    return struct.pack("!II", stream_id & 0x7FFFFFFF, (FLAG_FIN if fin else 0) << 24 | length)


def encode_rst_stream(stream_id: int, status: int = STATUS_CANCEL) -> bytes:
    """End stream `stream_id` in both directions at once."""
    return _control(FrameType.RST_STREAM, 0, struct.pack("!II", stream_id & 0x7FFFFFFF, status))


def encode_settings(initial_window: int) -> bytes:
    """SETTINGS: each new stream may receive `initial_window` bytes before a WINDOW_UPDATE."""
    entry = struct.pack("!II", _SETTINGS_INITIAL_WINDOW, initial_window & 0x7FFFFFFF)
    return _control(FrameType.SETTINGS, 0, struct.pack("!I", 1) + entry)


def encode_window_update(stream_id: int, delta: int) -> bytes:
    """The receiver took `delta` more bytes of stream `stream_id` (0: of the whole session)."""
    if not 0 < delta < 1 << 31:
        raise ValueError("a window grows by 1 to 2**31 - 1 bytes")
    return _control(FrameType.WINDOW_UPDATE, 0,
                    struct.pack("!II", stream_id & 0x7FFFFFFF, delta))


def encode_ping(ping_id: int) -> bytes:
    return _control(FrameType.PING, 0, struct.pack("!I", ping_id))


def encode_goaway(last_stream_id: int = 0) -> bytes:
    return _control(FrameType.GOAWAY, 0, struct.pack("!II", last_stream_id, 0))


def _control(kind: FrameType, flags: int, body: bytes) -> bytes:
    return struct.pack("!HHI", _CONTROL | _VERSION, kind, flags << 24 | len(body)) + body


class SpdyFrameDecoder:
    """Turns what the server sends, cut anywhere, into events.

    A data frame is handed on once it is whole, so memory stays bounded by one frame and
    one read.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def receive(self, data: bytes) -> list[SpdyEvent]:
        """Every event completed by `data`.

        A frame that lies whole in `data` comes out as a view of it (no copy: `data` is
        immutable); only what continues a frame from an earlier read is gathered and copied.
        """
        if self._buffer:
            self._buffer += data
            data = bytes(self._buffer)
            self._buffer.clear()
        view = memoryview(data)
        events: list[SpdyEvent] = []
        start, end = 0, len(data)
        while end - start >= 8:
            first, second = struct.unpack_from("!II", data, start)
            flags, length = second >> 24, second & 0xFFFFFF
            control = bool(first & 0x80000000)
            if control and length > _CONTROL_LIMIT:
                raise WireFormatError(f"a control frame of {length} bytes")
            if end - start < 8 + length:
                break
            body = view[start + 8:start + 8 + length]
            start += 8 + length
            if not control:
                events.append(StreamData(first & 0x7FFFFFFF, body, bool(flags & FLAG_FIN)))
                continue
            version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
            if version != _VERSION:
                raise WireFormatError(f"a SPDY/{version} frame")
            event = _control_event(kind, flags, bytes(body))
            if event is not None:
                events.append(event)
        self._buffer += view[start:]
        return events


def _control_event(kind: int, flags: int, body: bytes) -> SpdyEvent | None:
    def words(count: int) -> tuple[int, ...]:
        if len(body) < 4 * count:
            raise WireFormatError(f"a short SPDY control frame (type {kind})")
        return struct.unpack_from(f"!{count}I", body)

    if kind == FrameType.SYN_REPLY or kind == FrameType.HEADERS:
        # A reply (or more headers) with FIN ends the server's side of the stream at once.
        (stream_id,) = words(1)
        return StreamData(stream_id & 0x7FFFFFFF, b"", True) if flags & FLAG_FIN else None
    if kind == FrameType.RST_STREAM:
        stream_id, status = words(2)
        return StreamReset(stream_id & 0x7FFFFFFF, status)
    if kind == FrameType.PING:
        return Ping(words(1)[0])
    if kind == FrameType.GOAWAY:
        last, status = words(2) if len(body) >= 8 else (*words(1), 0)
        return GoAway(last & 0x7FFFFFFF, status)
    if kind == FrameType.SYN_STREAM:
        raise WireFormatError("the server opened a stream (no exec stream does)")
    return None  # SETTINGS, WINDOW_UPDATE, and types SPDY says to ignore
