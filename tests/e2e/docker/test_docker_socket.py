"""A container that binds /var/run/docker.sock gets kubedock's Docker API through the socket
(the `dind` sidecar), as Ryuk and docker-in-a-build-container setups expect."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest
from kubedock_server import Kubedock, docker_cli, start_kubedock, stop_kubedock

pytestmark = pytest.mark.cluster

DOCKER_CLI = Path("/usr/local/bin/docker")  # static: it runs in a busybox container


@pytest.fixture(scope="module")
def reachable(cluster: Any, namespace: str, rbac_kubeconfig: Path, current_images: None,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubedock]:
    """kubedock listening on the node's address, which pods reach, as the API server does."""
    process, server = start_kubedock(cluster, namespace, tmp_path_factory.mktemp("socket"),
                                     "--port-forward", "--kubeconfig", str(rbac_kubeconfig),
                                     host=_node_ip(cluster))
    yield server
    assert stop_kubedock(process) == 128 + 15, server.log.read_text()[-4000:]


@pytest.fixture(scope="module")
def reachable_with_tls(cluster: Any, namespace: str, rbac_kubeconfig: Path, current_images: None,
                       tls_files: Any, tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[Kubedock]:
    """`reachable`, requiring client certificates: its sidecars must present their own."""
    process, server = start_kubedock(
        cluster, namespace, tmp_path_factory.mktemp("socket-tls"), "--port-forward",
        "--kubeconfig", str(rbac_kubeconfig), "--tls-enable",
        "--tls-cert-file", str(tls_files.server_cert), "--tls-key-file", str(tls_files.server_key),
        "--tls-ca-file", str(tls_files.ca), host=_node_ip(cluster),
    )
    yield attrs.evolve(server, tls_dir=tls_files.directory)
    assert stop_kubedock(process) == 128 + 15, server.log.read_text()[-4000:]


def _node_ip(cluster: Any) -> str:
    server_url = cluster.kubectl("config", "view", "--minify",
                                 "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    node_ip = urlsplit(server_url.strip()).hostname
    assert node_ip
    return node_ip


def run(server: Kubedock, *args: str) -> str:
    result = docker_cli(server, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout.decode()


@pytest.mark.skipif(not DOCKER_CLI.exists(), reason="no static docker CLI to run in a container")
@pytest.mark.parametrize("server", ["reachable", "reachable_with_tls"])
def test_the_docker_cli_inside_a_container_drives_kubedock(
    request: pytest.FixtureRequest, server: str
) -> None:
    reachable: Kubedock = request.getfixturevalue(server)
    name = f"socket-{time.time_ns()}"
    # The CLI arrives through a bind (the init container copies it in) next to the socket.
    run(reachable, "run", "-d", "--name", name,
        "-v", "/var/run/docker.sock:/var/run/docker.sock",
        "-v", f"{DOCKER_CLI}:/usr/local/bin/docker:ro",
        "busybox:1.36", "sleep", "300")
    try:
        names = run(reachable, "exec", name, "docker", "ps", "--format", "{{.Names}}")
        assert name in names.split()
        # A container started from inside: create, attach (a hijacked stream through the
        # relay), wait and remove.
        inner = run(reachable, "exec", name, "docker", "run", "--rm", "busybox:1.36",
                    "echo", "hello from inside")
        assert inner == "hello from inside\n"
    finally:
        run(reachable, "rm", "-f", name)


def test_a_container_with_the_socket_completes_and_is_removed(reachable: Kubedock) -> None:
    # The sidecar must not keep the pod alive once main has ended.
    result = docker_cli(reachable, "run", "--rm", "-v", "/run/docker.sock:/sock/docker.sock",
                        "busybox:1.36", "sh", "-c", "test -S /sock/docker.sock && exit 7")
    assert result.returncode == 7, result.stderr


def test_without_a_way_back_the_bind_is_refused_clearly(kubedock: Kubedock) -> None:
    result = docker_cli(kubedock, "create", "-v", "/var/run/docker.sock:/var/run/docker.sock",
                        "busybox:1.36")
    assert result.returncode != 0
    assert b"--kubedock-url" in result.stderr
