"""An archive on kubedock's direct connection to its program in a pod: the framing and both
ends of the connection in the pod (`kubedock archive get|put PATH --serve`).

A port-forward to a listener in the pod carries bytes faster than an exec's stdin and
stdout, which also pass the container runtime's pipes (see the README's byte paths). The
program listens on 127.0.0.1, on a port of the system's choosing, and writes `PORT TOKEN`
on stdout, which only kubedock reads. It accepts one connection and closes the listener; the
connection must open with the token and a newline (else nothing is read or written), is
answered with one newline, and then carries the archive. Nothing waiting longer than
`IDLE_SECONDS` ends the program.

A tar stream carries no length, and neither end of a port-forward learns promptly that the
other has closed (the kubelet ends a forwarded connection about a second late), so the
sending side says where its data ends: every chunk goes as a 4-byte big-endian length and
that many bytes, and a chunk of length zero ends the stream. Standard library only.
"""

from __future__ import annotations

import hmac
import secrets
import socket
import struct
from collections import deque
from collections.abc import Callable

MAX_CHUNK = 16 * 1024 * 1024
END_OF_CHUNKS = b"\0\0\0\0"
READY = b"\n"
ACCEPT_SECONDS = 10
IDLE_SECONDS = 60
_HEAD = struct.Struct(">I")
_RECEIVE = 1024 * 1024


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


class ChunkReader:
    """A blocking file reading the data of the chunks a connection brings."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._decoder = ChunkDecoder()
        self._pieces: deque[memoryview] = deque()

    def read(self, size: int = -1) -> bytes:
        while not self._pieces and not self._decoder.ended:
            data = self._connection.recv(_RECEIVE)
            if not data:
                raise ConnectionResetError("the connection ended inside the archive")
            self._pieces.extend(self._decoder.receive(data))
        if not self._pieces:
            return b""
        piece = self._pieces.popleft()
        if 0 <= size < len(piece):
            self._pieces.appendleft(piece[size:])
            piece = piece[:size]
        return bytes(piece)
