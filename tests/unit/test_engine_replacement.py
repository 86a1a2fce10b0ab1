"""`docker restart` against a scripted cluster: the stop signal comes from a shell that stays in
the container, so the end of its process is known when the shell's session ends, before the
watch reports it; the next pod is created then, and the record still follows Docker's order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio.testing
from engine_fake import PENDING, FakeCluster, exited
from test_engine_adopt import crash_after, restarted
from test_engine_jobs import REFUSALS, actions, assert_gone, new_engine, settle, started

from kubedock import kube
from kubedock.engine import Container, Engine, StartFailed, TimedOut

LAG = 0.5  # the watch's: the kubelet reports an end this long after it


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster(lag=LAG)


@pytest.fixture
async def engine(nursery: trio.Nursery, cluster: FakeCluster) -> Engine:
    return await new_engine(nursery, cluster)


def is_signal_shell(argv: Sequence[str]) -> bool:
    return list(argv[:2]) == ["sh", "-c"] and "kill -s" in argv[2]


def with_shell(cluster: FakeCluster, on_signal: Any = None) -> None:
    """Images with a shell: the signal shell says it signalled, then stays; `on_signal(pod)`
    is what the process does with the signal."""
    pods: list[str] = []

    def exit_code(argv: Sequence[str]) -> int:
        if is_signal_shell(argv) and on_signal is not None:
            on_signal(pods[-1])
        return 0

    create_pod = cluster.create_pod

    async def create(manifest: Any) -> dict[str, Any]:
        pods.append(manifest["metadata"]["name"])
        return await create_pod(manifest)

    cluster.create_pod = create  # type: ignore[method-assign]
    cluster.exec_exit_code = exit_code
    cluster.exec_output = lambda argv: b"signalled\n" if is_signal_shell(argv) else b""
    cluster.exec_stays = is_signal_shell


def ends_with(cluster: FakeCluster, code: int) -> Any:
    def end(pod: str) -> None:
        cluster.set_main(pod, exited(code), phase="Succeeded" if code == 0 else "Failed")
    return end


def died_with(engine: Engine) -> list[str]:
    return [event.attributes["exitCode"] for event in engine.events.history()
            if event.type == "container" and event.action == "die"]


def created_at(cluster: FakeCluster) -> list[float]:
    """When each pod was created, recorded from now on."""
    times: list[float] = []
    create_pod = cluster.create_pod

    async def create(manifest: Any) -> dict[str, Any]:
        times.append(trio.current_time())
        return await create_pod(manifest)

    cluster.create_pod = create  # type: ignore[method-assign]
    return times


async def test_the_next_pod_is_created_before_the_end_is_reported(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    with_shell(cluster, ends_with(cluster, 0))
    container = await started(engine)
    old_pod = container.pod_name
    times = created_at(cluster)
    began = trio.current_time()
    await engine.restart(container, None)
    # Created at once, while the watch still had to report the end (LAG later).
    assert times[0] - began < LAG
    assert container.status == "running" and container.pod_name != old_pod
    assert list(cluster.pods) == [container.pod_name]
    assert actions(engine)[-5:] == ["kill", "die", "stop", "start", "restart"]
    assert died_with(engine) == ["0"]
    # A pod name of its own, the container's with a suffix.
    assert old_pod is not None and container.pod_name.startswith(f"{old_pod}-")
    # The next restart replaces that pod in turn.
    await engine.restart(container, None)
    assert container.status == "running" and list(cluster.pods) == [container.pod_name]
    assert died_with(engine) == ["0", "0"]


async def test_news_of_the_next_pod_wait_for_the_end_of_the_last_run(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
    nursery: trio.Nursery,
) -> None:
    """The kubelet may report the new pod running before the old one's end: the record still
    says running in the old pod until that end, then exited, then running in the new one."""
    async def report_later(pod: str) -> None:
        await trio.sleep(3 * LAG)
        cluster.set_main(pod, exited(5), phase="Failed")

    def ends_reported_late(pod: str) -> None:
        cluster.end_main(pod)
        nursery.start_soon(report_later, pod)

    with_shell(cluster, ends_reported_late)
    container = await started(engine)
    old_pod = container.pod_name
    seen: list[tuple[str, str | None]] = []

    async def record() -> None:
        while True:
            seen.append((container.status, container.pod_name))
            await container.changed.wait()

    nursery.start_soon(record)
    await engine.restart(container, None)
    assert container.status == "running"
    states = [state for i, state in enumerate(seen) if i == 0 or seen[i - 1] != state]
    assert states[0] == ("running", old_pod)
    assert states[-1] == ("running", container.pod_name)
    assert ("exited", old_pod) in states
    assert all(pod == old_pod for status, pod in states[:states.index(("exited", old_pod))])
    assert actions(engine)[-5:] == ["kill", "die", "stop", "start", "restart"]
    assert died_with(engine) == ["5"]
    assert container.exit_code == 0 and not container.error


async def test_a_process_that_ignores_the_signal_is_killed_after_the_timeout(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    with_shell(cluster)  # the shell stays: the process lives on
    container = await started(engine)
    began = trio.current_time()
    await engine.restart(container, 1)
    assert 1 <= trio.current_time() - began < 3
    assert container.status == "running" and list(cluster.pods) == [container.pod_name]
    assert actions(engine)[-6:] == ["kill", "kill", "die", "stop", "start", "restart"]
    assert died_with(engine) == ["137"]


async def test_without_a_shell_the_image_kill_signals_and_the_watch_tells_the_end(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await started(engine)
    old_pod = container.pod_name
    assert old_pod is not None

    def exit_code(argv: Sequence[str]) -> int:
        if list(argv) == ["kill", "-s", "TERM", "1"]:
            cluster.set_main(old_pod, exited(0), phase="Succeeded")
            return 0
        return 127  # no sh

    cluster.exec_exit_code = exit_code
    times = created_at(cluster)
    began = trio.current_time()
    await engine.restart(container, None)
    assert times[0] - began >= LAG  # after the watch's report
    assert container.status == "running"
    assert actions(engine)[-5:] == ["kill", "die", "stop", "start", "restart"]
    assert died_with(engine) == ["0"]


@pytest.mark.parametrize("refusal", REFUSALS)
async def test_a_next_pod_refused_leaves_a_stopped_container(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
    refusal: kube.KubeError,
) -> None:
    with_shell(cluster, ends_with(cluster, 0))
    container = await started(engine)
    cluster.fail("create_pod", refusal)
    with pytest.raises(kube.KubeError):
        await engine.restart(container, None)
    assert_gone(cluster, container)
    assert container.error == refusal.message and container.exit_code == 128
    assert actions(engine)[-3:] == ["kill", "die", "stop"]
    await engine.start(container)
    assert container.status == "running"


async def test_a_next_pod_that_never_runs_times_out_and_goes(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    with_shell(cluster, ends_with(cluster, 0))
    container = await started(engine)
    cluster.main_on_create = PENDING
    with pytest.raises(StartFailed, match="timeout"):
        await engine.restart(container, None)
    assert_gone(cluster, container)


async def test_an_end_never_reported_fails_the_restart_and_the_next_pod_goes(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    """The process ended, but the kubelet never reports it (the old pod does not go away):
    the restart fails as a stop does, and the pod made ahead is deleted."""
    with_shell(cluster, cluster.end_main)
    container = await started(engine)
    old_pod = container.pod_name
    with pytest.raises(TimedOut, match="did not report it stopped"):
        await engine.restart(container, None)
    await settle()
    assert list(cluster.pods) == [old_pod]
    assert "start" not in actions(engine)[2:]


async def test_a_forced_removal_during_the_restart_leaves_no_pod(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    with_shell(cluster, cluster.end_main)  # ended; reported never
    container = await started(engine)
    async with trio.open_nursery() as clients:
        clients.start_soon(_restart_cut_by_removal, engine, container)
        await trio.sleep(2 * LAG)
        assert len(cluster.pods) == 2  # the next one is there already
        await engine.remove(container, force=True)
    await settle()
    assert container.removed and cluster.pods == {}


async def _restart_cut_by_removal(engine: Engine, container: Container) -> None:
    with pytest.raises(Exception, match="marked for removal"):
        await engine.restart(container, None)


async def test_a_kubedock_that_ended_mid_restart_adopts_the_next_pod(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster(lag=LAG)
    with_shell(cluster, cluster.end_main)
    pods: list[str | None] = []

    async def restart_cut_short(engine: Engine) -> None:
        container = await started(engine)
        pods.append(container.pod_name)
        with trio.move_on_after(2 * LAG):
            await engine.restart(container, None)
        assert len(cluster.pods) == 2
        # The kubelet reports the end, but kubedock is gone before it hears of it.
        cluster.watch_stalled = True
        cluster.set_main(pods[0] or "", exited(0), phase="Succeeded")

    await crash_after(cluster, restart_cut_short)
    cluster.watch_stalled = False
    engine, adopted = await restarted(nursery, cluster)
    assert adopted == 1
    [container] = engine.containers()
    assert container.status == "running" and container.pod_name != pods[0]
    assert list(cluster.pods) == [container.pod_name]
