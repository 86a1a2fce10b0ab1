"""The engine's transitions against a scripted cluster: each one refused, timing out, and with
its caller gone mid-way, must end in a record that tells the truth and no pod left behind."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
from engine_fake import PENDING, PULL_FAILS, FakeCluster, exited

from kubedock import engine as engines
from kubedock import kube
from kubedock.engine import (
    Conflict,
    Container,
    ContainerConfig,
    Engine,
    HostBinding,
    NoSuchContainer,
    StartFailed,
)
from kubedock.registry import ImageConfig

START_TIMEOUT = 30
REDIS = kube.PortSpec(6379, "tcp")

REFUSALS = [
    pytest.param(kube.KubeError("pods is forbidden", status=403, reason="Forbidden"), id="403"),
    pytest.param(kube.Conflict("pods already exists", status=409, reason="AlreadyExists"),
                 id="409"),
    pytest.param(kube.KubeError("Pod is invalid", status=422, reason="Invalid"), id="422"),
]


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


async def new_engine(nursery: trio.Nursery, cluster: FakeCluster, **options: Any) -> Engine:
    settings = kube.PodSettings(namespace="tests", instance_id="a1b2c3d4e5f6")
    options = {"expose": "pod-ip", "expose_host": "127.0.0.1", "fail_fast_after": 0, **options}
    engine = Engine(cluster, settings, nursery=nursery, start_timeout=START_TIMEOUT, **options)
    await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
    return engine


@pytest.fixture
async def engine(nursery: trio.Nursery, cluster: FakeCluster) -> Engine:
    return await new_engine(nursery, cluster)


def create(engine: Engine, **config: Any) -> Container:
    return engine.create("db", ContainerConfig(image="redis:7", exposed_ports=(REDIS,), **config))


def actions(engine: Engine) -> list[str]:
    return [event.action for event in engine.events.history() if event.type == "container"]


async def abandoned(transition: Callable[[], Any], after: float) -> None:
    """Call a transition as a client would that goes away after `after` seconds."""
    with trio.move_on_after(after) as scope:
        await transition()
    assert scope.cancelled_caught, "the transition finished before its caller went away"


async def settle() -> None:
    """Let the jobs and the watch run until nothing moves (the clock jumps)."""
    await trio.sleep(3 * START_TIMEOUT)


async def started(engine: Engine) -> Container:
    container = create(engine)
    await engine.start(container)
    return container


def assert_gone(cluster: FakeCluster, container: Container) -> None:
    assert container.pod_name is None
    assert cluster.pods == {}
    assert container.status != "running"
    assert container.published == ()


# -- start ------------------------------------------------------------------------------------

async def test_start_runs_the_pod(autojump_clock: trio.testing.MockClock, engine: Engine,
                                  cluster: FakeCluster) -> None:
    container = await started(engine)
    assert container.status == "running"
    assert container.published == (engines.PublishedPort(REDIS, container.pod_ip or "", 6379),)
    assert actions(engine) == ["create", "start"]
    assert list(cluster.pods) == [container.pod_name]


async def test_start_completes_after_its_client_went_away(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: FakeCluster,
) -> None:
    engine = await new_engine(nursery, cluster, expose="port-forward")
    container = create(engine)
    await abandoned(lambda: engine.start(container), after=0.1)
    assert actions(engine) == ["create"]
    await settle()
    assert container.status == "running"
    assert actions(engine) == ["create", "start"]
    [published] = container.published
    assert published.host_ip == "127.0.0.1" and published.host_port > 0
    with pytest.raises(OSError):  # the exposure listens
        await trio.open_tcp_listeners(published.host_port, host="127.0.0.1")
    await engine.remove(container, force=True)
    assert cluster.pods == {} and container.removed


async def test_concurrent_starts_share_one_job(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = create(engine)
    async with trio.open_nursery() as clients:
        for _ in range(3):
            clients.start_soon(engine.start, container)
    assert [call for call in cluster.calls if call[0] == "create_pod"] == [
        ("create_pod", container.pod_name)]
    assert actions(engine) == ["create", "start"]
    with pytest.raises(engines.NotModified):
        await engine.start(container)


@pytest.mark.parametrize("refusal", REFUSALS)
async def test_start_refused_leaves_no_pod_to_wait_for(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
    refusal: kube.KubeError,
) -> None:
    container = create(engine)
    cluster.fail("create_pod", refusal)
    with pytest.raises(kube.KubeError) as raised:
        await engine.start(container)
    assert raised.value is refusal
    assert_gone(cluster, container)
    assert (container.status, container.exit_code) == ("created", 128)
    assert container.error == refusal.message
    assert actions(engine) == ["create"]
    # Nothing is left to wait for: neither a restart nor a removal waits for the start timeout.
    began = trio.current_time()
    await engine.restart(container, None)
    assert container.status == "running"
    await engine.remove(container, force=True)
    assert trio.current_time() - began < 5
    assert cluster.pods == {}


async def test_start_whose_answer_was_lost_deletes_the_pod(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = create(engine)
    cluster.fail("create_pod", kube.ClusterUnreachable("connection reset"), after_effect=True)
    with pytest.raises(kube.ClusterUnreachable):
        await engine.start(container)
    assert_gone(cluster, container)
    assert container.exit_code == 128


@pytest.mark.parametrize(("main", "reason"), [(PENDING, "timeout after 30s"),
                                              (PULL_FAILS, "ErrImagePull")])
async def test_start_that_cannot_run_deletes_the_pod(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
    main: dict[str, Any] | None, reason: str,
) -> None:
    cluster.main_on_create = main
    container = create(engine, auto_remove=True)
    began = trio.current_time()
    with pytest.raises(StartFailed) as raised:
        await engine.start(container)
    assert raised.value.message.startswith(reason)
    assert trio.current_time() - began <= START_TIMEOUT + 1
    assert_gone(cluster, container)
    assert container.exit_code == 128 and container.error.startswith(reason)
    await settle()
    assert container.removed  # `docker run --rm` after a failed start
    assert actions(engine) == ["create", "destroy"]


async def test_start_failing_with_its_client_gone_is_logged(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster.main_on_create = PULL_FAILS
    container = create(engine)
    await abandoned(lambda: engine.start(container), after=0.1)
    await settle()
    assert_gone(cluster, container)
    assert f"start of container {container.short_id} failed, its client gone: ErrImagePull" in (
        caplog.text)


async def test_remove_abandons_a_start_under_way(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    cluster.main_on_create = PENDING
    container = create(engine)
    outcome: list[BaseException] = []

    async def start() -> None:
        try:
            await engine.start(container)
        except Conflict as error:
            outcome.append(error)

    async with trio.open_nursery() as clients:
        clients.start_soon(start)
        await trio.sleep(1)
        await engine.remove(container, force=True)
    assert "marked for removal" in str(outcome[0])
    assert container.removed and cluster.pods == {}
    assert trio.current_time() < 5
    with pytest.raises(NoSuchContainer):
        await engine.start(container)


async def test_port_that_cannot_be_bound_fails_the_start_and_deletes_the_pod(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: FakeCluster,
) -> None:
    engine = await new_engine(nursery, cluster, expose="port-forward")
    [taken] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = taken.socket.getsockname()[1]
    container = create(engine, port_bindings={REDIS: (HostBinding("127.0.0.1", port),)})
    with pytest.raises(StartFailed) as raised:
        await engine.start(container)
    assert "driver failed programming external connectivity" in raised.value.message
    assert_gone(cluster, container)
    assert container.exposure is None
    assert container.exit_code == 128
    assert f"Bind for 127.0.0.1:{port} failed" in container.error
    assert "start" not in actions(engine)
    await taken.aclose()


async def test_name_taken_by_another_service_fails_the_start_and_deletes_the_pod(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: FakeCluster,
) -> None:
    engine = await new_engine(nursery, cluster, names="services")
    cluster.services["db"] = {"metadata": {"name": "db", "ownerReferences": [{"uid": "other"}]}}
    container = create(engine)
    with pytest.raises(Conflict, match="already a Service"):
        await engine.start(container)
    assert_gone(cluster, container)
    assert list(cluster.services) == ["db"]


async def test_a_service_left_by_an_earlier_run_is_taken_over(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: FakeCluster,
) -> None:
    """A restart's last pod may be gone while the garbage collector has yet to delete its
    Services: the next run's start makes them its own."""
    engine = await new_engine(nursery, cluster, names="services")
    container = create(engine)
    cluster.services["db"] = {"metadata": {"name": "db", "ownerReferences": [{"uid": "gone"}]},
                              "spec": {"selector": {"kubedock.containerid": container.short_id}}}
    await engine.start(container)
    assert container.pod_name is not None
    [owner] = cluster.services["db"]["metadata"]["ownerReferences"]
    assert owner["uid"] == cluster.pods[container.pod_name]["metadata"]["uid"]


async def test_a_service_the_garbage_collector_deletes_meanwhile_is_made_again(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: FakeCluster,
) -> None:
    engine = await new_engine(nursery, cluster, names="services")
    container = create(engine)
    cluster.fail("create_object", kube.Conflict('services "db" already exists', status=409))
    await engine.start(container)
    assert container.status == "running" and "db" in cluster.services


async def test_services_carry_the_ports_the_image_exposes(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: FakeCluster,
) -> None:
    """A compose service such as postgres names no port: peers reach the image's."""
    engine = await new_engine(nursery, cluster, names="services")
    image = ImageConfig(id="sha256:" + "0" * 64, os="linux", architecture="amd64", variant="",
                        created="", author="", diff_ids=(),
                        defaults={"ExposedPorts": {"5432/tcp": {}, "53/UDP": {}, "x/tcp": {}}})
    container = engine.create("db", ContainerConfig(image="postgres:16", image_config=image))
    await engine.start(container)
    assert [(port["port"], port["protocol"]) for port in cluster.services["db"]["spec"]["ports"]
            ] == [(5432, "TCP"), (53, "UDP")]


# -- stop -------------------------------------------------------------------------------------

async def test_stop_completes_after_its_client_went_away(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    await abandoned(lambda: engine.stop(container, None), after=0.1)
    await settle()
    assert (container.status, container.exit_code) == ("exited", 143)
    assert actions(engine)[-3:] == ["kill", "die", "stop"]
    assert [event.attributes.get("signal") for event in engine.events.history()
            if event.action == "kill"] == ["15"]


async def test_stop_refused_keeps_the_container_running(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    cluster.fail("patch_pod", kube.KubeError("pods is forbidden", status=403))
    with pytest.raises(kube.KubeError):
        await engine.stop(container, None)
    await settle()
    assert container.status == "running" and container.published
    assert "stop" not in actions(engine)
    await engine.stop(container, None)
    assert container.status == "exited"


async def test_stop_signal_ignored_ends_with_sigkill_after_the_timeout(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = create(engine, stop_signal="SIGINT")
    await engine.start(container)
    cluster.exec_exit_code = lambda argv: 0  # `kill -s INT 1` works, and is ignored
    began = trio.current_time()
    await engine.stop(container, 7)
    assert 7 <= trio.current_time() - began < 9
    assert (container.status, container.exit_code) == ("exited", 137)
    assert ("exec", "kill -s INT 1") in cluster.calls
    # As Docker reports a stop signal that did not do: the signal, then SIGKILL.
    assert [event.attributes.get("signal") for event in engine.events.history()
            if event.action == "kill"] == ["2", "9"]
    assert actions(engine)[-2:] == ["die", "stop"]


async def test_stop_the_watch_never_reports_ends_in_a_clear_error(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    cluster.watch_stalled = True
    began = trio.current_time()
    with pytest.raises(engines.TimedOut, match=r"cannot stop container: .* within 37 s"):
        await engine.stop(container, 7)
    assert trio.current_time() - began == 37


async def test_a_signal_that_never_arrives_ends_in_a_clear_error(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    cluster.exec_stalled = True
    with pytest.raises(engines.TimedOut, match=r"cannot kill container: .*SIGUSR1 .* 30 s"):
        await engine.kill(container, "SIGUSR1")
    assert container.status == "running"
    assert "kill" not in actions(engine)


async def test_a_slow_signal_holds_up_neither_the_exit_nor_a_removal(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    assert container.pod_name is not None
    cluster.exec_stalled = True
    async with trio.open_nursery() as clients:
        clients.start_soon(partial(abandoned, lambda: engine.kill(container, "SIGWINCH"), after=1))
        await trio.sleep(2)
        began = trio.current_time()
        cluster.set_main(container.pod_name, exited(3), phase="Failed")
        await engine.wait(container, "not-running")
        await engine.remove(container, force=False)
        assert trio.current_time() - began < 5
    assert (container.exit_code, cluster.pods) == (3, {})


async def test_kill_overtakes_a_slow_stop(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = create(engine, stop_signal="SIGINT")
    await engine.start(container)
    cluster.exec_exit_code = lambda argv: 0
    async with trio.open_nursery() as clients:
        clients.start_soon(engine.stop, container, 600)
        await trio.sleep(1)
        await engine.kill(container, "KILL")
    assert trio.current_time() < 600
    assert container.status == "exited"
    assert actions(engine)[-3:] == ["kill", "die", "stop"]


# -- kill -------------------------------------------------------------------------------------

async def test_kill_completes_after_its_client_went_away(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    await abandoned(lambda: engine.kill(container, "SIGKILL"), after=0)
    await settle()
    assert (container.status, container.exit_code) == ("exited", 137)
    assert cluster.pods == {} and container.pod_name is None
    assert actions(engine)[-2:] == ["kill", "die"]


async def test_kill_refused_keeps_the_container_running(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    cluster.fail("delete_pod", kube.KubeError("pods is forbidden", status=403))
    with pytest.raises(kube.KubeError):
        await engine.kill(container, "KILL")
    await settle()
    assert container.status == "running"
    assert container.saved_logs is None  # its logs are read live, from the pod
    assert "kill" not in actions(engine)


async def test_kill_waits_for_a_start_under_way(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = create(engine)
    async with trio.open_nursery() as clients:
        clients.start_soon(engine.start, container)
        await trio.sleep(0.1)
        await engine.kill(container, "KILL")
    assert actions(engine)[1:] == ["start", "kill", "die"]
    assert cluster.pods == {}


# -- restart ----------------------------------------------------------------------------------

async def test_restart_completes_after_its_client_went_away(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    await abandoned(lambda: engine.restart(container, None), after=0.1)
    await settle()
    assert container.status == "running" and container.published
    assert list(cluster.pods) == [container.pod_name]
    assert actions(engine)[-4:] == ["die", "stop", "start", "restart"]


def died_with(engine: Engine) -> list[str]:
    return [event.attributes["exitCode"] for event in engine.events.history()
            if event.type == "container" and event.action == "die"]


async def test_restart_signals_from_inside_and_replaces_the_pod_once_the_process_ends(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    old_pod = container.pod_name
    assert old_pod is not None

    def kill(argv: Sequence[str]) -> int:  # the process ends on SIGTERM
        if list(argv) == ["kill", "-s", "TERM", "1"]:
            cluster.set_main(old_pod, exited(0), phase="Succeeded")
        return 0

    cluster.exec_exit_code = kill
    began = trio.current_time()
    await engine.restart(container, None)
    # No wait for a grace period or for the kubelet's report of a stop it carries out.
    assert trio.current_time() - began < 5
    assert "patch_pod" not in [method for method, _ in cluster.calls]
    assert container.status == "running" and list(cluster.pods) == [container.pod_name]
    assert actions(engine)[-4:] == ["die", "stop", "start", "restart"]
    assert died_with(engine) == ["0"]


async def test_restart_kills_a_process_that_ignores_the_stop_signal_after_the_timeout(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    cluster.exec_exit_code = lambda argv: 0  # `kill -s TERM 1` works, and is ignored
    began = trio.current_time()
    await engine.restart(container, 1)
    assert 1 <= trio.current_time() - began < 3
    assert container.status == "running"
    assert actions(engine)[-4:] == ["die", "stop", "start", "restart"]
    assert died_with(engine) == ["137"]


async def test_concurrent_restarts_each_restart(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    async with trio.open_nursery() as clients:
        for _ in range(2):
            clients.start_soon(engine.restart, container, None)
    # As with Docker, a restart that finds the container started again by another is done.
    assert actions(engine).count("restart") == 2
    assert container.status == "running" and list(cluster.pods) == [container.pod_name]


@pytest.mark.parametrize("refusal", REFUSALS)
async def test_restart_refused_leaves_a_stopped_container(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
    refusal: kube.KubeError,
) -> None:
    container = await started(engine)
    cluster.fail("create_pod", refusal)
    with pytest.raises(kube.KubeError):
        await engine.restart(container, None)
    assert_gone(cluster, container)
    assert container.error == refusal.message
    await engine.start(container)
    assert container.status == "running"


async def test_restart_whose_new_pod_never_runs_times_out(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    cluster.main_on_create = PENDING
    with pytest.raises(StartFailed, match="timeout"):
        await engine.restart(container, None)
    assert_gone(cluster, container)


# -- remove -----------------------------------------------------------------------------------

async def test_remove_completes_after_its_client_went_away(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    await abandoned(lambda: engine.remove(container, force=True), after=0.1)
    await settle()
    assert container.removed and cluster.pods == {}
    assert actions(engine)[-2:] == ["start", "destroy"]
    with pytest.raises(NoSuchContainer):
        engine.get(container.id)


async def test_remove_refused_keeps_the_container(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    cluster.fail("delete_pod", kube.KubeError("pods is forbidden", status=403))
    with pytest.raises(kube.KubeError):
        await engine.remove(container, force=True)
    assert engine.get(container.id) is container
    assert container.status == "running"
    await engine.remove(container, force=True)
    assert container.removed and cluster.pods == {}


async def test_remove_gives_up_waiting_for_a_silent_watch(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    cluster.watch_stalled = True
    began = trio.current_time()
    await engine.remove(container, force=True)
    assert START_TIMEOUT <= trio.current_time() - began < START_TIMEOUT + 1
    assert container.removed and cluster.pods == {}


async def test_second_removal_conflicts_while_the_first_runs(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    async with trio.open_nursery() as clients:
        clients.start_soon(partial(engine.remove, container, force=True))
        await trio.sleep(0.1)
        with pytest.raises(Conflict, match="already in progress"):
            await engine.remove(container, force=True)
    assert container.removed


def test_fake_has_every_method_of_the_boundary() -> None:
    methods = [name for name in dir(kube.ClusterBoundary) if not name.startswith("_")]
    assert methods and all(callable(getattr(FakeCluster, name, None)) for name in methods)
