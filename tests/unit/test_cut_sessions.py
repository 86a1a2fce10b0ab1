"""Exec sessions the API server cuts (it restarts) end with an error the client can tell from
a process's own end: exec, and copies into and out of a container."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from engine_fake import FakeCluster

from kubedock import kube, wire
from kubedock.engine import (
    Container,
    ContainerConfig,
    Engine,
    ExecConfig,
    InvalidParameter,
    copy_in,
    get_archive,
)


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
async def engine(nursery: trio.Nursery, cluster: FakeCluster) -> Engine:
    engine = Engine(cluster, kube.PodSettings(namespace="tests", instance_id="a1b2c3d4e5f6"),
                    nursery=nursery, start_timeout=30, fail_fast_after=0, expose="pod-ip",
                    expose_host="127.0.0.1")
    await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
    return engine


async def running(engine: Engine) -> Container:
    container = engine.create("c", ContainerConfig(image="busybox:1.36"))
    await engine.start(container)
    # kubedock's own archive tool beside the container does the copying.
    await engine.toolbox.ensure(container)
    return container


async def test_a_cut_exec_tells_its_client_and_has_no_exit_code_of_the_process(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await running(engine)
    record = engine.create_exec(container, ExecConfig(cmd=("sleep", "600"), attach_stdout=True,
                                                      attach_stderr=True))
    cluster.exec_cut = True
    client, server = (trio.SocketStream(end) for end in trio.socket.socketpair())
    async with client:
        await engine.start_exec(record, server, tty=False)
        received = b""
        while data := await client.receive_some():
            received += data
    header, line = received[:8], received[8:]
    assert header == wire.frame(wire.Stream.STDERR, line)[:8]
    assert line.startswith(b"kubedock: the exec session broke off")
    assert record.exit_code == -1
    assert not record.running


async def test_an_exec_the_api_server_refuses_tells_its_client_why(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await running(engine)
    record = engine.create_exec(container, ExecConfig(cmd=("true",), attach_stdout=True,
                                                      attach_stderr=True))
    cluster.fail("exec", kube.ClusterUnreachable("all attempts to connect failed"))
    client, server = (trio.SocketStream(end) for end in trio.socket.socketpair())
    async with client:
        with pytest.RaisesGroup(kube.ClusterUnreachable, allow_unwrapped=True,
                                flatten_subgroups=True):
            await engine.start_exec(record, server, tty=False)
        received = b""
        while data := await client.receive_some():
            received += data
    assert received == wire.frame(
        wire.Stream.STDERR, b"kubedock: exec failed: all attempts to connect failed\r\n")
    assert record.exit_code == 126
    assert not record.running


async def test_a_cut_copy_out_fails_rather_than_ending_short(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await running(engine)
    cluster.exec_cut = True
    with pytest.raises(kube.ClusterUnreachable, match=r"copying /etc out of \w+ broke off"):
        async for _ in get_archive(engine, container, "/etc"):
            pass


async def test_a_cut_copy_in_says_the_cluster_was_lost(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    container = await running(engine)
    cluster.exec_cut = True
    with pytest.RaisesGroup(pytest.RaisesExc(kube.ClusterUnreachable,
                                             match="copying into /tmp broke off"),
                            flatten_subgroups=True):
        await copy_in(engine, container, "/tmp", _upload())


async def test_a_copy_in_whose_process_ended_early_reports_the_process(
    autojump_clock: trio.testing.MockClock, engine: Engine, cluster: FakeCluster,
) -> None:
    """Input refused after the process's own end: its exit status says why."""
    container = await running(engine)
    cluster.exec_input_refused = True
    cluster.exec_exit_code = lambda argv: 0
    await copy_in(engine, container, "/tmp", _upload())
    cluster.exec_exit_code = lambda argv: 1
    with pytest.raises(InvalidParameter):
        await copy_in(engine, container, "/tmp", _upload())


async def _upload() -> AsyncIterator[bytes]:
    content = b"x" * 1024
    info = tarfile.TarInfo("file")
    info.size = len(content)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(info, io.BytesIO(content))
    yield buffer.getvalue()
