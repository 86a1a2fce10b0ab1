"""An update body checked as Docker checks it, and the pod resize it makes."""

from __future__ import annotations

from typing import Any

import pytest

from kubedock import kube
from kubedock.api._create_body import parse_create
from kubedock.api._errors import DockerError
from kubedock.api._update import updated_config
from kubedock.engine import ContainerConfig, RestartPolicy

# What `docker update --memory 300m --cpus 0.5` sends (docker CLI 28): every field, zero
# meaning "leave it".
CLI_BODY: dict[str, Any] = {
    "CpuShares": 0, "Memory": 314572800, "NanoCpus": 500000000, "CgroupParent": "",
    "BlkioWeight": 0, "BlkioWeightDevice": None, "BlkioDeviceReadBps": None,
    "BlkioDeviceWriteBps": None, "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None,
    "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
    "CpusetCpus": "", "CpusetMems": "", "Devices": None, "DeviceCgroupRules": None,
    "DeviceRequests": None, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None,
    "OomKillDisable": None, "PidsLimit": None, "Ulimits": None, "CpuCount": 0, "CpuPercent": 0,
    "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
    "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
}


def created(host_config: dict[str, Any] | None = None) -> ContainerConfig:
    return parse_create({"Image": "busybox", "HostConfig": host_config or {}})


def test_the_clis_body_changes_what_it_sets_and_keeps_the_rest() -> None:
    before = created({"CpuShares": 512, "RestartPolicy": {"Name": "always"}})
    after, fields = updated_config(before, CLI_BODY, "id")
    assert (after.memory, after.nano_cpus, after.cpu_shares) == (314572800, 500_000_000, 512)
    assert after.restart_policy == RestartPolicy("always")
    assert fields == ("Memory", "NanoCpus")
    # Inspect reads the request's own HostConfig: it shows the new values.
    assert after.raw_host_config["Memory"] == 314572800
    assert after.raw_host_config["CpuShares"] == 512


def test_restart_policy() -> None:
    after, fields = updated_config(created(), {"RestartPolicy": {
        "Name": "on-failure", "MaximumRetryCount": 42}}, "id")
    assert after.restart_policy == RestartPolicy("on-failure", 42)
    assert after.raw_host_config["RestartPolicy"] == {"Name": "on-failure",
                                                      "MaximumRetryCount": 42}
    assert fields == ()


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"RestartPolicy": {"Name": "bogus"}}, 400, "invalid restart policy 'bogus'"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}}, 400,
     "maximum retry count cannot be used with restart policy 'always'"),
    ({"Memory": 1000}, 400, "Minimum memory limit allowed is 6MB"),
    ({"CpuQuota": 50000, "NanoCpus": 10**9}, 400,
     "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    ({"BlkioWeight": 300}, 501, "BlkioWeight is not supported by kubedock"),
    ({"PidsLimit": 100}, 501, "PidsLimit is not supported by kubedock"),
    ({"CpusetCpus": "0"}, 501, "CpusetCpus is not supported by kubedock"),
    ({"Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}]}, 501,
     "Ulimits is not supported by kubedock"),
    ({"Memory": "1g"}, 400, "json: cannot unmarshal str into field Memory"),
])
def test_refusals_name_the_field(body: dict[str, Any], status: int, message: str) -> None:
    with pytest.raises(DockerError) as refused:
        updated_config(created(), body, "id")
    assert refused.value.status == status
    assert refused.value.message.startswith(message)


def test_a_memory_limit_under_the_reservation_is_refused_as_docker_refuses_it() -> None:
    with pytest.raises(DockerError, match="can not be less than memory reservation"):
        updated_config(created({"MemoryReservation": 512 * 2**20}), {"Memory": 64 * 2**20}, "id")


def test_an_auto_removed_container_keeps_no_restart_policy() -> None:
    with pytest.raises(DockerError) as refused:
        updated_config(created({"AutoRemove": True}), {"RestartPolicy": {"Name": "always"}},
                       "abc")
    assert refused.value.status == 409
    assert refused.value.message == ("Cannot update container abc: Restart policy cannot be "
                                     "updated because AutoRemove is enabled for the container")
    # "no" is no change for it.
    updated_config(created({"AutoRemove": True}), {"RestartPolicy": {"Name": "no"}}, "abc")


def test_the_resize_restates_requests_the_api_server_defaulted_from_limits() -> None:
    manifest = {"spec": {"containers": [
        {"name": "sidecar", "resources": {"limits": {"cpu": "9"}}},
        {"name": kube.MAIN, "resources": {"limits": {"memory": "314572800",
                                                     "ephemeral-storage": "1Gi"},
                                          "requests": {"cpu": "3m"}}},
    ]}}
    resources = kube.main_resources(manifest)
    assert resources == {
        "requests": {"memory": "314572800", "ephemeral-storage": "1Gi", "cpu": "3m"},
        "limits": {"memory": "314572800", "ephemeral-storage": "1Gi"},
    }
    # Only CPU and memory can be resized.
    assert kube.resize_patch(resources) == {"spec": {"containers": [{
        "name": kube.MAIN, "resources": {"requests": {"memory": "314572800", "cpu": "3m"},
                                         "limits": {"memory": "314572800"}}}]}}
    assert kube.main_resources({"spec": {"containers": [{"name": kube.MAIN}]}}) == {}


def test_the_kubelets_decision_on_a_resize() -> None:
    infeasible = {"type": "PodResizePending", "reason": "Infeasible", "status": "True",
                  "observedGeneration": 5,
                  "message": "Node didn't have enough capacity: cpu, requested: 64000, "
                             "capacity: 2000"}
    deferred = {"type": "PodResizePending", "reason": "Deferred", "status": "True"}
    pending = {"metadata": {"generation": 5}, "status": {"observedGeneration": 4}}
    assert not kube.resize_seen(pending)
    assert kube.resize_refusal(pending) is None
    seen = {"metadata": {"generation": 5}, "status": {"observedGeneration": 5}}
    assert kube.resize_seen(seen)
    assert kube.resize_refusal({**seen, "status": {"conditions": [deferred]}}) is None
    assert kube.resize_refusal({**seen, "status": {"conditions": [infeasible]}}) == (
        "Node didn't have enough capacity: cpu, requested: 64000, capacity: 2000")
    assert kube.resize_refusal({"status": {"conditions": [
        {"type": "PodResizeInProgress", "reason": "Error", "message": "runtime failed"}]}}) == (
        "runtime failed")
    # What the kubelet said of an earlier resize (one undone since) is not about this one.
    assert kube.resize_refusal({"metadata": {"generation": 7},
                                "status": {"conditions": [infeasible]}}) is None
    # A kubelet that does not report what it has seen (observedGeneration) never says so.
    assert not kube.resize_seen({"metadata": {"generation": 5}, "status": {}})
