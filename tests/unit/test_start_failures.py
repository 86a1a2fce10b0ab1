"""Why a start fails: the engine's start against a scripted cluster that never runs the pod."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
import trio
import trio.testing

from kubedock import kube
from kubedock.engine import ContainerConfig, Engine, StartFailed


class PodsThatNeverRun:
    """Creates and deletes pods; what becomes of them is up to the test's observations."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.deleted: list[str] = []

    async def create_pod(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        self.created.append(manifest["metadata"]["name"])
        return dict(manifest, metadata=dict(manifest["metadata"], uid="u"))

    async def delete_pod(self, name: str, *, grace_seconds: int | None = None) -> None:
        await trio.lowlevel.checkpoint()
        self.deleted.append(name)


@pytest.fixture
def cluster() -> PodsThatNeverRun:
    return PodsThatNeverRun()


@pytest.fixture
async def engine(cluster: PodsThatNeverRun) -> AsyncIterator[Engine]:
    async with trio.open_nursery() as nursery:
        yield Engine(cluster, kube.PodSettings(namespace="ns", instance_id="i"),  # type: ignore[arg-type]
                     nursery=nursery, start_timeout=60, expose="pod-ip", expose_host="127.0.0.1")
        nursery.cancel_scope.cancel()


async def test_a_start_that_times_out_while_the_watch_fails_says_why(
    engine: Engine, cluster: PodsThatNeverRun, autojump_clock: trio.testing.MockClock,
) -> None:
    engine.pod_watch = kube.WatchHealth()
    engine.pod_watch.failed("kubedock lacks the right to watch pods in namespace ns: forbidden")
    container = engine.create("c", ContainerConfig(image="busybox"))
    started = trio.current_time()
    with pytest.raises(StartFailed) as failed:
        await engine.start(container)
    assert trio.current_time() - started >= 60
    assert cluster.deleted == cluster.created
    assert failed.value.message == (
        f"timeout after 60s waiting for pod {cluster.created[0]} "
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
