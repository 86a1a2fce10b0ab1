"""Images from a registry that wants credentials (build/registry/up's second registry, basic
auth): kubedock pulls and pushes with the client's credentials or the pods' pull secrets, and
the node pulls with the pull secrets kubedock puts on the pods."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubedock_server import Kubedock, docker_cli
from private_registry import (
    PrivateRegistry,
    own_kubedock,
    write_logged_in_config,
)

pytestmark = pytest.mark.cluster


@pytest.fixture
def docker_configs(tmp_path: Path, private_registry: PrivateRegistry) -> Iterator[
        tuple[str, str]]:
    """DOCKER_CONFIG directories of the CLI: logged in to the private registry, and anonymous."""
    anonymous = tmp_path / "anonymous"
    anonymous.mkdir()
    (anonymous / "config.json").write_text("{}")
    yield write_logged_in_config(tmp_path / "logged-in", private_registry), str(anonymous)


def _docker(server: Kubedock, config: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], env=server.env(DOCKER_CONFIG=config),
                          capture_output=True, timeout=120, check=False)


def _push_private(server: Kubedock, config: str, registry: PrivateRegistry) -> str:
    name = f"{registry.address}/kd-private/busybox:{int(time.time() * 1000)}"
    assert docker_cli(server, "pull", "busybox:1.36").returncode == 0
    assert docker_cli(server, "tag", "busybox:1.36", name).returncode == 0
    pushed = _docker(server, config, "push", name)
    assert pushed.returncode == 0, pushed.stderr
    return name


def test_a_pull_with_credentials_lets_the_node_pull(
        cluster: Any, namespace: str, rbac_kubeconfig: Path, kubedock: Kubedock,
        private_registry: PrivateRegistry, docker_configs: tuple[str, str],
        tmp_path: Path) -> None:
    logged_in, anonymous = docker_configs
    name = _push_private(kubedock, logged_in, private_registry)
    with own_kubedock(cluster, namespace, rbac_kubeconfig, tmp_path,
                      docker_config=anonymous) as server:
        refused = _docker(server, anonymous, "pull", name)
        assert refused.returncode == 1
        assert b"may require 'docker login'" in refused.stderr, refused.stderr
        pulled = _docker(server, logged_in, "pull", name)
        assert pulled.returncode == 0, pulled.stderr
        ran = docker_cli(server, "run", "--rm", name, "echo", "pulled by the node")
        assert (ran.returncode, ran.stdout) == (0, b"pulled by the node\n"), ran.stderr
        secrets = json.loads(cluster.kubectl(
            "-n", namespace, "get", "secrets", "-l", f"kubedock.id={_instance_id(server)}",
            "-o", "json").stdout)["items"]
        assert [secret["type"] for secret in secrets] == ["kubernetes.io/dockerconfigjson"]
    assert cluster.kubectl("-n", namespace, "get", "secrets", "-l",
                           f"kubedock.id={_instance_id(server)}", "-o", "name").stdout == ""


def test_the_pull_secrets_of_the_flag_serve_kubedock_and_the_nodes(
        cluster: Any, namespace: str, rbac_kubeconfig: Path, kubedock: Kubedock,
        private_registry: PrivateRegistry, docker_configs: tuple[str, str],
        tmp_path: Path) -> None:
    logged_in, anonymous = docker_configs
    name = _push_private(kubedock, logged_in, private_registry)
    cluster.kubectl("-n", namespace, "create", "secret", "docker-registry", "regcred",
                    f"--docker-server={private_registry.address}",
                    f"--docker-username={private_registry.username}",
                    f"--docker-password={private_registry.password}")
    # Its own Docker config knows no registry: only the pull secret can give its registry
    # client credentials.
    with own_kubedock(cluster, namespace, rbac_kubeconfig, tmp_path, "--image-pull-secrets",
                      "regcred", docker_config=anonymous) as flagged:
        pulled = _docker(flagged, anonymous, "pull", name)
        assert pulled.returncode == 0, pulled.stderr
        ran = _docker(flagged, anonymous, "run", "--rm", name, "echo", "with the flag's secret")
        assert (ran.returncode, ran.stdout) == (0, b"with the flag's secret\n"), ran.stderr


def _instance_id(server: Kubedock) -> str:
    for line in server.log.read_text().splitlines():
        if " serving " in line and "kubedock " in line:
            return line.split("kubedock ", 1)[1].split()[0]
    raise AssertionError(f"no readiness line in {server.log.read_text()[-2000:]}")
