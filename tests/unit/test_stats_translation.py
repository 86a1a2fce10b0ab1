"""The kubelet's Summary API read as a container's usage, and that usage in Docker's stats shape:
the numbers Docker's clients compute from it (CPU %, memory use) come out as the kubelet
measured them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from kubedock import kube
from kubedock.api._stats import stats_document
from kubedock.engine import Container, ContainerConfig, Sample

# Trimmed from a real answer of /api/v1/nodes/node0/proxy/stats/summary (Kubernetes 1.34).
SUMMARY: dict[str, Any] = {
    "node": {"nodeName": "node0", "startTime": "2026-11-30T00:31:20Z",
             "cpu": {"time": "2026-11-30T03:40:41Z", "usageCoreNanoSeconds": 14424531690714}},
    "pods": [
        {"podRef": {"name": "other", "namespace": "elsewhere", "uid": "u0"}, "containers": []},
        {
            "podRef": {"name": "kubedock-web-1", "namespace": "ns", "uid": "u1"},
            "containers": [
                {"name": "setup", "cpu": {"time": "2026-11-30T03:40:40Z",
                                          "usageCoreNanoSeconds": 5}},
                {
                    "name": "main",
                    "cpu": {"time": "2026-11-30T03:40:42Z", "usageNanoCores": 250_000_000,
                            "usageCoreNanoSeconds": 1228291546},
                    "memory": {"time": "2026-11-30T03:40:42Z", "usageBytes": 17596416,
                               "workingSetBytes": 15360000, "rssBytes": 7802880,
                               "pageFaults": 3566, "majorPageFaults": 15},
                    "rootfs": {"time": "2026-11-30T03:40:48Z", "usedBytes": 45056},
                },
            ],
            "network": {"time": "2026-11-30T03:40:43Z", "name": "eth0", "rxBytes": 69124,
                        "rxErrors": 0, "txBytes": 57994, "txErrors": 1, "interfaces": [
                            {"name": "eth0", "rxBytes": 69124, "rxErrors": 0,
                             "txBytes": 57994, "txErrors": 1}]},
            "process_stats": {"process_count": 3},
        },
    ],
}


def usage() -> kube.ContainerUsage:
    result = kube.container_usage(SUMMARY, "ns", "kubedock-web-1")
    assert result is not None
    return result


def container() -> Container:
    return Container(id="c" * 64, name="web", created=datetime.now(UTC),
                     config=ContainerConfig(image="busybox"))


def test_a_container_is_read_from_its_pod_in_its_namespace() -> None:
    read = usage()
    assert read.sampled == datetime(2026, 11, 30, 3, 40, 42, tzinfo=UTC)
    assert (read.cpu_nanoseconds, read.cpu_nano_cores) == (1228291546, 250_000_000)
    assert (read.memory_usage, read.memory_working_set, read.memory_rss) == (
        17596416, 15360000, 7802880)
    assert (read.processes, read.writable_layer_bytes) == (3, 45056)
    assert read.networks == (kube.InterfaceUsage("eth0", 69124, 0, 57994, 1),)
    # Not sampled yet: no pod, or a pod without `main`.
    assert kube.container_usage(SUMMARY, "other-namespace", "kubedock-web-1") is None
    assert kube.container_usage(SUMMARY, "elsewhere", "other") is None
    assert kube.container_usage({}, "ns", "kubedock-web-1") is None


@pytest.mark.parametrize(("text", "value"), [
    ("2", 2), ("250m", Decimal("0.25")), ("64Mi", 64 * 2**20), ("1G", 10**9), ("1e3", 1000),
    ("24682776Ki", 24682776 * 1024),
])
def test_quantities(text: str, value: Decimal) -> None:
    assert kube.parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "1Qi", "ten", "1.5.2"])
def test_what_is_no_quantity(text: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        kube.parse_quantity(text)


def test_node_capacity() -> None:
    node = {"status": {"capacity": {"cpu": "2", "memory": "24682776Ki", "pods": "110"}}}
    assert kube.node_capacity(node) == kube.NodeCapacity(cpus=2, memory_bytes=25275162624)


def cpu_percent(document: dict[str, Any]) -> float:
    """What the docker CLI shows (its calculateCPUPercentUnix)."""
    cpu, previous = document["cpu_stats"], document["precpu_stats"]
    cpu_delta = cpu["cpu_usage"]["total_usage"] - previous["cpu_usage"]["total_usage"]
    system_delta = cpu["system_cpu_usage"] - previous["system_cpu_usage"]
    return cpu_delta / system_delta * cpu["online_cpus"] * 100.0


def test_docker_clients_compute_the_kubelets_cpu_rate_and_working_set() -> None:
    document = stats_document(container(), Sample(usage(), cpus=2, memory_limit=2**30))
    # A quarter of a CPU is 25 %, as Docker counts (100 % per CPU).
    assert cpu_percent(document) == pytest.approx(25.0)
    assert document["cpu_stats"]["cpu_usage"]["total_usage"] == 1228291546
    assert document["cpu_stats"]["online_cpus"] == 2
    # The node's CPU time since it started, at the sample: elapsed time times CPUs.
    elapsed = (datetime(2026, 11, 30, 3, 40, 42) - datetime(2026, 11, 30, 0, 31, 20))
    assert document["cpu_stats"]["system_cpu_usage"] == int(elapsed.total_seconds()) * 2 * 10**9
    assert (document["read"], document["preread"]) == ("2026-11-30T03:40:42.000000Z",
                                                       "2026-11-30T03:40:41.000000Z")
    memory = document["memory_stats"]
    # The CLI shows usage less inactive_file.
    assert memory["usage"] - memory["stats"]["inactive_file"] == 15360000
    assert memory["limit"] == 2**30
    assert document["pids_stats"] == {"current": 3}
    assert document["networks"]["eth0"]["rx_bytes"] == 69124
    assert document["networks"]["eth0"]["tx_errors"] == 1
    assert (document["name"], document["id"]) == ("/web", "c" * 64)


def test_one_shot_has_no_precpu_stats() -> None:
    document = stats_document(container(), Sample(usage(), cpus=2, memory_limit=1),
                              one_shot=True)
    assert document["preread"] == "0001-01-01T00:00:00Z"
    assert document["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert "system_cpu_usage" not in document["precpu_stats"]


def test_an_idle_container_uses_no_cpu_and_a_first_sample_has_no_rate() -> None:
    idle = kube.container_usage({**SUMMARY, "pods": [{
        **SUMMARY["pods"][1], "containers": [{"name": "main", "cpu": {
            "time": "2026-11-30T03:40:42Z", "usageCoreNanoSeconds": 10}}]}]},
        "ns", "kubedock-web-1")
    assert idle is not None
    document = stats_document(container(), Sample(idle, cpus=4, memory_limit=1))
    assert cpu_percent(document) == 0.0
    assert document["memory_stats"]["usage"] == 0


def test_a_container_that_does_not_run_has_dockers_zeros() -> None:
    document = stats_document(container(), None)
    # As the reference engine answers for a stopped container.
    assert document == {
        "read": "0001-01-01T00:00:00Z", "preread": "0001-01-01T00:00:00Z", "pids_stats": {},
        "blkio_stats": {key: None for key in (
            "io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
            "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
            "io_time_recursive", "sectors_recursive")},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                    "usage_in_usermode": 0},
                      "throttling_data": {"periods": 0, "throttled_periods": 0,
                                          "throttled_time": 0}},
        "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                       "usage_in_usermode": 0},
                         "throttling_data": {"periods": 0, "throttled_periods": 0,
                                             "throttled_time": 0}},
        "memory_stats": {}, "name": "/web", "id": "c" * 64,
    }
