"""The pod's end of a served archive (`kubedock archive get|put PATH --serve`): the tar goes
over one connection of kubedock's instead of the exec's stdout or stdin.

The program listens on a port of the system's choosing: on the pod's loopback, where a
port-forward reaches it, or with `--pod-network` on every address of the pod, where kubedock
also connects directly (faster still: no API server, kubelet or runtime relays the bytes).
It writes `PORT TOKEN` on stdout, which only kubedock reads, and waits for the first
connection that opens with the token and a newline; it answers that one with `READY`, closes
the listener and carries the tar on it as chunks (`_chunks`). Every other connection is
closed once it has sent as many bytes as the token and its newline, whatever they are (so
that when it is dropped says nothing about which of its bytes were right), and does not use
the token up. No connection with the token within `ACCEPT_SECONDS`, or nothing moving on it
for `IDLE_SECONDS`, ends the program. Standard library only.
"""

from __future__ import annotations

import collections
import hmac
import secrets
import selectors
import socket
import time
from collections.abc import Callable

from . import _chunks

READY = b"\n"
ACCEPT_SECONDS = 10
IDLE_SECONDS = 60
# Connections still to say their token; beyond this many the oldest goes.
_PENDING = 32
RECEIVE = 1024 * 1024


def serve(work: Callable[[socket.socket], object], *, pod_network: bool = False) -> None:
    """Announce a listener, take kubedock's connection, and `work` on it."""
    token = secrets.token_hex(16).encode()
    with _listener(pod_network) as listener:
        print(listener.getsockname()[1], token.decode(), flush=True)
        connection = _first_with(listener, token + b"\n")
    with connection:
        connection.settimeout(IDLE_SECONDS)
        connection.sendall(READY)
        work(connection)


def _listener(pod_network: bool) -> socket.socket:
    if not pod_network:
        return socket.create_server(("127.0.0.1", 0))
    if socket.has_dualstack_ipv6():
        return socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True)
    return socket.create_server(("0.0.0.0", 0))


def _first_with(listener: socket.socket, expected: bytes) -> socket.socket:
    """The first connection to `listener` that opens with `expected`, within
    `ACCEPT_SECONDS`; connections are heard at once, so none holds another up."""
    deadline = time.monotonic() + ACCEPT_SECONDS
    said: collections.OrderedDict[socket.socket, bytes] = collections.OrderedDict()
    with selectors.DefaultSelector() as selector:
        selector.register(listener, selectors.EVENT_READ)
        try:
            while (left := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(left):
                    if key.fileobj is listener:
                        try:
                            connection, _ = listener.accept()
                        except OSError:  # gone before it was taken: no concern of ours
                            continue
                        if len(said) == _PENDING:
                            oldest, _ = said.popitem(last=False)
                            selector.unregister(oldest)
                            oldest.close()
                        said[connection] = b""
                        selector.register(connection, selectors.EVENT_READ)
                        continue
                    connection = key.fileobj  # type: ignore[assignment]
                    try:
                        data = connection.recv(len(expected) - len(said[connection]))
                    except OSError:
                        data = b""
                    so_far = said[connection] + data
                    if data and len(so_far) < len(expected):
                        said[connection] = so_far
                        continue
                    selector.unregister(connection)
                    del said[connection]
                    if hmac.compare_digest(so_far, expected):
                        return connection
                    connection.close()
            raise TimeoutError(f"no connection presented the token in {ACCEPT_SECONDS} s")
        finally:
            for connection in said:
                connection.close()


class ChunkWriter:
    """A blocking file writing chunks to a connection; `close` ends the chunks."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection

    def write(self, data: bytes) -> int:
        self._connection.sendall(_chunks.chunked(data))
        return len(data)

    def close(self) -> None:
        self._connection.sendall(_chunks.END_OF_CHUNKS)


class ChunkReader:
    """A blocking file reading the data of the chunks a connection brings, to their end."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._decoder = _chunks.ChunkDecoder()
        self._pieces: collections.deque[memoryview] = collections.deque()

    def read(self, size: int = -1) -> bytes:
        while not self._pieces and not self._decoder.ended:
            data = self._connection.recv(RECEIVE)
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
