"""docker stats, update and system df: the same scenarios against kubedock (with only the rights
of deploy/rbac.yaml) and the Docker engine."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from kubedock_server import Kubedock, docker_cli

pytestmark = pytest.mark.cluster

ZERO_TIME = "0001-01-01T00:00:00Z"


def cli(target: Kubedock, *args: str) -> str:
    run = docker_cli(target, *args)
    assert run.returncode == 0, run.stderr
    return run.stdout.decode()


@pytest.fixture
def api(target: Kubedock) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=target.host, version="auto", timeout=120)
    yield client
    client.close()


@pytest.fixture
def busy(target: Kubedock) -> Iterator[str]:
    """A running container that keeps a CPU busy, limited to 256 MiB."""
    name = f"busy-{time.time_ns()}"
    cli(target, "run", "-d", "--name", name, "-m", "256m", "busybox:1.36", "sh", "-c",
        "while :; do :; done")
    yield name
    docker_cli(target, "rm", "-f", name)


def test_docker_stats_shows_live_numbers(target: Kubedock, busy: str) -> None:
    # The kubelet has a CPU rate from its second sample of a container on.
    deadline = time.monotonic() + 60
    while True:
        row = json.loads(cli(target, "stats", "--no-stream", "--format", "{{json .}}", busy))
        cpu = float(row["CPUPerc"].rstrip("%"))
        if cpu > 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert cpu > 0, row
    used, _, limit = row["MemUsage"].partition(" / ")
    assert limit == "256MiB", row
    assert not used.startswith("0B"), row


def test_one_answer_and_a_stream(target: Kubedock, api: docker.APIClient, busy: str) -> None:
    document = api.stats(busy, stream=False)
    for key in ("read", "preread", "networks", "precpu_stats", "cpu_stats", "memory_stats",
                "blkio_stats", "pids_stats", "name", "id"):
        assert key in document, key
    assert document["name"] == f"/{busy}"
    assert document["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert document["cpu_stats"]["online_cpus"] >= 1
    assert document["memory_stats"]["usage"] > 0
    assert document["memory_stats"]["limit"] == 256 * 2**20
    assert document["preread"] != ZERO_TIME
    one_shot = api.get(api._url("/containers/{0}/stats", busy),
                       params={"stream": "false", "one-shot": "true"}).json()
    assert one_shot["preread"] == ZERO_TIME
    assert one_shot["cpu_stats"]["cpu_usage"]["total_usage"] > 0

    began = time.monotonic()
    stream = api.stats(busy, decode=True)
    samples = [next(stream) for _ in range(4)]
    assert 2 < time.monotonic() - began < 8  # a second apart
    assert all(sample["cpu_stats"]["cpu_usage"]["total_usage"] > 0 for sample in samples)
    # The stream ends when the container goes.
    cli(target, "rm", "-f", busy)
    deadline = time.monotonic() + 30
    for _ in stream:
        assert time.monotonic() < deadline


def test_a_container_that_does_not_run_has_zeros(target: Kubedock, api: docker.APIClient
                                                 ) -> None:
    name = f"idle-{time.time_ns()}"
    cli(target, "create", "--name", name, "busybox:1.36", "true")
    try:
        document = api.stats(name, stream=False)
        assert (document["read"], document["memory_stats"]) == (ZERO_TIME, {})
        assert document["cpu_stats"]["cpu_usage"]["total_usage"] == 0
        refused = api.get(api._url("/containers/{0}/stats", name), params={"one-shot": "1"})
        assert (refused.status_code, refused.json()) == (
            400, {"message": "cannot have stream=true and one-shot=true"})
    finally:
        docker_cli(target, "rm", "-f", name)


def test_docker_update_restart_policy_and_memory(target: Kubedock, busy: str) -> None:
    cli(target, "update", "--restart", "on-failure:3", busy)
    cli(target, "update", "--memory", "300m", busy)
    host_config: dict[str, Any] = json.loads(cli(target, "inspect", busy))[0]["HostConfig"]
    assert host_config["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host_config["Memory"] == 300 * 2**20
    row = json.loads(cli(target, "stats", "--no-stream", "--format", "{{json .}}", busy))
    assert row["MemUsage"].endswith(" / 300MiB"), row
    # Docker's checks, with Docker's texts.
    too_little = docker_cli(target, "update", "--memory", "1k", busy)
    assert too_little.returncode != 0
    assert b"Minimum memory limit allowed is 6MB" in too_little.stderr
    missing = docker_cli(target, "update", "--restart", "always", "no-such-container")
    assert b"No such container: no-such-container" in missing.stderr


def test_update_of_what_kubedock_cannot_change_names_it(kubedock: Kubedock) -> None:
    name = f"blkio-{time.time_ns()}"
    cli(kubedock, "run", "-d", "--name", name, "busybox:1.36", "sleep", "300")
    try:
        refused = docker_cli(kubedock, "update", "--blkio-weight", "300", name)
        assert refused.returncode != 0
        assert b"BlkioWeight is not supported by kubedock" in refused.stderr
        # A pod without resources cannot gain a limit: its QoS class would change.
        refused = docker_cli(kubedock, "update", "--memory", "300m", name)
        assert refused.returncode != 0
        assert b"Memory: the pod cannot be resized so" in refused.stderr
    finally:
        docker_cli(kubedock, "rm", "-f", name)


def test_system_df(target: Kubedock, api: docker.APIClient, busy: str) -> None:
    document = api.df()
    for key in ("LayersSize", "Images", "Containers", "Volumes", "BuildCache"):
        assert key in document, key
    (row,) = [c for c in document["Containers"] if c["Names"] == [f"/{busy}"]]
    assert row["State"] == "running"
    assert cli(target, "system", "df").startswith("TYPE")
