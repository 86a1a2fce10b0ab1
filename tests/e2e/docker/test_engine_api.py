"""The rest of the Engine API against kubedock and the Docker engine: inspect's shape, create
options that reach the pod, log drivers, prune filters, and endpoints kubedock lacks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from kubedock_server import Kubedock, docker_cli, served_by

pytestmark = pytest.mark.cluster

# Keys Docker's inspect has that kubedock leaves out, and why.
NOT_IN_KUBEDOCK: dict[str, str] = {
    # Removed from the API in 1.42; the reference engine speaks 1.41, kubedock 1.45.
    "HostConfig.KernelMemory": "API 1.41 only",
}
# Keys kubedock has that the reference engine lacks.
ONLY_IN_KUBEDOCK: dict[str, str] = {
    "NetworkSettings.Networks.*.DNSNames": "API 1.44 and later",
}


def key_paths(document: Any, prefix: str = "") -> set[str]:
    """Every key of a JSON document as a dotted path; map keys that are data (network names,
    port keys, labels) stand as `*`."""
    if not isinstance(document, dict):
        return set()
    paths = set()
    for key, value in document.items():
        data_key = prefix.endswith(("Networks.", "Labels.", "Ports.", "ExposedPorts.",
                                    "Config.Config.", "PortBindings.", "DriverOpts.",
                                    "Containers.", "Options.", "GraphDriver.Data.",
                                    "Volumes.", "Tmpfs."))
        path = f"{prefix}{'*' if data_key else key}"
        paths.add(path)
        paths |= key_paths(value, f"{path}.")
    return paths


@pytest.fixture
def clients(kubedock: Kubedock, request: pytest.FixtureRequest
            ) -> Iterator[dict[str, docker.DockerClient]]:
    engines = {"kubedock": kubedock, "docker": served_by(request, "docker_oracle")}
    clients = {name: docker.DockerClient(base_url=server.host, timeout=120)
               for name, server in engines.items()}
    yield clients
    for client in clients.values():
        client.close()


def test_inspect_has_dockers_keys(clients: dict[str, docker.DockerClient]) -> None:
    """The same container on a user network, inspected by both engines: the same keys."""
    tag = f"keys-{time.time_ns()}"
    paths: dict[str, tuple[set[str], set[str]]] = {}
    for name, client in clients.items():
        network = client.networks.create(tag, labels={"test": tag})
        container = client.containers.run(
            "busybox:1.36", ["sleep", "300"], detach=True, name=tag, network=tag,
            labels={"test": tag}, ports={"80/tcp": None}, environment={"A": "1"},
            healthcheck={"test": ["CMD", "true"], "interval": 1_000_000_000})
        try:
            container.reload()
            network.reload()
            paths[name] = (key_paths(container.attrs), key_paths(network.attrs))
        finally:
            container.remove(force=True)
            network.remove()
    (kubedock_keys, kubedock_network), (docker_keys, docker_network) = (
        paths["kubedock"], paths["docker"])
    assert docker_keys - kubedock_keys - set(NOT_IN_KUBEDOCK) == set()
    assert kubedock_keys - docker_keys - set(ONLY_IN_KUBEDOCK) == set()
    assert docker_network - kubedock_network == set()


def test_options_reach_the_container(target: Kubedock) -> None:
    script = ("id -G; grep CapEff /proc/self/status; "
              "cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
              "/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    run = docker_cli(target, "run", "--rm", "--group-add", "1000", "--group-add", "1001",
                     "--cap-drop", "NET_RAW", "--cap-drop", "CAP_MKNOD", "--cpu-shares", "512",
                     "--cpu-quota", "75000", "--cpu-period", "100000", "busybox:1.36",
                     "sh", "-c", script)
    assert run.returncode == 0, run.stderr
    groups, capabilities, shares, quota, period = run.stdout.decode().splitlines()
    assert {"1000", "1001"} <= set(groups.split())
    # Docker's default capabilities (those of containerd's CRI too) less NET_RAW and MKNOD.
    assert capabilities.split() == ["CapEff:", "00000000a00405fb"]
    # 512 shares are half a CPU requested: the kubelet gives the pod the same weight. (Shares
    # above a quota's CPUs would be capped to it: a pod cannot request more than its limit.)
    assert (int(shares), int(quota), int(period)) == (512, 75000, 100000)


def test_options_refused_by_name(kubedock: Kubedock) -> None:
    for option, name in [("--pids-limit=10", "PidsLimit"),
                         ("--gpus=all", "DeviceRequests"), ("--group-add=audio", "GroupAdd"),
                         ("--cpuset-cpus=0", "CpusetCpus")]:
        run = docker_cli(kubedock, "create", option, "busybox:1.36", "true")
        assert run.returncode != 0
        assert f"HostConfig.{name}" in run.stderr.decode(), run.stderr


def test_log_drivers(target: Kubedock) -> None:
    unknown = docker_cli(target, "run", "--rm", "--log-driver", "asdf", "busybox:1.36", "true")
    assert unknown.returncode != 0
    assert "asdf" in unknown.stderr.decode()
    name = f"quiet-{time.time_ns()}"
    quiet = docker_cli(target, "run", "--name", name, "--log-driver", "none", "busybox:1.36",
                       "echo", "hi")
    try:
        # Attaching does not read logs: the output still reaches `docker run`.
        assert (quiet.returncode, quiet.stdout) == (0, b"hi\n"), quiet.stderr
        logs = docker_cli(target, "logs", name)
        assert logs.returncode != 0
        assert "configured logging driver does not support reading" in logs.stderr.decode()
    finally:
        docker_cli(target, "rm", "-f", name)
    client = docker.DockerClient(base_url=target.host, timeout=120)
    try:
        container = client.containers.create(
            "busybox:1.36", "true", log_config={"Type": "json-file",
                                                "Config": {"max-file": "3", "max-size": "1m"}})
        try:
            assert container.attrs["HostConfig"]["LogConfig"] == {
                "Type": "json-file", "Config": {"max-file": "3", "max-size": "1m"}}
        finally:
            container.remove(force=True)
    finally:
        client.close()


def test_log_drivers_kubedock_cannot_serve_are_refused(kubedock: Kubedock) -> None:
    run = docker_cli(kubedock, "create", "--log-driver", "syslog", "busybox:1.36", "true")
    assert run.returncode != 0
    assert "log driver 'syslog' is not supported by kubedock" in run.stderr.decode()


def test_prune_filters(target: Kubedock) -> None:
    """Only ever with this test's own label: the reference engine is shared."""
    tag = f"prune-{time.time_ns()}"
    client = docker.DockerClient(base_url=target.host, timeout=120)
    try:
        def create(name: str, **labels: str) -> str:
            container = client.containers.create("busybox:1.36", "true", name=f"{tag}-{name}",
                                                 labels={"test": tag, **labels})
            return str(container.id)

        for name in ("n-old", "n-spared"):
            client.networks.create(f"{tag}-{name}", labels={
                "test": tag, **({"keep": "1"} if name == "n-spared" else {})})
        old = create("old")
        spared = create("spared", keep="1")
        time.sleep(3)
        new = create("new")

        pruned = client.containers.prune(filters={"until": "2s", "label": [f"test={tag}"],
                                                  "label!": ["keep=1"]})
        assert pruned["ContainersDeleted"] == [old]
        pruned = client.containers.prune(filters={"until": "2100-01-01T00:00:00Z",
                                                  "label": [f"test={tag}"]})
        assert sorted(pruned["ContainersDeleted"]) == sorted([spared, new])
        networks = client.networks.prune(filters={"label": [f"test={tag}"], "label!": "keep"})
        assert networks["NetworksDeleted"] == [f"{tag}-n-old"]
        networks = client.networks.prune(filters={"label": [f"test={tag}"], "until": "1h"})
        assert networks["NetworksDeleted"] is None
        networks = client.networks.prune(filters={"label": [f"test={tag}"]})
        assert networks["NetworksDeleted"] == [f"{tag}-n-spared"]
    finally:
        for container in client.containers.list(all=True, filters={"label": f"test={tag}"}):
            container.remove(force=True)
        for network in client.networks.list(filters={"label": f"test={tag}"}):
            network.remove()
        client.close()


def test_missing_endpoints_answer_501_naming_them(kubedock: Kubedock) -> None:
    paused = docker_cli(kubedock, "pause", "anything")
    assert paused.returncode != 0
    assert ("POST /containers/{id}/pause is not supported by kubedock"
            in paused.stderr.decode()), paused.stderr
    swarm = docker_cli(kubedock, "secret", "ls")
    assert "GET /secrets is not supported by kubedock" in swarm.stderr.decode(), swarm.stderr
