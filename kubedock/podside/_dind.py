"""`kubedock dind`: the sidecar that gives a container a Docker socket reaching kubedock.

A container that binds `/var/run/docker.sock` (Testcontainers' Ryuk, a docker CLI in a build
container) gets this program beside it, listening on a unix socket in a directory both share.
Every connection is relayed byte for byte to kubedock's TCP listener, so hijacked exec and
attach streams pass through unchanged. Threads, not an event loop: the relay is a few lines
and the role must start fast, since `main` waits for the socket (`--wait`, a postStart hook).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from urllib.parse import urlsplit

_CHUNK = 64 * 1024


def parse_upstream(url: str) -> tuple[str, int]:
    """`http://host:port`, `tcp://host:port` or `host:port` → (host, port)."""
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    if parts.scheme not in ("http", "tcp") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"want http://host:port, not {url!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        raise ValueError(f"want http://host:port, not {url!r}")
    return parts.hostname, port


def serve_relay(path: str, upstream: tuple[str, int],
                ready: Callable[[socket.socket], None] = lambda listener: None) -> None:
    """Accept on the unix socket `path` forever; relay each connection to `upstream`."""
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
        threading.Thread(target=_relay, args=(client, upstream), daemon=True).start()


def _relay(client: socket.socket, upstream: tuple[str, int]) -> None:
    try:
        server = socket.create_connection(upstream, timeout=10)
    except OSError as error:
        print(f"kubedock dind: cannot reach kubedock at {upstream[0]}:{upstream[1]}: {error}",
              file=sys.stderr)
        client.close()
        return
    server.settimeout(None)
    back = threading.Thread(target=_copy, args=(server, client), daemon=True)
    back.start()
    _copy(client, server)
    back.join()
    client.close()
    server.close()


def _copy(source: socket.socket, sink: socket.socket) -> None:
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


def run_dind(path: str, kubedock_url: str | None, *, wait: float | None = None) -> int:
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

    def stop(signum: int, frame: FrameType | None) -> None:
        # Kubernetes stops the sidecar once `main` has ended; that is a normal end.
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        serve_relay(path, upstream)
    except OSError as error:
        print(f"kubedock dind: {path}: {error}", file=sys.stderr)
        return 1
    return 0
