"""Exec starts refused before anything runs, as Docker refuses them before it answers."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from engine_fake import FakeCluster

from kubedock import kube
from kubedock.engine import Conflict, ContainerConfig, Engine, ExecConfig


@pytest.fixture
async def engine(nursery: trio.Nursery) -> Engine:
    cluster = FakeCluster()
    engine = Engine(cluster, kube.PodSettings(namespace="tests", instance_id="a1b2c3d4e5f6"),
                    nursery=nursery, start_timeout=30, fail_fast_after=0, expose="pod-ip",
                    expose_host="127.0.0.1")
    await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
    return engine


async def test_a_second_detached_start_is_refused(
    autojump_clock: trio.testing.MockClock, engine: Engine,
) -> None:
    container = engine.create("c", ContainerConfig(image="busybox:1.36"))
    await engine.start(container)
    record = engine.create_exec(container, ExecConfig(cmd=("true",)))
    await engine.start_exec(record, None, tty=False)
    with pytest.raises(Conflict, match="has already run"):
        await engine.start_exec(record, None, tty=False)


async def test_a_detached_start_in_a_container_not_running_is_refused(
    autojump_clock: trio.testing.MockClock, engine: Engine,
) -> None:
    container = engine.create("c", ContainerConfig(image="busybox:1.36"))
    await engine.start(container)
    record = engine.create_exec(container, ExecConfig(cmd=("true",)))
    await engine.kill(container, "KILL")
    with pytest.raises(Conflict, match="is not running"):
        await engine.start_exec(record, None, tty=False)
    assert not record.started and not record.running
