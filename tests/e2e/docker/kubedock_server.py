"""Starting kubedock servers on the local cluster for end-to-end tests."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parents[3]
MODULE = (sys.executable, "-m", "kubedock")
# What the frozen program runs with: nothing of the venv or of this process can leak into it.
CLEAN_ENV = {"PATH": "/usr/bin:/bin"}
# The line a server logs once it is ready (plain or JSON log format).
_READY = re.compile(r"kubedock \S+ serving ")


@attrs.frozen
class Kubedock:
    """A Docker API under test: a kubedock server, or the reference Docker engine."""

    host: str  # DOCKER_HOST value
    port: int
    namespace: str
    kubeconfig: str
    log: Path
    reference: bool = False  # the Docker engine that scenarios are compared with
    tls_dir: Path | None = None  # DOCKER_CERT_PATH of a server that requires client certificates

    def env(self, **extra: str) -> dict[str, str]:
        tls = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(self.tls_dir)} if self.tls_dir \
            else {}
        return {**os.environ, "DOCKER_HOST": self.host, "TESTCONTAINERS_RYUK_DISABLED": "true",
                **tls, **extra}


def served_by(request: Any, fixture: str) -> Kubedock:
    """The server of a fixture: ``kubedock``-like ones as they are, ``docker_oracle`` (the
    reference engine's DOCKER_HOST) in the same shape."""
    if fixture == "docker_oracle":
        host: str = request.getfixturevalue(fixture)
        return Kubedock(host, 0, "", "", Path(os.devnull), reference=True)
    server: Kubedock = request.getfixturevalue(fixture)
    return server


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _mirror(cluster: Any) -> list[str]:
    """Docker Hub names resolve in the cluster's registry, as the node pulls them."""
    registry = getattr(cluster, "registry", "")
    return ["--registry-mirror", f"docker.io=http://{registry}"] if registry else []


def start_kubedock(cluster: Any, namespace: str, tmp: Path, *extra: str,
                   program: Sequence[str] = MODULE, env: Mapping[str, str] | None = None,
                   host: str = "127.0.0.1") -> tuple[subprocess.Popen[bytes], Kubedock]:
    """Start ``program server`` (the venv's kubedock unless told otherwise) with ``env``
    (this process's environment unless told otherwise), listening on ``host``; return once it
    has logged that it serves (it listens earlier, while its cluster part starts)."""
    port = _free_port(host)
    log = tmp / f"kubedock-{port}.log"
    command = [*program, "server", "--listen-addr", f"{host}:{port}",
               "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig),
               "--timeout", "90s", "--fail-fast-after", "5s", *_mirror(cluster), *extra]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                   env=env)
    server = Kubedock(f"tcp://{host}:{port}", port, namespace, str(cluster.kubeconfig), log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kubedock exited: {log.read_text()}")
        if _READY.search(log.read_text()):
            return process, server
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


def docker_cli(server: Kubedock, *args: str, input: bytes | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], env=server.env(), input=input,
                          capture_output=True, timeout=timeout, check=False)


def until_logged(server: Kubedock, container: str, text: bytes, *, times: int = 1,
                 seconds: float = 60) -> None:
    """Wait until the container's output holds `text` (`times` times): a script that says when
    it is ready (its traps set, say), rather than a guess of how long that takes under load."""
    deadline = time.monotonic() + seconds
    while docker_cli(server, "logs", container).stdout.count(text) < times:
        assert time.monotonic() < deadline, f"{container} did not log {text!r} in {seconds}s"
        time.sleep(0.2)


def docker_ok(server: Kubedock, *args: str, timeout: float = 120) -> str:
    """The docker CLI's output of a command that must succeed."""
    result = docker_cli(server, *args, timeout=timeout)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout.decode()
