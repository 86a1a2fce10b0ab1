"""The frozen kubedock (build/binary) runs with no Python around it: as a program and as an image.

The program runs with an empty environment, so nothing from the venv can leak into it; the image
holds only the one-folder build and the C library it loads, and runs on the reference engine.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_cluster import Cluster

import kubedock

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 900  # a cold PyInstaller build takes under a minute; this is for a busy machine
CLEAN_ENV = {"PATH": "/usr/bin:/bin"}
IMAGE = f"kubedock/kubedock:{kubedock.__version__}"


@pytest.fixture(scope="module")
def frozen() -> Path:
    """The one-file program; build/binary returns at once when the sources are unchanged."""
    done = subprocess.run(
        [str(REPO / "build/binary")],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"build/binary failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return Path(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def frozen_server(
    frozen: Path, cluster: Cluster, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """DOCKER_HOST of the frozen program serving the Docker API on the local cluster."""
    port = _free_port()
    log = tmp_path_factory.mktemp("frozen") / "kubedock.log"
    # Names through pod annotations only: kubedock's DNS role would start a pod of the image,
    # which the cluster holds only once build/cluster/up has imported the current one.
    command = [
        str(frozen), "server", "--listen-addr", f"127.0.0.1:{port}", "-n", namespace,
        "--kubeconfig", str(cluster.kubeconfig), "--network-names", "external",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=CLEAN_ENV, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_ping(process, port, log)
        yield f"tcp://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_ping(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the frozen kubedock exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_ping", timeout=1).text == "OK":
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"the frozen kubedock did not answer /_ping within 30 s:\n{log.read_text()}")


def docker(host: str, *args: str) -> subprocess.CompletedProcess[str]:
    # subprocess kills on timeout: `docker run` would only pass a SIGTERM on to its container.
    env = {**os.environ, "DOCKER_HOST": host}
    return subprocess.run(
        ["docker", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_version_names_the_build(frozen: Path) -> None:
    done = subprocess.run(
        [str(frozen), "version"], env=CLEAN_ENV, capture_output=True, text=True, check=True
    )
    version, commit, built = done.stdout.splitlines()
    assert version == f"kubedock {kubedock.__version__}"
    assert re.fullmatch(r"commit: [0-9a-f]{12}(-dirty)?", commit)
    assert re.fullmatch(r"built: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", built)


def test_frozen_server_runs_a_container(frozen_server: str) -> None:
    done = docker(frozen_server, "run", "--rm", "busybox:1.36", "echo", "hi")
    assert (done.returncode, done.stdout) == (0, "hi\n"), done.stderr


def test_frozen_server_reports_the_exit_code(frozen_server: str) -> None:
    done = docker(frozen_server, "run", "--name", "exit-3", "busybox:1.36", "sh", "-c", "exit 3")
    assert done.returncode == 3, done.stderr
    assert docker(frozen_server, "rm", "exit-3").returncode == 0


@pytest.mark.oracle
def test_image_holds_only_the_frozen_program(docker_oracle: str) -> None:
    done = docker(docker_oracle, "run", "--rm", IMAGE, "version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"kubedock {kubedock.__version__}"

    shape = docker(docker_oracle, "image", "inspect", "--format",
                   "{{json .Config.Entrypoint}} {{json .Config.Cmd}}", IMAGE)  # fmt: skip
    assert shape.stdout.split() == ['["/kubedock"]', '["server"]']

    created = docker(docker_oracle, "create", IMAGE)
    container = created.stdout.strip()
    try:
        exported = subprocess.run(
            ["docker", "export", container], env={**os.environ, "DOCKER_HOST": docker_oracle},
            capture_output=True, timeout=120, check=True,
        ).stdout  # fmt: skip
    finally:
        docker(docker_oracle, "rm", container)
    with tarfile.open(fileobj=io.BytesIO(exported)) as layer:
        members = {member.name: member for member in layer.getmembers()}
    interpreters = [
        name for name, member in members.items()
        if member.isfile() and re.search(r"(^|/)python[\d.]*$", name)
    ]  # fmt: skip
    assert not interpreters
    assert members["tmp"].isdir() and members["tmp"].mode & 0o1777 == 0o1777
    assert members["opt/kubedock/kubedock"].isfile()
