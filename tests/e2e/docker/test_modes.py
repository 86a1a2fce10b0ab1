"""Server modes and log options: unix socket, reverse proxy, pod IP; since, until, timestamps."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import pytest
from kubedock_server import Kubedock, start_kubedock, stop_kubedock

pytestmark = pytest.mark.cluster


def _http_get(host: str, port: int) -> bytes:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as answer:
                body: bytes = answer.read()
                return body
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.parametrize("mode", ["--reverse-proxy", "pod-ip"])
def test_exposure_modes(cluster: Any, namespace: str, tmp_path: Path, mode: str) -> None:
    extra = [mode] if mode.startswith("--") else []
    process, server = start_kubedock(cluster, namespace, tmp_path, *extra,
                                     "--network-names", "external")
    try:
        client = docker.DockerClient(base_url=server.host, timeout=120)
        container = client.containers.run("nginx:1.27", detach=True, ports={"80/tcp": None})
        try:
            container.reload()
            binding = container.ports["80/tcp"][0]
            if mode == "pod-ip":
                assert binding["HostIp"] == container.attrs["NetworkSettings"]["IPAddress"]
                assert binding["HostPort"] == "80"
            assert b"nginx" in _http_get(binding["HostIp"], int(binding["HostPort"]))
        finally:
            container.remove(force=True)
            client.close()
    finally:
        assert stop_kubedock(process) == 143, server.log.read_text()[-3000:]


def test_unix_socket_serves_with_tcp(cluster: Any, namespace: str, tmp_path: Path) -> None:
    path = tmp_path / "kubedock.sock"
    process, server = start_kubedock(cluster, namespace, tmp_path, "--unix-socket", str(path),
                                      "--network-names", "external")
    try:
        for _ in range(50):
            if path.exists():
                break
            time.sleep(0.1)
        result = subprocess.run(
            ["docker", "-H", f"unix://{path}", "run", "--rm", "busybox:1.36", "echo", "via socket"],
            capture_output=True, timeout=120, check=False)
        assert (result.returncode, result.stdout) == (0, b"via socket\n"), result.stderr
        with socket.create_connection(("127.0.0.1", server.port)):
            pass
    finally:
        assert stop_kubedock(process) == 143
    assert not path.exists()


def test_log_since_until_and_timestamps(client: docker.DockerClient) -> None:
    container = client.containers.run(
        "busybox:1.36", ["sh", "-c", "echo one; sleep 1.5; echo two; sleep 1.5; echo three"],
        detach=True)
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        stamped = container.logs(timestamps=True).decode().splitlines()
        moments = [datetime.fromisoformat(line.split(" ", 1)[0][:26] + "+00:00")
                   for line in stamped]
        assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two", "three"]
        middle = moments[1].timestamp()
        assert container.logs(since=middle - 0.2, until=middle + 0.2) == b"two\n"
        assert container.logs(since=middle - 0.2) == b"two\nthree\n"
        assert container.logs(tail=0) == b""
        assert container.logs(tail=2) == b"two\nthree\n"
    finally:
        container.remove(force=True)


def test_server_answers_docker_style_to_unknown_versions(kubedock: Kubedock) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{kubedock.port}/v1.99/_ping") as answer:
        assert answer.read() == b"OK"
        assert answer.headers["Api-Version"] == "1.45"
