"""A kubedock server on the local cluster, and the clients that talk to it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import docker
import pytest

ROOT = Path(__file__).resolve().parents[3]


@attrs.frozen
class Kubedock:
    host: str  # DOCKER_HOST value
    port: int
    namespace: str
    kubeconfig: str
    log: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "TESTCONTAINERS_RYUK_DISABLED": "true",
                **extra}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_kubedock(cluster: Any, namespace: str, tmp: Path, *extra: str
                   ) -> tuple[subprocess.Popen[bytes], Kubedock]:
    port = _free_port()
    log = tmp / f"kubedock-{port}.log"
    command = [sys.executable, "-m", "kubedock", "server", "--listen-addr", f"127.0.0.1:{port}",
               "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig),
               "--timeout", "90s", *extra]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    server = Kubedock(f"tcp://127.0.0.1:{port}", port, namespace, str(cluster.kubeconfig), log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kubedock exited: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, server
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"kubedock did not start: {log.read_text()}")


def stop_kubedock(process: subprocess.Popen[bytes]) -> int:
    process.terminate()
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@pytest.fixture(scope="module")
def kubedock(cluster: Any, namespace: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Kubedock]:
    """kubedock with port-forwarding, serving the module's namespace."""
    process, server = start_kubedock(cluster, namespace, tmp_path_factory.mktemp("kubedock"),
                                     "--port-forward")
    yield server
    code = stop_kubedock(process)
    assert code == 128 + 15, server.log.read_text()[-4000:]


@pytest.fixture(scope="module")
def client(kubedock: Kubedock) -> Iterator[docker.DockerClient]:
    with docker.DockerClient(base_url=kubedock.host, timeout=120) as result:
        yield result


def docker_cli(server: Kubedock, *args: str, input: bytes | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], env=server.env(), input=input,
                          capture_output=True, timeout=timeout, check=False)
