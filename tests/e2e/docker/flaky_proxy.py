"""A loopback TCP relay to the API server that can drop everything for a while.

kubedock reaches the cluster through it, so an "API server restart" (all connections cut,
connections refused, then service again) can be staged for one kubedock without touching
the real API server that other test runs share. So can a half-open connection: the far end
gone without a word (a dropped route, a vanished load balancer), traffic silently lost.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class FlakyProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._open: list[threading.Event] = []  # one per relayed connection: set = frozen
        self._listener = self._listen(0)
        self.port: int = self._listener.getsockname()[1]

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return listener

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: an outage or the end
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            frozen = threading.Event()
            with self._lock:
                self._connections += [client, upstream]
                self._open.append(frozen)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink, frozen),
                                 daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, frozen: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if frozen.is_set():
                    return  # dropped; and no more is read, nothing closed
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def _drop_all(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _stop_listening(self) -> None:
        # A close alone leaves the thread blocked in accept() accepting on the socket.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def outage(self, seconds: float) -> None:
        """Cut every connection and refuse new ones for `seconds`, then serve again."""
        self._stop_listening()
        self._drop_all()
        time.sleep(seconds)
        self._listener = self._listen(self.port)

    def freeze(self) -> None:
        """From now on drop everything on the connections open now, in both directions,
        and close none of them; new connections are relayed as before."""
        with self._lock:
            frozen, self._open = self._open, []
        for connection in frozen:
            connection.set()

    def close(self) -> None:
        self._stop_listening()
        self._drop_all()
