"""Attaching to containers that already run, replaying their output, and exec sessions their
client leaves, against kubedock and the Docker engine."""

from __future__ import annotations

import struct
import time

import docker
import httpx
import pytest
from kubedock_server import Kubedock, docker_cli

pytestmark = pytest.mark.cluster


def test_docker_attach_to_a_running_container(target: Kubedock) -> None:
    name = f"attach-{time.time_ns()}"
    started = docker_cli(target, "run", "-d", "--name", name, "busybox:1.36", "sh", "-c",
                         "echo before; sleep 4; echo after; echo bye >&2; exit 4")
    assert started.returncode == 0, started.stderr
    try:
        for _ in range(100):
            if docker_cli(target, "logs", name).stdout == b"before\n":
                break
            time.sleep(0.1)
        # Only what is written from now on, each stream to its own side; then the exit code.
        attached = docker_cli(target, "attach", name)
        assert (attached.returncode, attached.stdout) == (4, b"after\n"), attached.stderr
        assert attached.stderr.endswith(b"bye\n")
    finally:
        docker_cli(target, "rm", "-f", name)


def demuxed(body: bytes) -> dict[int, bytes]:
    streams: dict[int, bytes] = {}
    while body:
        number, size = body[0], struct.unpack(">I", body[4:8])[0]
        streams[number] = streams.get(number, b"") + body[8:8 + size]
        body = body[8 + size:]
    return streams


def test_attach_without_stream_replays_what_an_exited_container_wrote(target: Kubedock) -> None:
    # docker-py cannot be used here: it reads attach output beneath its HTTP parser and loses
    # what arrives with the response head, against Docker too.
    client = docker.DockerClient(base_url=target.host, timeout=120)
    container = client.containers.run("busybox:1.36", ["sh", "-c", "echo one; echo two >&2"],
                                      detach=True)
    uds = target.host.removeprefix("unix://") if target.host.startswith("unix://") else None
    base = "http://docker" if uds else target.host.replace("tcp://", "http://")
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        with httpx.Client(transport=httpx.HTTPTransport(uds=uds), base_url=base,
                          timeout=60) as http:
            url = f"/v1.41/containers/{container.id}/attach"
            both = http.post(url, params={"logs": 1, "stdout": 1, "stderr": 1, "stream": 0})
            assert both.status_code == 200
            assert demuxed(both.content) == {1: b"one\n", 2: b"two\n"}
            only_stdout = http.post(url, params={"logs": 1, "stdout": 1, "stream": 0})
            assert demuxed(only_stdout.content) == {1: b"one\n"}
            nothing = http.post(url, params={"stdout": 1, "stream": 0})
            assert (nothing.status_code, nothing.content) == (200, b"")
    finally:
        container.remove(force=True)
        client.close()


@pytest.mark.parametrize("tty", [False, True], ids=["plain", "tty"])
def test_an_exec_its_client_leaves_runs_on_and_reports_its_exit(target: Kubedock,
                                                                 tty: bool) -> None:
    client = docker.DockerClient(base_url=target.host, timeout=120)
    container = client.containers.run("busybox:1.36", ["sleep", "300"], detach=True)
    try:
        script = "i=0; while [ $i -lt 20 ]; do echo tick; sleep 0.2; i=$((i+1)); done; exit 5"
        exec_id = client.api.exec_create(container.id, ["sh", "-c", script], tty=tty,
                                         stdin=True)["Id"]
        connection = client.api.exec_start(exec_id, socket=True, tty=tty)
        assert b"tick" in connection._sock.recv(64)
        connection._sock.close()
        connection.close()
        time.sleep(1)
        assert client.api.exec_inspect(exec_id)["Running"]
        deadline = time.monotonic() + 30
        while (state := client.api.exec_inspect(exec_id))["Running"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        # Docker 20.10 ends a plain exec whose output has nowhere to go with 126; kubedock keeps
        # reading the output, so the process runs to its own end.
        assert state["ExitCode"] == (126 if target.reference and not tty else 5)
        assert container.exec_run(["true"]).exit_code == 0  # the server carries on
    finally:
        container.remove(force=True)
        client.close()
