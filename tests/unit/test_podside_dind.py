"""The Docker socket sidecar's relay, on real sockets of this machine."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubedock.podside import parse_upstream
from kubedock.podside._dind import serve_relay, tls_context, wait_for_socket


def shout_until_eof(listener: socket.socket) -> None:
    """An upstream that answers what it read, upper-cased, once the client half-closes."""
    connection, _ = listener.accept()
    with connection:
        received = b""
        while data := connection.recv(65536):
            received += data
        connection.sendall(received.upper())


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        threading.Thread(target=shout_until_eof, args=(listener,), daemon=True).start()
        yield listener.getsockname()


def start_relay(path: Path, upstream: tuple[str, int],
                tls: ssl.SSLContext | None = None) -> socket.socket:
    listening = threading.Event()
    listeners: list[socket.socket] = []

    def ready(listener: socket.socket) -> None:
        listeners.append(listener)
        listening.set()

    threading.Thread(target=serve_relay, args=(str(path), upstream, ready, tls),
                     daemon=True).start()
    assert listening.wait(5)
    return listeners[0]


def test_bytes_and_half_close_pass_both_ways(tmp_path: Path,
                                             upstream: tuple[str, int]) -> None:
    path = tmp_path / "docker.sock"
    with start_relay(path, upstream):
        assert path.stat().st_mode & 0o777 == 0o666
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(str(path))
            payload = b"GET /_ping HTTP/1.1\r\n\r\n" * 10000
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
            answer = b""
            while data := client.recv(65536):
                answer += data
    assert answer == payload.upper()


def shout_over_tls(listener: socket.socket, context: ssl.SSLContext,
                   peers: list[object]) -> None:
    """`shout_until_eof` behind mutual TLS: the client's half-close is its close_notify."""
    connection, _ = listener.accept()
    try:
        with context.wrap_socket(connection, server_side=True) as tls:
            peers.append(tls.getpeercert())
            received = b""
            while data := tls.recv(65536):
                received += data
            tls.sendall(received.upper())
            tls.unwrap()
    except (OSError, ssl.SSLError) as error:
        peers.append(error)


def sidecar_tls_dir(tls_files: Any, directory: Path) -> Path:
    directory.mkdir()
    shutil.copy(tls_files.client_cert, directory / "cert.pem")
    shutil.copy(tls_files.client_key, directory / "key.pem")
    shutil.copy(tls_files.server_cert, directory / "server.pem")
    return directory


@pytest.mark.parametrize("client_cert", [True, False])
def test_over_tls_the_relay_presents_its_certificate_and_half_closes(
    tmp_path: Path, tls_files: Any, client_cert: bool
) -> None:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tls_files.ca)
    server.verify_mode = ssl.CERT_REQUIRED
    server.load_cert_chain(tls_files.server_cert, tls_files.server_key)
    tls_dir = sidecar_tls_dir(tls_files, tmp_path / "tls")
    if not client_cert:  # a sidecar whose certificate kubedock does not know
        shutil.copy(tls_files.stranger_cert, tls_dir / "cert.pem")
        shutil.copy(tls_files.stranger_key, tls_dir / "key.pem")
    peers: list[object] = []
    path = tmp_path / "docker.sock"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        serving = threading.Thread(target=shout_over_tls, args=(listener, server, peers))
        serving.start()
        with start_relay(path, listener.getsockname(), tls_context(str(tls_dir))), \
                socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(str(path))
            payload = b"POST /exec/x/start HTTP/1.1\r\n\r\n" * 10000
            answer = b""
            # A refused relay closes the client, maybe while it still sends.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                client.sendall(payload)
                client.shutdown(socket.SHUT_WR)
                while data := client.recv(65536):
                    answer += data
        serving.join(5)
    if client_cert:
        assert answer == payload.upper()
        assert isinstance(peers[0], dict)
    else:
        assert answer == b""
        assert isinstance(peers[0], ssl.SSLError)


def test_the_sidecar_trusts_only_kubedocks_own_certificate(tmp_path: Path,
                                                           tls_files: Any) -> None:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tls_files.stranger_cert, tls_files.stranger_key)  # not kubedock's
    peers: list[object] = []
    path = tmp_path / "docker.sock"
    tls = tls_context(str(sidecar_tls_dir(tls_files, tmp_path / "tls")))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        threading.Thread(target=shout_over_tls, args=(listener, server, peers),
                         daemon=True).start()
        with start_relay(path, listener.getsockname(), tls), \
                socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(str(path))
            assert client.recv(1) == b""


def test_a_stale_socket_file_is_replaced(tmp_path: Path, upstream: tuple[str, int]) -> None:
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    with start_relay(path, upstream):
        assert wait_for_socket(str(path), 5)


def test_an_unreachable_kubedock_closes_the_client(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        nowhere = closed.getsockname()
    path = tmp_path / "docker.sock"
    with start_relay(path, nowhere), socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(str(path))
        assert client.recv(1) == b""


def test_waiting_for_a_socket_that_never_comes(tmp_path: Path) -> None:
    assert not wait_for_socket(str(tmp_path / "docker.sock"), 0.2)


@pytest.mark.parametrize(
    ("url", "address"),
    [("http://10.0.0.1:2475", ("10.0.0.1", 2475)), ("tcp://kd:1", ("kd", 1)),
     ("kd:2475", ("kd", 2475)), ("http://[fd00::1]:2475/", ("fd00::1", 2475))],
)
def test_upstream_urls(url: str, address: tuple[str, int]) -> None:
    assert parse_upstream(url) == address


def test_the_role_ends_cleanly_when_kubernetes_stops_it(tmp_path: Path) -> None:
    path = tmp_path / "docker.sock"
    role = subprocess.Popen([sys.executable, "-m", "kubedock", "dind", "--unix-socket", str(path),
                             "--kubedock-url", "http://127.0.0.1:9"])
    try:
        waited = subprocess.run([sys.executable, "-m", "kubedock", "dind", "--unix-socket",
                                 str(path), "--wait", "20"], timeout=30)
        assert waited.returncode == 0
        role.send_signal(signal.SIGTERM)
        assert role.wait(timeout=10) == 0
    finally:
        role.kill()
        role.wait()
