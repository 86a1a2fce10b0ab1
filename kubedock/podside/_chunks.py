"""Chunk framing, both ends: a stream that carries no length of its own (a tar, a layer) cut
into chunks, each a 4-byte big-endian length and that many bytes; a chunk of length zero
ends the stream.

A build sandbox session sends its layers this way (`_buildwire`), and a served archive
carries its tar this way in either direction (`_served`), since neither end of a
port-forward learns promptly that the other has closed. Pure and standard library only.
"""

from __future__ import annotations

import struct

MAX_CHUNK = 16 * 1024 * 1024
END_OF_CHUNKS = b"\0\0\0\0"
_HEAD = struct.Struct(">I")
HEAD_SIZE = _HEAD.size


class FramingError(Exception):
    """Bytes that do not follow the chunk framing."""


def chunk_head(size: int) -> bytes:
    """The head of a chunk of `size` bytes (1 to `MAX_CHUNK`), which follow it."""
    if not 0 < size <= MAX_CHUNK:
        raise ValueError(f"a chunk holds 1 to {MAX_CHUNK} bytes, not {size}")
    return _HEAD.pack(size)


def chunked(data: bytes | bytearray | memoryview) -> bytes:
    """`data` as chunks of at most `MAX_CHUNK` bytes; nothing for no data, since the empty
    chunk would end the stream."""
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    for start in range(0, len(view), MAX_CHUNK):
        piece = view[start : start + MAX_CHUNK]
        parts += (chunk_head(len(piece)), piece)
    return b"".join(parts)


def chunk_size(head: bytes) -> int:
    """The size a chunk's `HEAD_SIZE` bytes of head announce (0: the end of the chunks)."""
    (size,) = _HEAD.unpack(head)
    if size > MAX_CHUNK:
        raise FramingError(f"a chunk of {size} bytes (at most {MAX_CHUNK})")
    return int(size)


class ChunkDecoder:
    """Chunks in, their data out: `receive` gives the data of every chunk (whole or in
    part) that the bytes complete, as views of them, until the end of the chunks."""

    def __init__(self) -> None:
        self._head = b""
        self._left = 0  # bytes of the current chunk still to come
        self.ended = False

    def receive(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        pieces: list[memoryview] = []
        view = memoryview(data)
        while view:
            if self.ended:
                raise FramingError(f"{len(view)} bytes after the end of the chunks")
            if self._left:
                piece, view = view[: self._left], view[self._left :]
                self._left -= len(piece)
                pieces.append(piece)
                continue
            needed = HEAD_SIZE - len(self._head)
            self._head += bytes(view[:needed])
            view = view[needed:]
            if len(self._head) < HEAD_SIZE:
                break
            self._left, self._head = chunk_size(self._head), b""
            self.ended = self._left == 0
        return pieces
