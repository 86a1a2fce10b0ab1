"""Restart policies against a scripted cluster: kubedock starts an ended container again in a
new pod, as Docker's restart manager would, and a client's stop, kill or removal ends it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any, cast

import pytest
import trio
import trio.testing
from engine_fake import RUNNING, FakeCluster, exited
from test_engine_jobs import actions, new_engine, settle
from test_logs import ScriptedLogs, stamp

from kubedock import kube
from kubedock.engine import (
    STDERR,
    STDOUT,
    Container,
    ContainerConfig,
    Engine,
    LogRequest,
    RestartPolicy,
    RestartPolicyName,
)
from kubedock.engine._logs import send_logs
from kubedock.engine._restarts import next_restart_delay

LAG = 0.5  # the fake's watch delay


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster(lag=LAG)


@pytest.fixture
async def engine(nursery: trio.Nursery, cluster: FakeCluster) -> Engine:
    return await new_engine(nursery, cluster)


def create(engine: Engine, policy: RestartPolicyName, retries: int = 0) -> Container:
    return engine.create("job", ContainerConfig(
        image="busybox", restart_policy=RestartPolicy(policy, retries)))


def pods_created(cluster: FakeCluster) -> int:
    return sum(1 for method, _ in cluster.calls if method == "create_pod")


async def until_restarting(container: Container) -> None:
    while not container.restarting:
        await container.changed.wait()


def test_backoff_doubles_from_100_ms_to_a_minute_and_resets_after_a_10_s_run() -> None:
    delays = [0.0]
    for _ in range(12):
        delays.append(next_restart_delay(delays[-1], ran_seconds=1))
    assert delays[1:6] == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert delays[-1] == 60
    assert next_restart_delay(60, ran_seconds=10) == 0.1


async def test_on_failure_gives_up_after_its_retries(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    cluster.main_on_create = exited(3)
    container = create(engine, "on-failure", 2)
    await engine.start(container)
    await settle()
    assert pods_created(cluster) == 3
    assert (container.status, container.exit_code, container.restart_count) == ("exited", 3, 2)
    assert not container.restarting
    # As Docker reports an automatic restart: a die and a start (no restart event). The pod
    # watch may report a short run's end before its start has returned.
    assert sorted(actions(engine)) == ["create", *["die"] * 3, *["start"] * 3]
    # Each run is a pod of its own; the last one stays, with its exit code and logs.
    assert list(cluster.pods) == [container.pod_name]


async def test_on_failure_leaves_a_success_alone(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    cluster.main_on_create = exited(0)
    container = create(engine, "on-failure")
    await engine.start(container)
    await settle()
    assert pods_created(cluster) == 1
    assert (container.status, container.restart_count) == ("exited", 0)


async def test_wait_on_a_restarting_container_ends_at_its_next_exit(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    cluster.main_on_create = exited(3)
    container = create(engine, "on-failure", 3)
    await engine.start(container)
    await until_restarting(container)
    count = container.restart_count
    # As Docker's: a container waiting for its restart counts as running.
    await engine.wait(container, "not-running")
    assert container.restart_count == count + 1 and container.exit_code == 3
    await settle()
    await engine.wait(container, "not-running")
    assert (container.restart_count, container.status) == (3, "exited")


@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
async def test_always_restarts_with_backoff_until_stopped(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
    policy: RestartPolicyName,
) -> None:
    cluster.main_on_create = exited(0)
    created_at: list[float] = []
    create_pod = cluster.create_pod

    async def timed_create_pod(manifest: Any) -> dict[str, Any]:
        created_at.append(trio.current_time())
        return await create_pod(manifest)

    cluster.create_pod = timed_create_pod  # type: ignore[method-assign]
    container = create(engine, policy)
    await engine.start(container)
    while container.restart_count < 5:
        await container.changed.wait()
    # Between two pods: the exit reaches kubedock (the watch's lag), the backoff, and the old
    # pod's deletion (the watch's lag again).
    gaps = [later - earlier for earlier, later in itertools.pairwise(created_at)]
    assert gaps == pytest.approx([2 * LAG + delay for delay in (0.1, 0.2, 0.4, 0.8)])
    await until_restarting(container)
    assert container.status == "exited"
    await engine.stop(container, None)
    assert not container.restarting and container.status == "exited"
    count, pods = container.restart_count, pods_created(cluster)
    await settle()
    assert (container.restart_count, pods_created(cluster)) == (count, pods)
    assert actions(engine)[-1] == "stop"
    assert actions(engine).count("die") == actions(engine).count("start") == count
    # A client's start begins afresh.
    await engine.start(container)
    assert container.restart_count <= 1


async def test_stopping_a_running_container_ends_its_policy(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = create(engine, "always")
    await engine.start(container)
    await engine.stop(container, None)
    await settle()
    assert (container.status, container.restart_count, pods_created(cluster)) == ("exited", 0, 1)


async def test_kill_during_the_backoff_ends_it(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = create(engine, "always")
    await engine.start(container)
    assert container.pod_name is not None
    cluster.set_main(container.pod_name, exited(1), phase="Failed")
    await until_restarting(container)
    await engine.kill(container, "KILL")
    await settle()
    assert (container.status, container.restart_count, pods_created(cluster)) == ("exited", 1, 1)
    assert actions(engine)[-2:] == ["die", "kill"]


async def test_forced_removal_during_the_backoff(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    cluster.main_on_create = exited(1)
    container = create(engine, "always")
    await engine.start(container)
    await until_restarting(container)
    with pytest.raises(Exception, match="cannot remove a restarting container"):
        await engine.remove(container, force=False)
    await engine.remove(container, force=True)
    pods = pods_created(cluster)
    await settle()
    assert container.removed and cluster.pods == {}
    assert pods_created(cluster) == pods


async def test_a_restarted_container_runs_again(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = create(engine, "on-failure")
    await engine.start(container)
    assert container.pod_name is not None
    first_pod = cluster.pods[container.pod_name]["metadata"]["uid"]
    cluster.set_main(container.pod_name, exited(2), phase="Failed")
    await settle()
    assert container.status == "running" and container.restart_count == 1
    [pod] = cluster.pods.values()
    assert pod["metadata"]["uid"] != first_pod
    assert pod["status"]["containerStatuses"][0]["state"] == RUNNING


@pytest.mark.parametrize("split", [True, False], ids=["split-streams", "one-stream"])
async def test_logs_span_the_runs(split: bool) -> None:
    """Each run is a pod of its own; Docker's log of the container has every run's lines."""
    current = [(stamp(5, 0), b"third\n")]
    source = ScriptedLogs({"Stdout": current, "Stderr": []} if split else {None: current})
    record = Container(id="c" * 64, name="c", created=datetime.now(UTC),
                       config=ContainerConfig(image="busybox"), pod_name="pod")
    record.earlier_logs = ((STDOUT, stamp(1, 0) + b" first\n"),
                           (STDERR, stamp(3, 0) + b" second\n"))

    async def logs(request: LogRequest) -> list[tuple[int, bytes]]:
        send, receive = trio.open_memory_channel[tuple[int, bytes]](100)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_logs, cast(kube.Cluster, source), record, request, send)
            return [item async for item in receive]

    assert await logs(LogRequest()) == [(STDOUT, b"first\n"), (STDERR, b"second\n"),
                                        (STDOUT, b"third\n")]
    assert await logs(LogRequest(tail=2, stdout=True, stderr=False)) == [
        (STDOUT, b"first\n"), (STDOUT, b"third\n")]
    since = datetime(2026, 11, 30, 0, 49, 2, tzinfo=UTC).timestamp()
    assert (await logs(LogRequest(since=since, timestamps=True)))[0] == (
        STDERR, stamp(3, 0) + b" second\n")
    # The pod of the last run is gone too (a kill deleted it): its saved lines follow.
    record.saved_logs = ((STDOUT, stamp(5, 0) + b" third\n"),)
    assert await logs(LogRequest(tail=2)) == [(STDERR, b"second\n"), (STDOUT, b"third\n")]
