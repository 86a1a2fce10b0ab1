"""kubedock with mutual TLS: the docker CLI, docker-py and testcontainers-python with client
certificates; without one, nothing is served."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import docker
import pytest
from kubedock_server import Kubedock, start_kubedock, stop_kubedock
from testcontainers.core.container import DockerContainer

pytestmark = pytest.mark.cluster


@pytest.fixture(autouse=True)
def ca_of_the_client_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE (set on some machines) override the
    CA file a session is given, which is how docker-py passes DOCKER_CERT_PATH's ca.pem."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture(scope="module")
def tls_kubedock(cluster: Any, namespace: str, rbac_kubeconfig: Path, current_images: None,
                 tls_files: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubedock]:
    process, server = start_kubedock(
        cluster, namespace, tmp_path_factory.mktemp("kubedock"), "--port-forward",
        "--kubeconfig", str(rbac_kubeconfig), "--tls-enable",
        "--tls-cert-file", str(tls_files.server_cert), "--tls-key-file", str(tls_files.server_key),
        "--tls-ca-file", str(tls_files.ca),
    )
    yield attrs.evolve(server, tls_dir=tls_files.directory)
    assert stop_kubedock(process) == 128 + 15, server.log.read_text()[-4000:]


def test_docker_cli_with_a_client_certificate(tls_kubedock: Kubedock) -> None:
    env = tls_kubedock.env()

    def docker_cli(*args: str, input: bytes | None = None) -> bytes:
        done = subprocess.run(["docker", *args], env=env, input=input, capture_output=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout

    assert docker_cli("run", "--rm", "busybox:1.36", "echo", "hi") == b"hi\n"
    name = docker_cli("run", "-d", "busybox:1.36", "sleep", "300").strip().decode()
    try:
        assert docker_cli("exec", name, "sh", "-c", "echo out; echo err >&2") == b"out\n"
        # Stdin ends with the client's half-close, which over TLS is a close_notify alert.
        assert docker_cli("exec", "-i", name, "cat", input=b"through tls\n") == b"through tls\n"
    finally:
        docker_cli("rm", "-f", name)


def test_docker_cli_without_a_client_certificate_is_refused(tls_kubedock: Kubedock,
                                                            tls_files: Any,
                                                            tmp_path: Path) -> None:
    shutil.copy(tls_files.ca, tmp_path / "ca.pem")  # trusts the server, has no certificate
    plain = attrs.evolve(tls_kubedock, tls_dir=None)
    for env in (tls_kubedock.env(DOCKER_CERT_PATH=str(tmp_path)), plain.env()):
        done = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                              env=env, capture_output=True, timeout=60, check=False)
        assert (done.returncode, done.stdout.strip()) == (1, b""), done.stderr


def docker_py(server: Kubedock, tls_files: Any, *, client_cert: bool) -> docker.DockerClient:
    tls = docker.tls.TLSConfig(
        client_cert=(str(tls_files.client_cert), str(tls_files.client_key)) if client_cert
        else None,
        ca_cert=str(tls_files.ca), verify=True,
    )
    return docker.DockerClient(base_url=f"https://127.0.0.1:{server.port}", tls=tls, timeout=120)


# docker-py leaves the socket of a streamed exec to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_docker_py_with_a_client_certificate(tls_kubedock: Kubedock, tls_files: Any) -> None:
    client = docker_py(tls_kubedock, tls_files, client_cert=True)
    container = client.containers.run("busybox:1.36", ["sleep", "300"], detach=True)
    try:
        result = container.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"], demux=True)
        assert (result.exit_code, result.output) == (3, (b"out\n", b"err\n"))
    finally:
        container.remove(force=True)
        client.close()


def test_docker_py_without_a_client_certificate_is_refused(tls_kubedock: Kubedock,
                                                           tls_files: Any) -> None:
    # docker-py asks for the server's API version as it is made.
    # In TLS 1.3 the server checks the client's certificate after the client's handshake
    # ended: the refusal reaches the client as a connection closed without an answer.
    with pytest.raises(docker.errors.DockerException, match="Connection aborted"):
        docker_py(tls_kubedock, tls_files, client_cert=False)


@pytest.fixture
def testcontainers_env(tls_kubedock: Kubedock, tls_files: Any) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(DOCKER_HOST=tls_kubedock.host, DOCKER_TLS_VERIFY="1",
                      DOCKER_CERT_PATH=str(tls_files.directory),
                      TESTCONTAINERS_RYUK_DISABLED="true")
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.usefixtures("testcontainers_env")
def test_testcontainers_with_a_client_certificate() -> None:
    with DockerContainer("busybox:1.36").with_command(["sleep", "300"]) as container:
        assert container.exec(["echo", "over tls"]) == (0, b"over tls\n")
