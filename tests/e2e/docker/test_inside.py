"""What happens inside a container, seen through docker-py: an exec that cannot start, a
terminal's bytes, detach keys, time stamps and auto-removal, against kubedock and the Docker
engine."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from datetime import datetime

import docker
import pytest
from docker.models.containers import Container
from kubedock_server import Kubedock

pytestmark = [
    pytest.mark.cluster,
    # docker-py leaves the sockets of streamed execs and attaches to the garbage collector.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

# Docker writes this when a client detaches from an exec (20.10 reports it as an error).
EXEC_DETACHED = b"exec attach failed: error on attach stdin: read escape sequence\r\n"


@pytest.fixture
def client(target: Kubedock) -> Iterator[docker.DockerClient]:
    # Shorter than the suite's usual patience: a hang is what some of these tests look for.
    result = docker.DockerClient(base_url=target.host, timeout=60)
    yield result
    result.close()


@pytest.fixture
def sleeper(client: docker.DockerClient) -> Iterator[Container]:
    container = client.containers.run("busybox:1.36", ["sleep", "300"], detach=True)
    yield container
    container.remove(force=True)


@pytest.mark.parametrize("tty", [False, True], ids=["plain", "tty"])
def test_exec_of_a_missing_binary(client: docker.DockerClient, sleeper: Container,
                                  tty: bool) -> None:
    exec_id = client.api.exec_create(sleeper.id, ["no-such-binary"], tty=tty)["Id"]
    output = client.api.exec_start(exec_id, tty=tty)
    # The runtime's words (which differ between runc versions in the middle), on stdout.
    assert re.fullmatch(rb'OCI runtime exec failed: exec failed: .*exec: "no-such-binary": '
                        rb"executable file not found in \$PATH: unknown\r\n", output), output
    inspected = client.api.exec_inspect(exec_id)
    assert (inspected["Running"], inspected["ExitCode"]) == (False, 126)
    assert sleeper.exec_run(["no-such-binary"]).exit_code == 126


def test_terminal_output_of_exec(client: docker.DockerClient, sleeper: Container) -> None:
    assert sleeper.exec_run(["echo", "hi"], tty=True).output == b"hi\r\n"
    assert sleeper.exec_run(["sh", "-c", "printf 'a\\nb'"], tty=True).output == b"a\r\nb"
    assert sleeper.exec_run(["echo", "hi"]).output == b"hi\n"
    # The process has the terminal the exec was created with; the start chose a multiplexed
    # stream (docker-py's exec_start without tty).
    exec_id = client.api.exec_create(sleeper.id, ["sh", "-c", "echo out; echo err >&2"],
                                      tty=True)["Id"]
    assert client.api.exec_start(exec_id, demux=True) == (b"out\r\nerr\r\n", None)


def test_terminal_output_of_attach_and_logs(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox:1.36", ["sh", "-c", "sleep 2; echo one; echo two"],
                                      tty=True, detach=True)
    try:
        attached = b"".join(client.api.attach(container.id, stdout=True, stderr=True,
                                              stream=True, logs=True))
        assert attached == b"one\r\ntwo\r\n"
        assert container.wait()["StatusCode"] == 0
        assert container.logs() == b"one\r\ntwo\r\n"
    finally:
        container.remove(force=True)


def raw_socket(connection: object) -> socket.socket:
    sock: socket.socket = connection._sock  # type: ignore[attr-defined]
    sock.settimeout(30)
    return sock


def type_keys(sock: socket.socket, *keys: bytes) -> None:
    for key in keys:  # one at a time, as a terminal sends them
        sock.sendall(key)
        time.sleep(0.5)


def until_echoed(sock: socket.socket, line: bytes) -> None:
    """Read the terminal's echo of a typed line, then `cat`'s copy of it."""
    received = b""
    while received.count(line) < 2:
        data = sock.recv(4096)
        assert data, received
        received += data
    assert received == line * 2


def until_closed(sock: socket.socket) -> bytes:
    received = b""
    while data := sock.recv(4096):
        received += data
    return received


@pytest.mark.parametrize("keys", [None, "ctrl-x,y"], ids=["default", "own"])
def test_detach_from_an_exec(target: Kubedock, client: docker.DockerClient,
                             sleeper: Container, keys: str | None) -> None:
    exec_id = client.api.exec_create(sleeper.id, ["cat"], stdin=True, tty=True,
                                     detach_keys=keys)["Id"]
    connection = client.api.exec_start(exec_id, tty=True, socket=True)
    sock = raw_socket(connection)
    try:
        type_keys(sock, b"hello\r")
        until_echoed(sock, b"hello\r\n")
        type_keys(sock, *([b"\x10", b"\x11"] if keys is None else [b"\x18", b"y"]))
        assert until_closed(sock) == EXEC_DETACHED
    finally:
        sock.close()
    # Docker 20.10 counts the detach as a failure of the exec (126) and hangs up its terminal,
    # which ends a `cat`; kubedock leaves the process running, as detaching means to.
    time.sleep(1)
    inspected = client.api.exec_inspect(exec_id)
    if target.reference:
        assert (inspected["Running"], inspected["ExitCode"]) == (False, 126)
    else:
        assert inspected["Running"] is True


@pytest.mark.parametrize("keys", [None, "ctrl-x,y"], ids=["default", "own"])
def test_detach_from_an_attach(client: docker.DockerClient, keys: str | None) -> None:
    container = client.containers.run("busybox:1.36", ["cat"], tty=True, stdin_open=True,
                                      detach=True)
    try:
        params = {"stdin": 1, "stdout": 1, "stream": 1}
        if keys is not None:
            params["detachKeys"] = keys
        wait_until_running(container)
        sock = raw_socket(client.api.attach_socket(container.id, params=params))
        try:
            type_keys(sock, b"hello\r")
            until_echoed(sock, b"hello\r\n")
            type_keys(sock, *([b"\x10", b"\x11"] if keys is None else [b"\x18", b"y"]))
            assert until_closed(sock) == b""
        finally:
            sock.close()
        time.sleep(1)
        container.reload()
        assert container.status == "running"
    finally:
        container.remove(force=True)


def wait_until_running(container: Container) -> None:
    deadline = time.monotonic() + 120
    while container.status != "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
        container.reload()


def test_bad_detach_keys_are_refused(client: docker.DockerClient, sleeper: Container) -> None:
    with pytest.raises(docker.errors.APIError, match=r"Invalid escape keys \(ctrl-P\) provided"):
        client.api.exec_create(sleeper.id, ["cat"], stdin=True, tty=True, detach_keys="ctrl-P")


def docker_time(text: str) -> datetime:
    assert re.fullmatch(r"[\d-]+T[\d:]+\.\d+Z", text), f"no fraction of a second in {text}"
    return datetime.fromisoformat(text)


def test_start_and_finish_times_have_sub_second_precision(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox:1.36", ["sleep", "0.3"], detach=True)
    try:
        assert container.wait()["StatusCode"] == 0
        container.reload()
        state = container.attrs["State"]
        started, finished = docker_time(state["StartedAt"]), docker_time(state["FinishedAt"])
        # Kubernetes reports with a delay, so only order is certain: never the same instant.
        assert started < finished
        assert docker_time(container.attrs["Created"]) <= started
    finally:
        container.remove(force=True)


def test_run_with_auto_remove_returns_the_output(client: docker.DockerClient) -> None:
    # docker-py asks for the exit code only after the start: a process that ends at once may
    # be gone, with Docker too, before it does.
    name = f"auto-remove-{time.time_ns()}"
    assert client.containers.run("busybox:1.36", ["sh", "-c", "sleep 0.5; echo hello"],
                                 auto_remove=True, name=name) == b"hello\n"
    with pytest.raises(docker.errors.ContainerError) as failed:
        client.containers.run("busybox:1.36", ["sh", "-c", "sleep 0.5; >&2 echo error; exit 1"],
                              auto_remove=True)
    assert (failed.value.exit_status, failed.value.stderr) == (1, None)
    deadline = time.monotonic() + 60
    while client.containers.list(all=True, filters={"name": name}):
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_run_with_auto_remove_of_a_process_that_ends_at_once(kubedock: Kubedock) -> None:
    """Kubernetes often reports such a process only once it has ended, before its start
    returns: kubedock keeps it for the client that then asks for its exit code."""
    client = docker.DockerClient(base_url=kubedock.host, timeout=60)
    try:
        for _ in range(3):
            assert client.containers.run("busybox:1.36", ["echo", "hello"],
                                         auto_remove=True) == b"hello\n"
    finally:
        client.close()


def test_hostname_is_the_short_id_unless_given(client: docker.DockerClient,
                                               sleeper: Container) -> None:
    assert sleeper.exec_run(["hostname"]).output == f"{sleeper.id[:12]}\n".encode()
    named = client.containers.run("busybox:1.36", ["hostname"], hostname="db1", detach=True)
    try:
        assert named.wait()["StatusCode"] == 0
        assert named.logs() == b"db1\n"
    finally:
        named.remove(force=True)
