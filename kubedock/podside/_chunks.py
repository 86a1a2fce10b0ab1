"""An archive on kubedock's direct connection to its program in a pod: the framing, and the
pod's end of the connection (`kubedock archive get PATH --serve`).

A port-forward to a listener in the pod brings bytes faster than an exec's stdout, which
also passes the container runtime's pipes (see the README's byte paths). The program
listens on 127.0.0.1, on a port of the system's choosing, and writes `PORT TOKEN` on
stdout, which only kubedock reads. It accepts one connection and closes the listener; the
connection must open with the token and a newline (else nothing is written), is answered
with one newline, and then carries the archive. Nothing happening for `IDLE_SECONDS` ends
the program.

A tar stream carries no length, and kubedock would learn late that the pod's side has
closed (the kubelet ends a forwarded connection about a second after), so the program says
where its data ends: every chunk goes as a 4-byte big-endian length and that many bytes,
and a chunk of length zero ends the stream. Standard library only.
"""

from __future__ import annotations

import hmac
import secrets
import socket
import struct
from collections.abc import Callable

MAX_CHUNK = 16 * 1024 * 1024
END_OF_CHUNKS = b"\0\0\0\0"
READY = b"\n"
ACCEPT_SECONDS = 10
IDLE_SECONDS = 60
_HEAD = struct.Struct(">I")


class FramingError(Exception):
    """Bytes that do not follow the chunk framing."""


def chunk_head(size: int) -> bytes:
    """The head of a chunk of `size` bytes (1 to `MAX_CHUNK`), which follow it."""
    if not 0 < size <= MAX_CHUNK:
        raise ValueError(f"a chunk holds 1 to {MAX_CHUNK} bytes, not {size}")
    return _HEAD.pack(size)


class ChunkDecoder:
    """Chunks in, their data out: `receive` gives the data of every chunk (whole or in
    part) that the bytes complete, as views of them, until the end of the chunks."""

    def __init__(self) -> None:
        self._head = b""
        self._left = 0  # bytes of the current chunk still to come
        self.ended = False

    def receive(self, data: bytes | memoryview) -> list[memoryview]:
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
            needed = _HEAD.size - len(self._head)
            self._head += bytes(view[:needed])
            view = view[needed:]
            if len(self._head) < _HEAD.size:
                break
            (size,), self._head = _HEAD.unpack(self._head), b""
            if size > MAX_CHUNK:
                raise FramingError(f"a chunk of {size} bytes (at most {MAX_CHUNK})")
            self._left = size
            self.ended = size == 0
        return pieces


def serve(work: Callable[[socket.socket], object]) -> None:
    """Announce a listener, take kubedock's one connection, and `work` on it."""
    token = secrets.token_hex(16).encode()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(ACCEPT_SECONDS)
        print(listener.getsockname()[1], token.decode(), flush=True)
        connection, _ = listener.accept()
    with connection:
        connection.settimeout(IDLE_SECONDS)
        said = b""
        while len(said) <= len(token) and (data := connection.recv(len(token) + 1 - len(said))):
            said += data
        if not hmac.compare_digest(said, token + b"\n"):
            raise ConnectionRefusedError("a connection without the token")
        connection.sendall(READY)
        work(connection)


class ChunkWriter:
    """A blocking file writing chunks to a connection; `close` ends the chunks."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection

    def write(self, data: bytes) -> int:
        with memoryview(data) as view:
            for start in range(0, len(view), MAX_CHUNK):
                piece = view[start : start + MAX_CHUNK]
                self._connection.sendall(b"".join((chunk_head(len(piece)), piece)))
        return len(data)

    def close(self) -> None:
        self._connection.sendall(END_OF_CHUNKS)
