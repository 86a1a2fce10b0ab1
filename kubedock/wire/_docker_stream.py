"""Docker's multiplexed stream: an 8-byte header per frame when the stream has no TTY."""

import enum
import struct

from ._errors import WireFormatError

_HEADER = struct.Struct(">BxxxI")
_PADDING = b"\x00\x00\x00"


class Stream(enum.IntEnum):
    STDIN = 0
    STDOUT = 1
    STDERR = 2


def frame(stream: Stream, payload: bytes) -> bytes:
    """One frame carrying `payload`; an empty payload needs no frame at all."""
    if not payload:
        return b""
    return _HEADER.pack(stream, len(payload)) + payload


class StreamDemuxer:
    """Splits a multiplexed byte stream, fed in arbitrary pieces, back into frames.

    Zero-length frames carry nothing and are skipped.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """How many bytes of an incomplete frame are buffered (non-zero at EOF: truncated)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[tuple[Stream, bytes]]:
        self._buffer += data
        frames: list[tuple[Stream, bytes]] = []
        while len(self._buffer) >= _HEADER.size:
            stream_byte = self._buffer[0]
            if stream_byte not in Stream._value2member_map_ or self._buffer[1:4] != _PADDING:
                raise WireFormatError(f"bad stream frame header {bytes(self._buffer[:8])!r}")
            (_, length) = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            payload = bytes(self._buffer[_HEADER.size : end])
            del self._buffer[:end]
            if payload:
                frames.append((Stream(stream_byte), payload))
        return frames
