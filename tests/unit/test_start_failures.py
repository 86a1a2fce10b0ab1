"""When and why a start fails: the engine's start against a scripted cluster, on a mock clock.

Each test scripts what the pod does, at chosen times; the watch reports it at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
from engine_fake import PENDING, FakeCluster

from kubedock import kube
from kubedock.engine import ContainerConfig, Engine, StartFailed


@pytest.fixture
def cluster() -> FakeCluster:
    cluster = FakeCluster(lag=0)
    cluster.main_on_create = PENDING  # what becomes of the pod is up to each test
    return cluster


@pytest.fixture
def patience() -> float:
    return 30


@pytest.fixture
async def engine(cluster: FakeCluster, patience: float) -> AsyncIterator[Engine]:
    async with trio.open_nursery() as nursery:
        engine = Engine(cluster, kube.PodSettings(namespace="ns", instance_id="i"),
                        nursery=nursery, start_timeout=60, fail_fast_after=patience,
                        expose="pod-ip", expose_host="127.0.0.1")
        await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
        yield engine
        nursery.cancel_scope.cancel()


def main_waiting(reason: str, message: str) -> dict[str, Any]:
    return {"phase": "Pending", "containerStatuses": [
        {"name": "main", "state": {"waiting": {"reason": reason, "message": message}}}]}


def unschedulable(message: str = "0/1 nodes are available: 1 Insufficient memory."
                  ) -> dict[str, Any]:
    return {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": message}]}


CLAIMS_UNBOUND = ("0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. "
                  "preemption: 0/1 nodes are available: 1 Preemption is not helpful.")


def running() -> dict[str, Any]:
    return {"phase": "Running", "podIP": "10.0.0.9",
            "containerStatuses": [{"name": "main", "state": {"running": {}}}]}


PULL_FAILED = 'failed to pull image "busybox": 429 Too Many Requests'
BACK_OFF = 'Back-off pulling image "busybox"'


async def start_while(engine: Engine, cluster: FakeCluster,
                      script: list[tuple[float, Callable[[], dict[str, Any]]]]
                      ) -> tuple[float, StartFailed | None]:
    """Start a container while its pod goes through `script` (seconds after the start, pod
    status); how long the start took, and how it failed."""
    container = engine.create(None, ContainerConfig(image="busybox"))
    started = trio.current_time()
    failure: StartFailed | None = None

    async def start() -> None:
        nonlocal failure
        try:
            await engine.start(container)
        except StartFailed as error:
            failure = error
        finally:
            nursery.cancel_scope.cancel()

    async def play() -> None:
        for at, status in script:  # at >= 1: the pod is created by then
            await trio.sleep_until(started + at)
            cluster.set_status(cluster.called("create_pod")[-1], status())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(start)
        nursery.start_soon(play)
    return trio.current_time() - started, failure


async def test_a_start_that_times_out_while_the_watch_fails_says_why(
    engine: Engine, cluster: FakeCluster, autojump_clock: trio.testing.MockClock,
) -> None:
    engine.pod_watch = kube.WatchHealth()
    engine.pod_watch.failed("kubedock lacks the right to watch pods in namespace ns: forbidden")
    container = engine.create("c", ContainerConfig(image="busybox"))
    started = trio.current_time()
    with pytest.raises(StartFailed) as failed:
        await engine.start(container)
    assert trio.current_time() - started == 60
    assert cluster.called("delete_pod") == cluster.called("create_pod")
    assert failed.value.message == (
        f"timeout after 60s waiting for pod {cluster.called('create_pod')[0]} "
        "(kubedock's pod watch is failing: kubedock lacks the right to watch pods in namespace "
        "ns: forbidden)"
    )


async def test_a_start_that_times_out_with_the_watch_working_says_only_that(
    engine: Engine, autojump_clock: trio.testing.MockClock,
) -> None:
    engine.pod_watch = kube.WatchHealth()
    container = engine.create("c", ContainerConfig(image="busybox"))
    with pytest.raises(StartFailed) as failed:
        await engine.start(container)
    assert failed.value.message.startswith("timeout after 60s waiting for pod ")
    assert "watch" not in failed.value.message


async def test_a_pull_that_keeps_failing_fails_the_start_after_the_patience(
    engine: Engine, cluster: FakeCluster, autojump_clock: trio.testing.MockClock,
) -> None:
    took, failure = await start_while(engine, cluster, [
        (1, partial(main_waiting, "ErrImagePull", PULL_FAILED)),
        (3, partial(main_waiting, "ImagePullBackOff", BACK_OFF)),
        (15, partial(main_waiting, "ErrImagePull", PULL_FAILED)),
        (17, partial(main_waiting, "ImagePullBackOff", BACK_OFF)),
    ])
    assert took == 1 + 30, "from the first failed pull, through the back-offs"
    assert failure is not None
    assert failure.message == f"ImagePullBackOff: {BACK_OFF} (for 30s)"
    assert cluster.called("delete_pod") == cluster.called("create_pod")


async def test_a_pull_that_recovers_within_the_patience_starts(
    engine: Engine, cluster: FakeCluster, autojump_clock: trio.testing.MockClock,
) -> None:
    took, failure = await start_while(engine, cluster, [
        (1, partial(main_waiting, "ErrImagePull", PULL_FAILED)),
        (3, partial(main_waiting, "ImagePullBackOff", BACK_OFF)),
        (25, running),
    ])
    assert (took, failure) == (25, None)
    assert cluster.called("delete_pod") == []


async def test_a_break_in_the_stall_starts_the_patience_again(
    engine: Engine, cluster: FakeCluster, autojump_clock: trio.testing.MockClock,
) -> None:
    took, failure = await start_while(engine, cluster, [
        (1, unschedulable),
        (20, partial(main_waiting, "ContainerCreating", "")),
        (21, partial(main_waiting, "ErrImagePull", PULL_FAILED)),
    ])
    assert took == 21 + 30
    assert failure is not None and failure.message == f"ErrImagePull: {PULL_FAILED} (for 30s)"


async def test_an_unschedulable_pod_fails_the_start_after_the_patience(
    engine: Engine, cluster: FakeCluster, autojump_clock: trio.testing.MockClock,
) -> None:
    took, failure = await start_while(engine, cluster, [(2, unschedulable)])
    assert took == 32
    assert failure is not None and failure.message == (
        "Unschedulable: 0/1 nodes are available: 1 Insufficient memory. (for 30s)"
    )


async def test_an_invalid_image_name_fails_the_start_at_once(
    engine: Engine, cluster: FakeCluster, autojump_clock: trio.testing.MockClock,
) -> None:
    took, failure = await start_while(engine, cluster, [
        (1, partial(main_waiting, "InvalidImageName", "bad")),
    ])
    assert took == 1
    assert failure is not None and failure.message == "InvalidImageName: bad"


@pytest.mark.parametrize("patience", [0])
async def test_no_patience_fails_at_the_first_failed_pull(
    engine: Engine, cluster: FakeCluster, autojump_clock: trio.testing.MockClock,
) -> None:
    took, failure = await start_while(engine, cluster, [
        (1, partial(main_waiting, "ErrImagePull", PULL_FAILED)),
    ])
    assert took == 1
    assert failure is not None and failure.message == f"ErrImagePull: {PULL_FAILED} (for 0s)"


@pytest.mark.parametrize("patience", [600])
async def test_a_start_timeout_within_the_patience_names_the_stall(
    engine: Engine, cluster: FakeCluster, autojump_clock: trio.testing.MockClock,
) -> None:
    took, failure = await start_while(engine, cluster, [(2, unschedulable)])
    assert took == 60
    assert failure is not None and failure.message == (
        f"timeout after 60s waiting for pod {cluster.called('create_pod')[0]} "
        "(Unschedulable: 0/1 nodes are available: 1 Insufficient memory.)"
    )


async def test_a_pod_waiting_for_its_claims_waits_beyond_the_patience_and_times_out_naming_it(
    engine: Engine, cluster: FakeCluster, autojump_clock: trio.testing.MockClock,
) -> None:
    took, failure = await start_while(
        engine, cluster, [(2, partial(unschedulable, CLAIMS_UNBOUND))])
    assert took == 60
    assert failure is not None and failure.message == (
        f"timeout after 60s waiting for pod {cluster.called('create_pod')[0]} "
        f"(Unschedulable: {CLAIMS_UNBOUND})"
    )


async def test_a_pod_whose_claims_bind_after_the_patience_starts(
    engine: Engine, cluster: FakeCluster, autojump_clock: trio.testing.MockClock,
) -> None:
    took, failure = await start_while(engine, cluster, [
        (2, partial(unschedulable, CLAIMS_UNBOUND)),
        (45, running),
    ])
    assert (took, failure) == (45, None)
