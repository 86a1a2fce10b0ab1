"""The toolbox against a scripted cluster: added to a pod on first need and only then, reused
for that run, refused cleanly when it cannot start, and never added for a request refused
anyway."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio.testing
from engine_fake import SLEEP_PROCESSES, FakeCluster, exited

from kubedock import engine as engines
from kubedock import kube
from kubedock.engine import (
    Conflict,
    Container,
    ContainerConfig,
    Engine,
    ExecConfig,
    InvalidParameter,
)
from kubedock.engine._toolbox import ToolboxFailed
from kubedock.registry import ImageConfig

TOOLBOX = "/kubedock toolbox"


@pytest.fixture
def cluster() -> FakeCluster:
    cluster = FakeCluster()

    def toolbox_answers(argv: Sequence[str]) -> bytes:
        words = list(argv[1:])
        if words == ["toolbox", "ps"]:
            return SLEEP_PROCESSES
        if words[:3] == ["toolbox", "archive", "stat"]:
            return b'{"mode": 33188, "size": 3, "mtime": 1700000000, "linkTarget": ""}\n'
        return b""

    cluster.exec_output = toolbox_answers
    # The image has none of the tools (127); kubedock's own program does what it is asked.
    cluster.exec_exit_code = lambda argv: 0 if argv[0] == "/kubedock" else 127
    return cluster


@pytest.fixture
async def engine(nursery: trio.Nursery, cluster: FakeCluster) -> Engine:
    settings = kube.PodSettings(namespace="tests", instance_id="a1b2c3d4e5f6",
                                init_image="kubedock/kubedock:0.1.0")
    engine = Engine(cluster, settings, nursery=nursery, start_timeout=30, expose="pod-ip",
                    expose_host="127.0.0.1", fail_fast_after=0)
    await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
    return engine


async def running(engine: Engine, **config: object) -> Container:
    container = engine.create("app", ContainerConfig(image="kubedock/noshell:1", **config))
    await engine.start(container)
    return container


def calls(cluster: FakeCluster, method: str) -> list[str]:
    return [subject for called, subject in cluster.calls if called == method]


async def test_exec_as_another_user_adds_the_toolbox_once(engine: Engine,
                                                          cluster: FakeCluster) -> None:
    container = await running(engine)
    for user in ("1000:1000", "nobody"):
        record = engine.create_exec(container, ExecConfig(cmd=("id",), user=user,
                                                          env=("A=b",), working_dir="/tmp"))
        await engine.start_exec(record, None, tty=False)
        await record.finished.wait()
        assert record.exit_code == 0
    assert calls(cluster, "add_ephemeral_container") == [container.pod_name]
    added = cluster.pods[container.pod_name or ""]["spec"]["ephemeralContainers"]
    assert added == [kube.toolbox_container(engine.settings)]
    assert added[0]["targetContainerName"] == kube.MAIN
    assert "SYS_PTRACE" in added[0]["securityContext"]["capabilities"]["add"]
    assert [argv for argv in calls(cluster, "exec") if argv.startswith(TOOLBOX)] == [
        f"{TOOLBOX} exec 1000:1000 /tmp A=b -- id", f"{TOOLBOX} exec nobody /tmp A=b -- id"]


async def test_exec_as_the_containers_own_user_needs_no_toolbox(engine: Engine,
                                                                cluster: FakeCluster) -> None:
    container = await running(engine, user="1000")
    record = engine.create_exec(container, ExecConfig(cmd=("id",), user="1000"))
    await engine.start_exec(record, None, tty=False)
    await record.finished.wait()
    assert calls(cluster, "add_ephemeral_container") == []
    assert calls(cluster, "exec") == ["id"]


def image(user: str) -> ImageConfig:
    return ImageConfig(id="sha256:" + "0" * 64, os="linux", architecture="amd64", variant="",
                       created="", author="", diff_ids=(), defaults={"User": user})


@pytest.mark.parametrize(("config", "user"), [
    # The dev containers CLI execs with -u root in images that name no user.
    ({"image_config": image("")}, "root"),
    ({"image_config": image("")}, "0:0"),
    ({"user": "root"}, "0"),
    ({"image_config": image("postgres")}, "postgres"),
    ({"user": "1000", "image_config": image("postgres")}, "1000"),
])
async def test_exec_as_the_user_the_pod_runs_as_needs_no_toolbox(
        engine: Engine, cluster: FakeCluster, config: dict[str, Any], user: str) -> None:
    container = await running(engine, **config)
    record = engine.create_exec(container, ExecConfig(cmd=("id",), user=user))
    await engine.start_exec(record, None, tty=False)
    await record.finished.wait()
    assert calls(cluster, "add_ephemeral_container") == []
    assert calls(cluster, "exec") == ["id"]


@pytest.mark.parametrize(("config", "user"), [
    ({}, "root"),  # the image's user is unknown
    ({"image_config": image("postgres")}, "root"),
    ({"user": "1000", "image_config": image("")}, "root"),
    ({"image_config": image("")}, "0:1000"),
])
async def test_exec_as_another_user_than_the_pods(
        engine: Engine, cluster: FakeCluster, config: dict[str, Any], user: str) -> None:
    container = await running(engine, **config)
    record = engine.create_exec(container, ExecConfig(cmd=("id",), user=user))
    await engine.start_exec(record, None, tty=False)
    await record.finished.wait()
    assert calls(cluster, "add_ephemeral_container") == [container.pod_name]


async def test_a_signal_the_image_cannot_send(engine: Engine, cluster: FakeCluster) -> None:
    container = await running(engine)
    await engine.kill(container, "USR1")
    assert calls(cluster, "exec") == ["kill -s USR1 1", f"{TOOLBOX} signal 10"]
    assert calls(cluster, "add_ephemeral_container") == [container.pod_name]
    assert container.status == "running"


async def test_an_unknown_signal_is_refused_before_anything_runs(engine: Engine,
                                                                 cluster: FakeCluster) -> None:
    container = await running(engine)
    with pytest.raises(InvalidParameter, match="Invalid signal: NOSUCH"):
        await engine.kill(container, "NOSUCH")
    assert calls(cluster, "exec") == calls(cluster, "add_ephemeral_container") == []


async def test_top_lists_through_the_toolbox(engine: Engine, cluster: FakeCluster) -> None:
    container = await running(engine)
    titles, processes = await engines.container_top(engine, container, "")
    assert titles == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert [row[-1] for row in processes] == ["sleep 600"]
    with pytest.raises(InvalidParameter, match="unsupported option"):
        await engines.container_top(engine, container, "bogus")
    assert calls(cluster, "exec") == [f"{TOOLBOX} ps"]


async def test_refused_ps_args_add_no_toolbox(engine: Engine, cluster: FakeCluster) -> None:
    container = await running(engine)
    for ps_args in ("bogus", "-o user=PID"):
        with pytest.raises(InvalidParameter):
            await engines.container_top(engine, container, ps_args)
    assert calls(cluster, "add_ephemeral_container") == []


async def test_archive_without_the_images_stat(engine: Engine, cluster: FakeCluster) -> None:
    container = await running(engine)
    path_stat = await engines.stat_path(engine, container, "/etc/motd")
    assert (path_stat.name, path_stat.size) == ("motd", 3)
    # Once the pod has the toolbox, the image's tools are not tried again.
    await engines.stat_path(engine, container, "/etc/hosts")
    assert calls(cluster, "exec") == ["stat -c %f %s %Y -- /etc/motd",
                                      f"{TOOLBOX} archive stat /etc/motd",
                                      f"{TOOLBOX} archive stat /etc/hosts"]


async def test_a_restarted_container_gets_a_new_toolbox(
        autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster) -> None:
    container = await running(engine)
    await engine.kill(container, "USR1")
    await engine.restart(container, 0)
    await engine.kill(container, "USR2")
    assert calls(cluster, "add_ephemeral_container") == [container.pod_name] * 2


@pytest.mark.parametrize(("state", "message"), [
    ({"waiting": {"reason": "ErrImagePull", "message": "pull access denied"}},
     "ErrImagePull: pull access denied"),
    ({"terminated": {"reason": "Error", "exitCode": 2}}, "Error: exit code 2"),
    (None, "within 120 s"),
])
async def test_a_toolbox_that_does_not_start(autojump_clock: trio.testing.MockClock,
                                             engine: Engine, cluster: FakeCluster,
                                             state: dict[str, object] | None,
                                             message: str) -> None:
    cluster.toolbox_on_add = state
    container = await running(engine)
    with pytest.raises(ToolboxFailed, match=message):
        await engines.container_top(engine, container, "")
    assert container.status == "running"


@pytest.mark.parametrize("ending", ["exits", "is removed"])
async def test_a_container_that_ends_while_its_toolbox_waits(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, engine: Engine,
    cluster: FakeCluster, ending: str,
) -> None:
    # A signal right at the start of a container that then ends (docker run -it --rm, and the
    # CLI forwarding SIGWINCH): the pod never runs the toolbox, and the kill must not wait
    # for it until the pod is gone.
    cluster.toolbox_on_add = None
    container = await running(engine, tty=True, open_stdin=True)

    async def end() -> None:
        await trio.sleep(1)
        assert container.pod_name is not None
        if ending == "exits":
            cluster.set_main(container.pod_name, exited(0), phase="Succeeded")
        else:
            await cluster.delete_pod(container.pod_name, grace_seconds=0)

    nursery.start_soon(end)
    begun = trio.current_time()
    with pytest.raises(Conflict, match="is not running"):
        await engine.kill(container, "USR1")
    assert trio.current_time() - begun < 3
