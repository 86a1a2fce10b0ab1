"""A kubedock restarted with the same identity takes its containers over from their pods.

The first engine "crashes": its nursery is cancelled with no cleanup, as with kill -9, and its
pods stay in the scripted cluster for the second engine to find.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from engine_fake import PENDING, RUNNING, FakeCluster, exited

from kubedock import kube
from kubedock.engine import (
    Container,
    ContainerConfig,
    Engine,
    Healthcheck,
    HostBinding,
    NoSuchContainer,
    RestartPolicy,
)

REDIS = kube.PortSpec(6379, "tcp")
INSTANCE = "ci-42"


def new_engine(nursery: trio.Nursery, cluster: FakeCluster, instance_id: str = INSTANCE,
               **options: Any) -> Engine:
    return Engine(cluster, kube.PodSettings(namespace="tests", instance_id=instance_id),
                  nursery=nursery, start_timeout=30, fail_fast_after=0,
                  **{"expose": "pod-ip", "expose_host": "127.0.0.1", **options})


async def restarted(nursery: trio.Nursery, cluster: FakeCluster, instance_id: str = INSTANCE,
                    **options: Any) -> tuple[Engine, int]:
    engine = new_engine(nursery, cluster, instance_id, **options)
    await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
    return engine, await engine.adopt()


async def crash_after(cluster: FakeCluster, work: Any, **options: Any) -> list[Container]:
    """Run `work(engine)` in an engine that then ends without cleaning up."""
    async with trio.open_nursery() as nursery:
        engine = new_engine(nursery, cluster, **options)
        await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
        await work(engine)
        containers = engine.containers()
        nursery.cancel_scope.cancel()
    return containers


CONFIG = ContainerConfig(
    image="redis:7", cmd=("redis-server", "--save", ""), env=("A=1",), labels={"team": "x"},
    exposed_ports=(REDIS,), restart_policy=RestartPolicy("on-failure", 2), stop_timeout=3,
    healthcheck=Healthcheck(("CMD", "true"), 30.0, 5.0, 3, 0.0, 5.0),
    raw_config={"Image": "redis:7", "Cmd": ["redis-server", "--save", ""]},
    raw_host_config={"LogConfig": {"Type": "none"}},
)


async def test_records_are_rebuilt_from_the_pods(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()

    async def run_two(engine: Engine) -> None:
        await engine.start(engine.create("db", CONFIG))
        done = engine.create("job", ContainerConfig(image="busybox"))
        await engine.start(done)
        cluster.set_main(done.pod_name or "", exited(3), phase="Failed")
        await trio.sleep(1)
        engine.create("never-started", ContainerConfig(image="busybox"))

    before = {c.name: c for c in await crash_after(cluster, run_two)}
    engine, adopted = await restarted(nursery, cluster)
    assert adopted == 2  # a container that never started has no pod: it is gone with kubedock
    db, job = engine.get("db"), engine.get("job")
    assert (db.id, db.created, db.status, db.pod_name) == (
        before["db"].id, before["db"].created, "running", before["db"].pod_name)
    assert db.published and db.published[0].host_ip == db.pod_ip
    assert (job.status, job.exit_code) == ("exited", 3)
    with pytest.raises(NoSuchContainer):
        engine.get("never-started")
    await engine.stop(db, None)
    assert db.status == "exited"
    await engine.remove(db, force=True)
    await engine.remove(job, force=False)
    assert cluster.pods == {}


async def start_db(engine: Engine) -> None:
    await engine.start(engine.create("db", CONFIG))


async def test_the_config_survives_the_restart(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()

    await crash_after(cluster, start_db)
    engine, _ = await restarted(nursery, cluster)
    assert engine.get("db").config == CONFIG
    annotations = next(iter(cluster.pods.values()))["metadata"]["annotations"]
    assert len(annotations["kubedock.record"]) < 1024


async def test_a_start_cut_short_leaves_a_created_container_and_no_pod(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()
    cluster.main_on_create = PENDING

    async def start_and_crash(engine: Engine) -> None:
        container = engine.create("slow", ContainerConfig(image="busybox"))
        with trio.move_on_after(5):
            await engine.start(container)

    await crash_after(cluster, start_and_crash)
    assert len(cluster.pods) == 1
    engine, adopted = await restarted(nursery, cluster)
    slow = engine.get("slow")
    assert (adopted, slow.status, slow.pod_name, cluster.pods) == (1, "created", None, {})
    cluster.main_on_create = RUNNING
    await engine.start(slow)
    assert slow.status == "running"


async def test_another_identity_adopts_nothing(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()

    await crash_after(cluster, start_db)
    engine, adopted = await restarted(nursery, cluster, instance_id="someone-else")
    assert (adopted, engine.containers(), len(cluster.pods)) == (0, [], 1)


async def test_an_own_pod_without_a_record_is_deleted(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()

    await crash_after(cluster, start_db)
    [pod] = cluster.pods.values()
    del pod["metadata"]["annotations"]["kubedock.record"]
    engine, adopted = await restarted(nursery, cluster)
    assert (adopted, engine.containers(), cluster.pods) == (0, [], {})


async def test_published_host_ports_are_published_again(nursery: trio.Nursery) -> None:
    cluster = FakeCluster(lag=0.01)
    config = ContainerConfig(image="redis:7", exposed_ports=(REDIS,),
                             port_bindings={REDIS: (HostBinding("", 0),)})

    async def run(engine: Engine) -> None:
        await engine.start(engine.create("db", config))

    before = await crash_after(cluster, run, expose="reverse-proxy")
    port = before[0].published[0].host_port
    annotations = next(iter(cluster.pods.values()))["metadata"]["annotations"]
    assert annotations["kubedock.ports"] == f'[[6379,"tcp","127.0.0.1",{port}]]'
    engine, _ = await restarted(nursery, cluster, expose="reverse-proxy")
    assert [p.host_port for p in engine.get("db").published] == [port]
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)  # listening again
    await stream.aclose()
    await engine.remove(engine.get("db"), force=True)


async def test_networks_come_back_with_their_ids_and_the_aliases(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()
    networks: dict[str, str] = {}

    async def run(engine: Engine) -> None:
        app = engine.networks.create("app")
        networks.update(app=app.id, bridge=engine.networks.bridge.id)
        await engine.start(engine.create("db", ContainerConfig(
            image="redis:7", networks={"app": ("database",)})))
        await engine.start(engine.create("plain", ContainerConfig(image="busybox")))

    await crash_after(cluster, run)
    engine, _ = await restarted(nursery, cluster)
    assert {name: engine.networks.get(name).id for name in networks} == networks
    [(app, endpoint)] = engine.networks.of(engine.get("db").id)
    assert (app.name, endpoint.aliases) == ("app", ("database",))
    assert "database" in engine.dns_names(engine.get("db"))
    assert [n.name for n, _ in engine.networks.of(engine.get("plain").id)] == ["bridge"]
