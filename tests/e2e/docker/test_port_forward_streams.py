"""Many connections at once through one forwarded port (they share one SPDY connection to the
pod): random data byte-exact both ways, and a client leaving mid-stream harms no other."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest
from docker.models.containers import Container

pytestmark = pytest.mark.cluster

_PORT = 8080
_STREAMS = 16
# httpd serves random files (and their MD5s); the CGI answers with the MD5 of a POST's body.
_SCRIPT = f"""mkdir -p /www/cgi-bin
head -c 4194304 /dev/urandom > /www/part
head -c 67108864 /dev/urandom > /www/big
md5sum /www/part | cut -d' ' -f1 > /www/part.md5
cat > /www/cgi-bin/sum <<'CGI'
#!/bin/sh
echo Content-Type: text/plain
echo
head -c "$CONTENT_LENGTH" | md5sum | cut -d' ' -f1
CGI
chmod +x /www/cgi-bin/sum
exec httpd -f -p {_PORT} -h /www"""


def _exchange(port: int, request: bytes, *, keep: int | None = None) -> bytes:
    """Send `request`, return the whole answer (or stop after `keep` bytes of it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall(request)
        answer = bytearray()
        while chunk := connection.recv(1 << 20):
            answer += chunk
            if keep is not None and len(answer) >= keep:
                return bytes(answer)  # closed mid-stream
    assert answer.split(b" ", 2)[1:2] == [b"200"], bytes(answer[:200])
    return bytes(answer)


def _get(port: int, name: str) -> bytes:
    answer = _exchange(port, f"GET /{name} HTTP/1.0\r\n\r\n".encode())
    return answer.partition(b"\r\n\r\n")[2]


def _post_sum(port: int, data: bytes) -> str:
    head = f"POST /cgi-bin/sum HTTP/1.0\r\nContent-Length: {len(data)}\r\n\r\n".encode()
    # The CGI's own header ends with a bare newline: its last word is the sum.
    return _exchange(port, head + data).split()[-1].decode()


@pytest.fixture(scope="module")
def served(client: docker.DockerClient) -> Iterator[int]:
    container: Container = client.containers.run(
        "busybox:1.36", ["sh", "-c", _SCRIPT], detach=True, ports={f"{_PORT}/tcp": None})
    try:
        container.reload()
        port = int(container.ports[f"{_PORT}/tcp"][0]["HostPort"])
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(port, "part.md5")
                break
            except (OSError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield port
    finally:
        container.remove(force=True)


def test_concurrent_downloads_are_byte_exact(served: int) -> None:
    expected = _get(served, "part.md5").decode().strip()
    with ThreadPoolExecutor(_STREAMS) as pool:
        bodies = list(pool.map(lambda _: _get(served, "part"), range(_STREAMS)))
    assert [hashlib.md5(body).hexdigest() for body in bodies] == [expected] * _STREAMS
    assert all(len(body) == 4 * 1024 * 1024 for body in bodies)


def test_concurrent_uploads_are_byte_exact(served: int) -> None:
    payloads = [os.urandom(3 * 1024 * 1024 + 4099 * index) for index in range(_STREAMS)]
    with ThreadPoolExecutor(_STREAMS) as pool:
        sums = list(pool.map(lambda data: _post_sum(served, data), payloads))
    assert sums == [hashlib.md5(data).hexdigest() for data in payloads]


def test_a_client_leaving_mid_stream_leaves_the_others_whole(served: int) -> None:
    expected = _get(served, "part.md5").decode().strip()
    with ThreadPoolExecutor(_STREAMS + 4) as pool:
        leaving = [pool.submit(_exchange, served, b"GET /big HTTP/1.0\r\n\r\n", keep=1 << 20)
                   for _ in range(4)]
        bodies = list(pool.map(lambda _: _get(served, "part"), range(_STREAMS)))
        assert all(len(future.result()) >= 1 << 20 for future in leaving)
    assert [hashlib.md5(body).hexdigest() for body in bodies] == [expected] * _STREAMS
    # The connection the others shared still carries new ones.
    assert _get(served, "part.md5").decode().strip() == expected
