"""The registry that wants credentials (build/registry/up's second one, basic auth), a docker
CLI config logged in to it, and kubedocks that wait out the kubelet's first pull of its images."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
from kubedock_server import ROOT, Kubedock, start_kubedock, stop_kubedock


@attrs.frozen
class PrivateRegistry:
    address: str
    username: str
    password: str


def start_private_registry() -> PrivateRegistry:
    """Started by build/registry/up (idempotent), also on a cluster started before it had one."""
    done = subprocess.run([str(ROOT / "build" / "registry" / "up")], capture_output=True,
                          text=True, timeout=300, check=True)
    [line] = [line for line in done.stdout.splitlines() if line.startswith("REGISTRY_AUTH=")]
    credentials, _, address = line.removeprefix("REGISTRY_AUTH=").rpartition("@")
    username, _, password = credentials.partition(":")
    return PrivateRegistry(address, username, password)


def write_logged_in_config(directory: Path, registry: PrivateRegistry) -> str:
    """A DOCKER_CONFIG directory logged in to the registry, as `docker login` writes it."""
    directory.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode())
    (directory / "config.json").write_text(json.dumps(
        {"auths": {registry.address: {"auth": auth.decode()}}}))
    return str(directory)


@contextlib.contextmanager
def own_kubedock(cluster: Any, namespace: str, kubeconfig: Path, tmp: Path, *extra: str,
                 docker_config: str) -> Iterator[Kubedock]:
    """A kubedock of the test's own, with deploy/rbac.yaml's rights and `docker_config` as its
    Docker config. Its starts may wait out a failed pull: under load the kubelet may ask the
    registry before it can read a pod's new pull secret (the node authorizer has not linked
    them yet), and it pulls again 10 s later."""
    process, server = start_kubedock(
        cluster, namespace, tmp, "--port-forward", "--kubeconfig", str(kubeconfig),
        "--fail-fast-after", "60s", *extra, env={**os.environ, "DOCKER_CONFIG": docker_config})
    try:
        yield server
    finally:
        assert stop_kubedock(process) == 128 + 15, server.log.read_text()[-4000:]
