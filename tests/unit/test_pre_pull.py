"""--pre-pull: the pod that makes the node pull an image, and the pulls that use it."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from engine_fake import PENDING, PULL_FAILS, RUNNING, FakeCluster, exited

from kubedock import kube
from kubedock.engine import PrePuller

SETTINGS = kube.PodSettings(namespace="n", instance_id="abc", node_selector={"disk": "ssd"},
                            image_pull_secrets=("flagged",), service_account="runner")


def test_the_pod_never_runs_image_code_and_goes_where_the_pods_go() -> None:
    pod = kube.pre_pull_manifest("docker.io/library/redis:7", SETTINGS, ("own",))
    assert pod["metadata"]["labels"] == {"kubedock": "true", "kubedock.id": "abc",
                                         "kubedock.prepull": "true"}
    spec = pod["spec"]
    [container] = spec["containers"]
    assert (container["image"], container["imagePullPolicy"], container["command"]) == (
        "docker.io/library/redis:7", "Always", ["/.kubedock-pre-pull"])
    assert (spec["nodeSelector"], spec["serviceAccountName"], spec["restartPolicy"]) == (
        {"disk": "ssd"}, "runner", "Never")
    assert spec["imagePullSecrets"] == [{"name": "flagged"}, {"name": "own"}]
    assert pod["metadata"]["name"] != kube.pre_pull_manifest(
        "docker.io/library/redis:7", SETTINGS)["metadata"]["name"]


def _status(**container: Any) -> dict[str, Any]:
    return {"containerStatuses": [{"name": "pull", **container}]}


@pytest.mark.parametrize(("status", "phase"), [
    ({}, "pulling"),
    (_status(state={"waiting": {"reason": "ContainerCreating"}}), "pulling"),
    (_status(state={"waiting": {"reason": "ContainerCreating"}}, imageID="sha256:1"), "pulled"),
    (_status(state={"terminated": {"reason": "StartError", "exitCode": 128}}), "pulled"),
    (_status(state={"waiting": {"reason": "ErrImagePull", "message": "401"}}), "failed"),
    (_status(state={"waiting": {"reason": "InvalidImageName"}}), "failed"),
    ({"conditions": [{"type": "PodScheduled", "reason": "Unschedulable", "message": "none"}]},
     "failed"),
])
def test_the_pull_is_read_from_the_pod(status: dict[str, Any], phase: str) -> None:
    assert kube.pre_pull_state({"status": status}).phase == phase


async def _pulled(cluster: FakeCluster, puller: PrePuller, digest: str | None = "sha256:d"
                  ) -> str | None:
    pull = puller.start("r.test/a:1", digest, ())
    with trio.fail_after(10):
        await pull.done.wait()
    return pull.failure


async def test_a_pull_waits_for_the_node_then_deletes_its_pod(nursery: trio.Nursery) -> None:
    cluster = FakeCluster()
    cluster.main_on_create = PENDING
    puller = PrePuller(cluster, SETTINGS, nursery=nursery, timeout=5, fail_fast_after=0)
    first = puller.start("r.test/a:1", "sha256:d", ())
    assert puller.start("r.test/a:1", "sha256:d", ()) is first  # one pod for both
    await trio.sleep(1)
    [name] = cluster.pods
    assert not first.done.is_set()
    cluster.set_main(name, exited(128, "StartError"))
    with trio.fail_after(5):
        await first.done.wait()
    assert first.failure is None
    await trio.sleep(0.1)
    assert cluster.called("delete_pod") == [name]
    # The node has this digest: a pull of it again makes no pod.
    assert await _pulled(cluster, puller) is None
    assert len(cluster.called("create_pod")) == 1
    cluster.main_on_create = RUNNING
    assert await _pulled(cluster, puller, "sha256:new") is None
    assert len(cluster.called("create_pod")) == 2


@pytest.mark.parametrize(("on_create", "failure"), [
    (PULL_FAILS, "the node cannot pull r.test/a:1: ErrImagePull: pull access denied"),
    (PENDING, "the node did not pull r.test/a:1 within 1s")])
async def test_a_failed_pull_says_why(nursery: trio.Nursery, on_create: Any, failure: str
                                      ) -> None:
    cluster = FakeCluster()
    cluster.main_on_create = on_create
    puller = PrePuller(cluster, SETTINGS, nursery=nursery, timeout=1, fail_fast_after=0.3)
    got = await _pulled(cluster, puller)
    assert got is not None and got.startswith(failure)
    await trio.sleep(0.1)
    assert len(cluster.called("delete_pod")) == 1
    cluster.main_on_create = RUNNING
    assert await _pulled(cluster, puller) is None  # a failure is not remembered


async def test_a_pull_failure_that_clears_within_fail_fast_after_is_no_failure(
        nursery: trio.Nursery) -> None:
    cluster = FakeCluster()
    cluster.main_on_create = PULL_FAILS
    puller = PrePuller(cluster, SETTINGS, nursery=nursery, timeout=5, fail_fast_after=2)
    pull = puller.start("r.test/a:1", "sha256:d", ())
    await trio.sleep(1)
    [name] = cluster.pods
    assert not pull.done.is_set()
    cluster.set_main(name, RUNNING)
    with trio.fail_after(2):
        await pull.done.wait()
    assert pull.failure is None


def test_only_some_pull_failures_stand() -> None:
    assert kube.pre_pull_state({"status": _status(state={"waiting": {
        "reason": "InvalidImageName"}})}).permanent
    assert not kube.pre_pull_state({"status": _status(state={"waiting": {
        "reason": "ErrImagePull"}})}).permanent
