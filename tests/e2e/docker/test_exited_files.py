"""Files outlive the process, as with Docker (issue 10 item 2): copying out of (and into) an
exited container, binds written by one container and read by the next, and an exit, a stop,
a kill and an OOM kill reported as before, and the files of a killed container (a kill, a stop
past its timeout), against kubedock (whose containers are all supervised by default) and the
Docker engine."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from kubedock_server import Kubedock, docker_ok

pytestmark = pytest.mark.cluster

BUSYBOX = "busybox:1.36"


@pytest.fixture
def client(target: Kubedock) -> Iterator[docker.DockerClient]:
    result = docker.DockerClient(base_url=target.host, timeout=120)
    yield result
    result.close()


@pytest.fixture
def created(client: docker.DockerClient) -> Iterator[list[str]]:
    """Ids of containers to remove at the end."""
    ids: list[str] = []
    yield ids
    for container_id in ids:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(container_id, force=True, v=True)


def _create(client: docker.DockerClient, created: list[str], command: Any,
            **options: Any) -> str:
    container_id: str = client.api.create_container(BUSYBOX, command, **options)["Id"]
    created.append(container_id)
    return container_id


def _until_ready(client: docker.DockerClient, container_id: str, *, runs: int) -> None:
    """Wait until the container's script has said `ready` in each of its `runs` (its log spans
    them): its traps are set."""
    deadline = time.monotonic() + 60
    while client.api.logs(container_id).count(b"ready\n") < runs:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def _read(client: docker.DockerClient, container_id: str, path: str) -> bytes:
    stream, stat = client.api.get_archive(container_id, path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.extractfile(os.path.basename(path))
        assert member is not None
        content = member.read()
    assert stat["name"] == os.path.basename(path) and stat["size"] == len(content)
    return content


def _put_and_read_back(client: docker.DockerClient, container_id: str) -> None:
    upload = io.BytesIO()
    with tarfile.open(fileobj=upload, mode="w") as archive:
        info = tarfile.TarInfo("added.txt")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"added"))
    assert client.api.put_archive(container_id, "/tmp", upload.getvalue())
    assert _read(client, container_id, "/tmp/added.txt") == b"added"


def _until_readable(client: docker.DockerClient, container_id: str, path: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            stream, _ = client.api.get_archive(container_id, path)
            b"".join(stream)  # read whole, or the client's connection stays open until GC
            return
        except docker.errors.NotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _copied_out(target: Kubedock, container_id: str, path: str, into: Path) -> bytes:
    """What `docker cp` copies out of the container."""
    docker_ok(target, "cp", f"{container_id}:{path}", str(into))
    return (into / os.path.basename(path)).read_bytes()


def _moment(text: str) -> datetime:
    head, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction + '000000')[:6]}+00:00")


def test_files_of_an_exited_container_are_copied_out_and_in(
    client: docker.DockerClient, created: list[str]
) -> None:
    container_id = _create(
        client, created, ["sh", "-c", "echo in-volume > /vol1/data.txt; echo report > "
                          "/report.txt; sleep 0.3; exit 3"], volumes=["/vol1"])
    client.api.start(container_id)
    assert client.api.wait(container_id, timeout=120)["StatusCode"] == 3
    assert _read(client, container_id, "/vol1/data.txt") == b"in-volume\n"
    assert _read(client, container_id, "/report.txt") == b"report\n"
    with pytest.raises(docker.errors.NotFound):
        client.api.get_archive(container_id, "/no/such/file")
    _put_and_read_back(client, container_id)
    state = client.api.inspect_container(container_id)["State"]
    assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 3, False)
    ran = (_moment(state["FinishedAt"]) - _moment(state["StartedAt"])).total_seconds()
    # kubedock's clock when it saw each transition (never earlier than the pod's record).
    assert 0 < ran < 5, state
    client.api.remove_container(container_id)
    with pytest.raises(docker.errors.NotFound):
        client.api.get_archive(container_id, "/report.txt")


def test_a_report_is_copied_out_of_a_plain_one_shot_container(
    client: docker.DockerClient, created: list[str]
) -> None:
    """No volume, no bind: as a CI job collects a report (supervised by default)."""
    container_id = _create(client, created, ["sh", "-c", "echo passed > /report.xml"])
    client.api.start(container_id)
    assert client.api.wait(container_id, timeout=120)["StatusCode"] == 0
    assert _read(client, container_id, "/report.xml") == b"passed\n"


def test_a_bind_written_by_one_container_is_read_by_the_next(
    client: docker.DockerClient, created: list[str], tmp_path: Path
) -> None:
    source = tmp_path / "shared"
    source.mkdir()
    (source / "old.txt").write_text("old\n")
    (source / "kept.txt").write_text("kept\n")
    binds = {str(source): {"bind": "/mnt", "mode": "rw"}}
    writer = _create(
        client, created, ["sh", "-c", "touch /mnt/shared.txt && mkdir /mnt/sub && echo deep > "
                          "/mnt/sub/deep.txt && rm /mnt/old.txt"], volumes=["/mnt"],
        host_config=client.api.create_host_config(binds=binds))
    client.api.start(writer)
    assert client.api.wait(writer, timeout=120)["StatusCode"] == 0
    # The wait returns once the bind's source has what the container left.
    assert sorted(os.listdir(source)) == ["kept.txt", "shared.txt", "sub"]
    assert (source / "sub" / "deep.txt").read_text() == "deep\n"
    reader = _create(client, created, ["sh", "-c", "ls /mnt; cat /mnt/sub/deep.txt"],
                     volumes=["/mnt"], host_config=client.api.create_host_config(
                         binds={str(source): {"bind": "/mnt", "mode": "ro"}}))
    client.api.start(reader)
    assert client.api.wait(reader, timeout=120)["StatusCode"] == 0
    assert client.api.logs(reader) == b"kept.txt\nshared.txt\nsub\ndeep\n"


def test_stop_and_kill_reach_the_program(client: docker.DockerClient,
                                         created: list[str]) -> None:
    # `sleep` handles no signal: as PID 1 under Docker it outlives SIGTERM until the kill.
    sleeper = _create(client, created, ["sleep", "300"], volumes=["/vol1"])
    client.api.start(sleeper)
    began = time.monotonic()
    client.api.stop(sleeper, timeout=2)
    assert time.monotonic() - began >= 2
    assert client.api.inspect_container(sleeper)["State"]["ExitCode"] == 137
    trapping = _create(client, created, ["sh", "-c", "trap 'exit 7' TERM; trap 'exit 5' USR1; "
                                         "echo ready; sleep 300 & wait"], volumes=["/vol1"])
    client.api.start(trapping)
    _until_ready(client, trapping, runs=1)
    client.api.kill(trapping, signal="SIGUSR1")
    assert client.api.wait(trapping, timeout=60)["StatusCode"] == 5
    client.api.start(trapping)
    _until_ready(client, trapping, runs=2)
    began = time.monotonic()
    client.api.stop(trapping, timeout=30)
    assert time.monotonic() - began < 10
    assert client.api.inspect_container(trapping)["State"]["ExitCode"] == 7
    client.api.start(trapping)
    client.api.kill(trapping)
    assert client.api.inspect_container(trapping)["State"]["ExitCode"] == 137


def test_an_oom_kill_is_reported(client: docker.DockerClient, created: list[str]) -> None:
    container_id = _create(
        client, created, ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=256M count=1"],
        volumes=["/vol1"], host_config=client.api.create_host_config(
            mem_limit="64m", memswap_limit="64m"))
    client.api.start(container_id)
    assert client.api.wait(container_id, timeout=120)["StatusCode"] == 137
    assert client.api.inspect_container(container_id)["State"]["OOMKilled"] is True


def test_files_of_an_exited_container_of_an_image_without_tools(
    client: docker.DockerClient, created: list[str]
) -> None:
    """No shell, tar or stat in the image: kubedock's toolbox copies out of the exited one."""
    container_id: str = client.api.create_container("kubedock/noshell:1",
                                                    volumes=["/vol1"])["Id"]
    created.append(container_id)
    client.api.start(container_id)
    client.api.stop(container_id, timeout=30)
    assert client.api.inspect_container(container_id)["State"]["ExitCode"] == 0
    assert _read(client, container_id, "/data/hello.txt") == b"hello from the no-shell image\n"


_KILLS = {"kill": ["kill"], "stop": ["stop", "-t", "1"], "stop-signal": ["stop", "-t", "60"]}


@pytest.mark.parametrize("how", list(_KILLS))
def test_files_of_a_killed_container_are_copied_out(
    target: Kubedock, client: docker.DockerClient, created: list[str], tmp_path: Path, how: str
) -> None:
    """`docker kill`, `docker stop` once its timeout is over (`sleep` takes no SIGTERM as PID
    1), and a stop whose stop signal is SIGKILL end the program with SIGKILL; what it wrote
    can still be copied out, and in."""
    container_id = _create(client, created, [
        "sh", "-c", "echo in-volume > /vol1/data.txt; echo report > /report.txt; exec sleep 300"],
        volumes=["/vol1"], stop_signal="SIGKILL" if how == "stop-signal" else None)
    client.api.start(container_id)
    _until_readable(client, container_id, "/report.txt")
    since = int(time.time())
    began = time.monotonic()
    docker_ok(target, *_KILLS[how], container_id)
    assert time.monotonic() - began < 20
    state = client.api.inspect_container(container_id)["State"]
    assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 137, False)
    assert _copied_out(target, container_id, "/report.txt", tmp_path) == b"report\n"
    assert _copied_out(target, container_id, "/vol1/data.txt", tmp_path) == b"in-volume\n"
    _put_and_read_back(client, container_id)
    events = [(event["Action"], event["Actor"]["Attributes"].get("signal")
               or event["Actor"]["Attributes"].get("exitCode"))
              for event in client.api.events(since=since, until=int(time.time()) + 1,
                                             filters={"container": container_id}, decode=True)
              if event["Action"] in ("kill", "die", "stop")]
    assert events == {"kill": [("kill", "9"), ("die", "137")],
                      "stop": [("kill", "15"), ("kill", "9"), ("die", "137"), ("stop", None)],
                      "stop-signal": [("kill", "9"), ("die", "137"), ("stop", None)]}[how]
    docker_ok(target, "rm", container_id)
    with pytest.raises(docker.errors.NotFound):
        client.api.get_archive(container_id, "/report.txt")


def test_files_of_a_killed_container_of_an_image_without_tools(
    target: Kubedock, client: docker.DockerClient, created: list[str], tmp_path: Path
) -> None:
    container_id: str = client.api.create_container("kubedock/noshell:1",
                                                    volumes=["/vol1"])["Id"]
    created.append(container_id)
    client.api.start(container_id)
    docker_ok(target, "kill", container_id)
    assert client.api.inspect_container(container_id)["State"]["ExitCode"] == 137
    assert _copied_out(target, container_id, "/data/hello.txt", tmp_path) == (
        b"hello from the no-shell image\n")


def test_the_supervisor_comes_from_a_config_map_after_the_first_pod(
    kubedock: Kubedock, cluster: Any, created: list[str]
) -> None:
    """The first supervised pod without an init container gets the installer container, whose
    copy of the supervisor becomes the instance's ConfigMap; the next pods mount that instead,
    and the files of their exited containers are still read."""
    client = docker.DockerClient(base_url=kubedock.host, timeout=120)
    for _ in range(2):
        container_id = _create(client, created, ["sh", "-c", "echo report > /report.txt"],
                               volumes=["/vol1"])
        client.api.start(container_id)
        assert client.api.wait(container_id, timeout=120)["StatusCode"] == 0
        assert _read(client, container_id, "/report.txt") == b"report\n"
        deadline = time.monotonic() + 60
        while not cluster.kubectl("-n", kubedock.namespace, "get", "configmaps", "-o", "name",
                                  "-l", "kubedock=true").stdout.strip():
            assert time.monotonic() < deadline, "no ConfigMap of the supervisor"
            time.sleep(0.5)
    pod = json.loads(cluster.kubectl("-n", kubedock.namespace, "get", "pods", "-o", "json", "-l",
                                     f"kubedock.containerid={container_id[:12]}").stdout)
    (spec,) = [item["spec"] for item in pod["items"]]
    assert [container["name"] for container in spec["containers"]] == ["main"]
    assert any("configMap" in volume for volume in spec["volumes"])
    client.close()
