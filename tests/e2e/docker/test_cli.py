"""The docker CLI against kubedock (as a module and as the frozen program), and the same
scenarios against the Docker engine."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest
from kubedock_server import Kubedock, docker_cli, served_by, until_logged

pytestmark = pytest.mark.cluster


@pytest.fixture(params=["kubedock", "frozen_kubedock", "docker_oracle"],
                ids=["kubedock", "frozen", "docker"])
def target(request: pytest.FixtureRequest) -> Kubedock:
    """The system under test (from the venv, or the frozen program), or the reference engine
    for the same scenario."""
    return served_by(request, request.param)


def run(target: Kubedock, *args: str,
        input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return docker_cli(target, *args, input=input)


def test_run_prints_and_removes(target: Kubedock) -> None:
    result = run(target, "run", "--rm", "busybox:1.36", "echo", "hi")
    assert (result.returncode, result.stdout) == (0, b"hi\n"), result.stderr


def test_exit_code_propagates(target: Kubedock) -> None:
    result = run(target, "run", "--rm", "busybox:1.36", "sh", "-c", "echo bye >&2; exit 3")
    assert result.returncode == 3, result.stderr
    assert result.stderr.endswith(b"bye\n")


def test_logs_keep_stdout_and_stderr_apart(target: Kubedock) -> None:
    name = f"logs-{time.time_ns()}"
    created = run(target, "run", "--name", name, "busybox:1.36", "sh", "-c",
                  "echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; echo out2")
    assert created.returncode == 0, created.stderr
    logs = run(target, "logs", name)
    assert logs.stdout == b"out1\nout2\n"
    assert logs.stderr == b"err1\n"
    tail = run(target, "logs", "--tail", "1", name)
    assert tail.stdout + tail.stderr == b"out2\n"
    assert run(target, "rm", name).returncode == 0


def test_published_port_serves_http(target: Kubedock) -> None:
    started = run(target, "run", "-d", "-p", "127.0.0.1::80", "nginx:1.27")
    assert started.returncode == 0, started.stderr
    container = started.stdout.decode().strip()
    try:
        port = run(target, "port", container, "80/tcp").stdout.decode().split()[0]
        host_port = port.rsplit(":", 1)[1]
        body = b""
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/", timeout=5) as answer:
                    body = answer.read()
                    break
            except OSError:
                time.sleep(0.2)
        assert body, "no HTTP answer through the published port"
    finally:
        assert run(target, "rm", "-f", container).returncode == 0


def test_inspect_stop_wait_and_filters(target: Kubedock) -> None:
    name = f"sleeper-{time.time_ns()}"
    assert run(target, "run", "-d", "--name", name, "--label", "suite=cli", "busybox:1.36",
               "sleep", "300").returncode == 0
    try:
        state = json.loads(run(target, "inspect", name).stdout)[0]["State"]
        assert state["Running"] is True and state["Status"] == "running"
        listed = run(target, "ps", "--filter", "label=suite=cli", "--format", "{{.Names}}")
        assert name in listed.stdout.decode().split()
        stopped = run(target, "stop", "-t", "1", name)
        assert stopped.returncode == 0, stopped.stderr
        state = json.loads(run(target, "inspect", name).stdout)[0]["State"]
        assert state["Status"] == "exited" and state["ExitCode"] in (137, 143)
        assert run(target, "wait", name).stdout.strip() == str(state["ExitCode"]).encode()
        exited = run(target, "ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}")
        assert name in exited.stdout.decode().split()
        running = run(target, "ps", "--format", "{{.Names}}")
        assert name not in running.stdout.decode().split()
    finally:
        run(target, "rm", "-f", name)


def test_kill_and_remove(target: Kubedock) -> None:
    container = run(target, "run", "-d", "busybox:1.36", "sleep", "300").stdout.decode().strip()
    refused = run(target, "rm", container)
    assert refused.returncode != 0 and b"cannot remove a running container" in refused.stderr
    assert run(target, "kill", container).returncode == 0
    state = json.loads(run(target, "inspect", container).stdout)[0]["State"]
    assert state["Running"] is False and state["ExitCode"] == 137
    assert run(target, "rm", container).returncode == 0
    missing = run(target, "inspect", container)
    assert missing.returncode != 0 and b"No such" in missing.stderr


def test_exec(target: Kubedock) -> None:
    container = run(target, "run", "-d", "busybox:1.36", "sleep", "300").stdout.decode().strip()
    try:
        assert run(target, "exec", container, "sh", "-c", "exit 5").returncode == 5
        env = run(target, "exec", "-e", "GREETING=hello", "-w", "/tmp", container,
                  "sh", "-c", "echo $GREETING; pwd")
        assert env.stdout == b"hello\n/tmp\n", env.stderr
        echoed = run(target, "exec", "-i", container, "cat", input=b"from stdin\n")
        assert echoed.stdout == b"from stdin\n", echoed.stderr
        missing = run(target, "exec", container, "no-such-binary")
        assert missing.returncode in (126, 127)
    finally:
        run(target, "rm", "-f", container)


def _error(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode()


def test_unknown_ids_and_bad_references(target: Kubedock) -> None:
    assert "No such container" in _error(run(target, "inspect", "--type", "container", "nope"))
    assert "invalid reference format" in _error(run(target, "run", "--rm", "Bad:Ref"))




def test_stop_sends_the_stop_signal(target: Kubedock) -> None:
    script = 'trap "echo got usr1; exit 5" USR1; echo ready; while true; do sleep 0.1; done'
    container = run(target, "run", "-d", "--stop-signal", "SIGUSR1", "busybox:1.36",
                    "sh", "-c", script).stdout.decode().strip()
    try:
        until_logged(target, container, b"ready\n")  # the trap is set
        assert run(target, "stop", container).returncode == 0
        state = json.loads(run(target, "inspect", container).stdout)[0]["State"]
        assert state["ExitCode"] == 5
        assert run(target, "logs", container).stdout == b"ready\ngot usr1\n"
    finally:
        run(target, "rm", "-f", container)
