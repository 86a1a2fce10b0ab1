"""Usage samples and updates against a scripted cluster: one summary per node and second for
every container on it, a stream that ends with its container, and updates that resize a
running pod in place or are refused by name."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing
from engine_fake import FakeCluster, exited
from test_engine_jobs import actions, new_engine

from kubedock import kube
from kubedock.engine import (
    Container,
    ContainerConfig,
    Engine,
    InvalidParameter,
    RestartPolicy,
    Unsupported,
    follow_usage,
)


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
async def engine(nursery: trio.Nursery, cluster: FakeCluster) -> Engine:
    return await new_engine(nursery, cluster)


async def running(engine: Engine, cluster: FakeCluster, name: str, **config: Any
                  ) -> Container:
    container = engine.create(name, ContainerConfig(image="busybox", **config))
    await engine.start(container)
    assert container.pod_name is not None
    cluster.sample_usage(container.pod_name, cpu_nanoseconds=10**9, nano_cores=5 * 10**8,
                         memory=2**20, working_set=2**19)
    return container


def calls(cluster: FakeCluster, method: str) -> int:
    return sum(1 for called, _ in cluster.calls if called == method)


async def test_containers_on_a_node_share_its_summary(
        autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster) -> None:
    web = await running(engine, cluster, "web", memory=64 * 2**20)
    db = await running(engine, cluster, "db")
    web_sample, db_sample = await engine.usage.sample(web), await engine.usage.sample(db)
    assert web_sample is not None and db_sample is not None
    assert web_sample.usage.cpu_nanoseconds == 10**9
    # The pod's limit, else the node's memory; the node's CPUs.
    assert (web_sample.memory_limit, db_sample.memory_limit) == (64 * 2**20, 8 * 2**30)
    assert web_sample.cpus == 4
    assert (calls(cluster, "node_summary"), calls(cluster, "get_node")) == (1, 1)
    await trio.sleep(1)
    assert await engine.usage.sample(web) is not None
    assert (calls(cluster, "node_summary"), calls(cluster, "get_node")) == (2, 1)


async def test_a_container_the_kubelet_has_not_sampled_yet_waits_for_its_first_sample(
        autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster) -> None:
    cluster.samples_new_pods = False
    container = engine.create("new", ContainerConfig(image="busybox"))
    await engine.start(container)
    assert await engine.usage.sample(container) is None

    async def sampled_later() -> None:
        await trio.sleep(3)
        assert container.pod_name is not None
        cluster.sample_usage(container.pod_name, cpu_nanoseconds=1, nano_cores=0, memory=1,
                             working_set=1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sampled_later)
        began = trio.current_time()
        sample = await engine.usage.first_sample(container)
    assert sample is not None and 3 <= trio.current_time() - began < 5


async def test_a_stream_samples_each_second_shows_an_exit_and_ends_at_removal(
        autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster) -> None:
    container = await running(engine, cluster, "web")
    seen: list[tuple[float, bool]] = []
    began = trio.current_time()

    async def follow() -> None:
        async for sample in follow_usage(engine.usage, container):
            seen.append((round(trio.current_time() - began), sample is not None))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        await trio.sleep(2.5)
        assert container.pod_name is not None
        cluster.set_main(container.pod_name, exited(0), phase="Succeeded")
        await trio.sleep(2)
        await engine.remove(container, force=False)
    assert seen[:3] == [(0, True), (1, True), (2, True)]
    assert seen[-1][1] is False  # exited: Docker's zeros
    assert trio.current_time() - began < 6  # the stream ended with the container


async def test_update_resizes_a_running_pod_and_changes_its_restart_policy(
        autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster) -> None:
    container = await running(engine, cluster, "web", memory=400 * 2**20, cpu_shares=2)
    assert container.pod_name is not None
    config = attrs.evolve(container.config, memory=300 * 2**20, cpu_shares=3,
                          restart_policy=RestartPolicy("always"))
    await engine.update(container, config, ("Memory", "CpuShares"))
    (main,) = cluster.pods[container.pod_name]["spec"]["containers"]
    assert main["resources"] == {"requests": {"cpu": "3m", "memory": str(300 * 2**20)},
                                 "limits": {"memory": str(300 * 2**20)}}
    assert container.config.restart_policy == RestartPolicy("always")
    assert actions(engine)[-1] == "update"
    # The stream reads the new limit.
    sample = await engine.usage.sample(container)
    assert sample is not None and sample.memory_limit == 300 * 2**20


async def test_update_of_a_container_that_does_not_run_changes_its_next_pod_only(
        autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster) -> None:
    container = engine.create("web", ContainerConfig(image="busybox", memory=400 * 2**20))
    await engine.update(container, attrs.evolve(container.config, memory=300 * 2**20),
                        ("Memory",))
    assert calls(cluster, "resize_pod") == 0
    await engine.start(container)
    assert container.pod_name is not None
    (main,) = cluster.pods[container.pod_name]["spec"]["containers"]
    assert main["resources"]["limits"] == {"memory": str(300 * 2**20)}


@pytest.mark.parametrize(("refusal", "kind", "text"), [
    (kube.KubeError("Pod QOS Class may not change as a result of resizing", status=422,
                    reason="Invalid"), InvalidParameter, "Pod QOS Class may not change"),
    (kube.Unsupported("this cluster cannot resize pods in place", status=404), Unsupported,
     "cannot resize pods in place"),
])
async def test_a_resize_the_cluster_refuses_names_the_fields_and_changes_nothing(
        autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
        refusal: kube.KubeError, kind: type[Exception], text: str) -> None:
    container = await running(engine, cluster, "web")
    before = container.config
    cluster.fail("resize_pod", refusal)
    with pytest.raises(kind) as refused:
        await engine.update(container, attrs.evolve(before, memory=300 * 2**20), ("Memory",))
    assert f"Cannot update container {container.id}: Memory: " in str(refused.value)
    assert text in str(refused.value)
    assert container.config is before


async def test_a_resize_the_node_cannot_fit_is_undone_and_refused(
        autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster) -> None:
    container = await running(engine, cluster, "web", cpu_shares=2)
    assert container.pod_name is not None
    before = container.config
    cluster.resize_refusal = {"type": "PodResizePending", "reason": "Infeasible",
                              "message": "Node didn't have enough capacity: cpu"}
    with pytest.raises(InvalidParameter) as refused:
        await engine.update(container, attrs.evolve(before, cpu_shares=10**6), ("CpuShares",))
    assert str(refused.value) == (
        f"Cannot update container {container.id}: CpuShares: the node cannot resize the pod "
        "so: Node didn't have enough capacity: cpu")
    (main,) = cluster.pods[container.pod_name]["spec"]["containers"]
    assert main["resources"] == {"requests": {"cpu": "2m"}}
    assert container.config is before


async def test_a_restart_policy_set_by_update_takes_the_next_exit(
        autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster) -> None:
    container = await running(engine, cluster, "web")
    assert container.pod_name is not None
    await engine.update(container, attrs.evolve(container.config,
                                                restart_policy=RestartPolicy("on-failure", 1)))
    assert calls(cluster, "resize_pod") == 0
    cluster.set_main(container.pod_name, exited(3), phase="Failed")
    while container.restart_count == 0:
        await container.changed.wait()
    while container.status != "running":
        await container.changed.wait()
    assert container.restart_count == 1
