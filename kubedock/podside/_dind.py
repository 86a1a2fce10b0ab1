"""`kubedock dind`: the sidecar that gives a container a Docker socket reaching kubedock.

A container that binds `/var/run/docker.sock` (Testcontainers' Ryuk, a docker CLI in a build
container) gets this program beside it, listening on a unix socket in a directory both share.
Every connection is relayed byte for byte to kubedock's TCP listener, so hijacked exec and
attach streams pass through unchanged. When kubedock serves TLS, the relay speaks it with this
sidecar's own client certificate and pins kubedock's certificate (`--tls-dir`). Threads, not an
event loop: the relay is a few lines and the role must start fast, since `main` waits for the
socket (`--wait`, a postStart hook).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import stat
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Protocol
from urllib.parse import urlsplit

_CHUNK = 64 * 1024
# In --tls-dir: this sidecar's certificate and key, and kubedock's certificate (trusted as is).
CLIENT_CERT, CLIENT_KEY, SERVER_CERT = "cert.pem", "key.pem", "server.pem"
_WANT_READ = object()  # an OpenSSL operation needs more bytes from kubedock


def parse_upstream(url: str) -> tuple[str, int]:
    """`http(s)://host:port`, `tcp://host:port` or `host:port` → (host, port)."""
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    if (parts.scheme not in ("http", "https", "tcp") or not parts.hostname
            or parts.path not in ("", "/")):
        raise ValueError(f"want http://host:port, not {url!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        raise ValueError(f"want http://host:port, not {url!r}")
    return parts.hostname, port


class _Connection(Protocol):
    def recv(self, size: int, /) -> bytes: ...
    def sendall(self, data: bytes, /) -> None: ...
    def shutdown(self, how: int, /) -> None: ...
    def close(self) -> None: ...


def tls_context(directory: str) -> ssl.SSLContext:
    """Client TLS with the certificate in `directory`, trusting exactly kubedock's certificate
    (pinned: whatever name pods reach kubedock by, only that certificate's key holder passes)."""
    folder = Path(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(folder / SERVER_CERT)
    context.load_cert_chain(folder / CLIENT_CERT, folder / CLIENT_KEY)
    return context


class TLSConnection:
    """A TLS client connection over `sock` that one thread sends on while another receives.

    OpenSSL's state is not thread-safe, so it lives in memory buffers behind a lock, and the
    socket is read and written outside it. Unlike a TLS socket, it half-closes: `shutdown`
    (SHUT_WR) sends close_notify and receiving goes on.
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self._sock = sock
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing)
        self._tls_lock = threading.Lock()
        # Held from taking bytes out of OpenSSL until they are sent, so records keep their order.
        self._send_lock = threading.Lock()
        while self._step(self._tls.do_handshake) is _WANT_READ:
            self._feed()

    def recv(self, size: int, /) -> bytes:
        while (data := self._step(self._tls.read, size)) is _WANT_READ:
            if not self._feed():
                return b""  # the connection ended without close_notify
        assert isinstance(data, bytes)
        return data

    def sendall(self, data: bytes, /) -> None:
        self._step(self._tls.write, data)

    def shutdown(self, how: int, /) -> None:
        if how == socket.SHUT_WR:
            self._step(self._tls.unwrap)  # sends close_notify; the peer's may never come
        else:
            self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()

    def _step(self, operation: Callable[..., object], *args: object) -> object:
        """One OpenSSL operation, then send what it produced; `_WANT_READ` if it needs input."""
        with self._tls_lock:
            try:
                result = operation(*args)
            except ssl.SSLWantReadError:
                result = _WANT_READ
            produced = self._outgoing.read()
            if produced:
                self._send_lock.acquire()
        if produced:
            try:
                self._sock.sendall(produced)
            finally:
                self._send_lock.release()
        return result

    def _feed(self) -> bool:
        data = self._sock.recv(_CHUNK)
        with self._tls_lock:
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()
        return bool(data)


def serve_relay(path: str, upstream: tuple[str, int],
                ready: Callable[[socket.socket], None] = lambda listener: None,
                tls: ssl.SSLContext | None = None) -> None:
    """Accept on the unix socket `path` forever; relay each connection to `upstream` (over
    TLS with `tls`)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)  # left by an earlier run of this sidecar
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    # The container's user is not known here; Docker's socket is reachable by its clients too.
    os.chmod(path, 0o666)
    listener.listen(128)
    ready(listener)
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return  # the listener was closed
        threading.Thread(target=_relay, args=(client, upstream, tls), daemon=True).start()


def _relay(client: socket.socket, upstream: tuple[str, int], tls: ssl.SSLContext | None) -> None:
    server: _Connection
    try:
        sock = socket.create_connection(upstream, timeout=10)
        try:
            server = sock if tls is None else TLSConnection(sock, tls)
        except OSError:
            sock.close()
            raise
    except OSError as error:
        print(f"kubedock dind: cannot reach kubedock at {upstream[0]}:{upstream[1]}: {error}",
              file=sys.stderr)
        client.close()
        return
    sock.settimeout(None)
    back = threading.Thread(target=_copy, args=(server, client), daemon=True)
    back.start()
    _copy(client, server)
    back.join()
    client.close()
    server.close()


def _copy(source: _Connection, sink: _Connection) -> None:
    """Copy until `source` ends, then half-close `sink` (the other direction may go on)."""
    try:
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    except OSError:
        # One side is gone: end both directions, so the other copy stops too.
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
        return
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def wait_for_socket(path: str, timeout: float) -> bool:
    """Whether the unix socket `path` accepts a connection within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
                return True
            except OSError:
                pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def run_dind(path: str, kubedock_url: str | None, *, wait: float | None = None,
             tls_dir: str | None = None) -> int:
    if wait is not None:
        if wait_for_socket(path, wait):
            return 0
        print(f"kubedock dind: no socket at {path} after {wait:g}s", file=sys.stderr)
        return 1
    if not kubedock_url:
        print("kubedock dind: --kubedock-url is required", file=sys.stderr)
        return 2
    try:
        upstream = parse_upstream(kubedock_url)
    except ValueError as error:
        print(f"kubedock dind: --kubedock-url: {error}", file=sys.stderr)
        return 2
    try:
        tls = tls_context(tls_dir) if tls_dir else None
    except (OSError, ssl.SSLError) as error:
        print(f"kubedock dind: --tls-dir {tls_dir}: {error}", file=sys.stderr)
        return 2

    def stop(signum: int, frame: FrameType | None) -> None:
        # Kubernetes stops the sidecar once `main` has ended; that is a normal end.
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        serve_relay(path, upstream, tls=tls)
    except OSError as error:
        print(f"kubedock dind: {path}: {error}", file=sys.stderr)
        return 1
    return 0
