"""`docker run --init` on the cluster and on the reference engine: the command is not PID 1, so
SIGTERM ends a command without a handler, signals reach it, exit codes pass through."""

from __future__ import annotations

import json
import secrets
import subprocess
import time

import pytest
from kubedock_server import Kubedock, docker_cli, docker_ok, until_logged

pytestmark = pytest.mark.cluster


def run(target: Kubedock, *args: str) -> subprocess.CompletedProcess[bytes]:
    return docker_cli(target, *args)


def test_stop_ends_a_command_without_a_handler_at_once(target: Kubedock) -> None:
    name = f"init-{secrets.token_hex(3)}"
    try:
        docker_ok(target, "run", "-d", "--init", "--name", name, "busybox:1.36", "sleep", "300")
        (inspected,) = json.loads(docker_ok(target, "inspect", name))
        assert inspected["HostConfig"]["Init"] is True
        # The command is not PID 1: PID 1 is the init (docker-init; on kubedock, pause).
        processes = docker_ok(target, "exec", name, "ps", "-o", "pid,args").splitlines()
        pid_one = next(line.split(None, 1)[1] for line in processes[1:]
                       if line.split()[0] == "1")
        assert not pid_one.startswith("sleep")
        assert any(line.split(None, 1)[1] == "sleep 300" for line in processes[1:]), processes
        begun = time.monotonic()
        docker_ok(target, "stop", name)
        assert time.monotonic() - begun < 8  # not the 10 s grace period of an ignored SIGTERM
        assert docker_ok(target, "inspect", "-f", "{{.State.ExitCode}}", name) == "143\n"
    finally:
        run(target, "rm", "-f", name)


def test_signals_reach_the_command_and_its_exit_code_passes(target: Kubedock) -> None:
    name = f"init-{secrets.token_hex(3)}"
    try:
        docker_ok(target, "run", "-d", "--init", "--name", name, "busybox:1.36", "sh", "-c",
                "trap 'echo got usr1; exit 3' USR1; echo ready; while true; do sleep 0.2; done")
        until_logged(target, name, b"ready\n")  # the trap is set
        docker_ok(target, "kill", "-s", "USR1", name)
        assert docker_ok(target, "wait", name) == "3\n"
        assert docker_ok(target, "logs", name) == "ready\ngot usr1\n"
    finally:
        run(target, "rm", "-f", name)
    ran = run(target, "run", "--rm", "--init", "busybox:1.36", "sh", "-c", "echo out; exit 7")
    assert (ran.returncode, ran.stdout) == (7, b"out\n"), ran.stderr
