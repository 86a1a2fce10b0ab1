"""Fixtures: a kubedock server on the local cluster, and a docker-py client for it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import pytest
from kubedock_server import (
    CLEAN_ENV,
    MODULE,
    Kubedock,
    served_by,
    start_kubedock,
    stop_kubedock,
)
from private_registry import PrivateRegistry, start_private_registry
from restricted import remove_cluster_rbac, restricted_kubeconfig


@pytest.fixture(scope="module")
def kubedock(cluster: Any, namespace: str, rbac_kubeconfig: Path, current_images: None,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubedock]:
    """kubedock with port-forwarding, serving the module's namespace with only the rights of
    deploy/rbac.yaml, as it runs when deployed (its init image built from these sources)."""
    yield from _deployed(cluster, namespace, rbac_kubeconfig, tmp_path_factory.mktemp("kubedock"))


@pytest.fixture(scope="module")
def frozen_kubedock(cluster: Any, namespace: str, rbac_kubeconfig: Path, frozen_program: Path,
                    current_images: None, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[Kubedock]:
    """`kubedock`, served by the frozen program (build/binary) with an empty environment."""
    yield from _deployed(cluster, namespace, rbac_kubeconfig, tmp_path_factory.mktemp("frozen"),
                         program=[str(frozen_program)], env=CLEAN_ENV)


def _deployed(cluster: Any, namespace: str, kubeconfig: Path, tmp: Path,
              program: Sequence[str] = MODULE, env: Mapping[str, str] | None = None
              ) -> Iterator[Kubedock]:
    process, server = start_kubedock(cluster, namespace, tmp, "--port-forward",
                                     "--kubeconfig", str(kubeconfig), program=program, env=env)
    yield server
    code = stop_kubedock(process)
    assert code == 128 + 15, server.log.read_text()[-4000:]


@pytest.fixture(params=["kubedock", "docker_oracle"], ids=["kubedock", "docker"])
def target(request: pytest.FixtureRequest) -> Kubedock:
    """kubedock, or the reference engine for the same scenario."""
    return served_by(request, request.param)


@pytest.fixture(scope="module")
def rbac_kubeconfig(cluster: Any, namespace: str, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[Path]:
    """A kubeconfig with only deploy/rbac.yaml's rights in the module's namespace: pass it
    as ``--kubeconfig`` to `start_kubedock` to run kubedock as it is deployed."""
    yield restricted_kubeconfig(cluster, namespace, tmp_path_factory.mktemp("rbac"))
    remove_cluster_rbac(cluster, namespace)


@pytest.fixture(scope="module")
def client(kubedock: Kubedock) -> Iterator[docker.DockerClient]:
    result = docker.DockerClient(base_url=kubedock.host, timeout=120)
    yield result
    result.close()


@pytest.fixture(scope="module")
def private_registry(cluster: Any) -> PrivateRegistry:
    """The registry that wants credentials (127.0.0.1:5001) and its test credentials."""
    return start_private_registry()
