"""`docker restart` of a running container, against kubedock and the Docker engine: the events,
the exit code of the run it ends and the log that spans both runs."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubedock_server import Kubedock, docker_cli

pytestmark = pytest.mark.cluster

# Ends on SIGTERM with its own exit code, after saying so in its log.
_HANDLES_TERM = 'trap "echo term; exit 5" TERM; echo run; while :; do sleep 0.1; done'


def _events(target: Kubedock, name: str, since_ns: int) -> list[str]:
    """The container's events since `since_ns`: action, then signal or exit code if any."""
    run = docker_cli(target, "events", "--since", str(since_ns // 10**9 - 1), "--until",
                     str(int(time.time()) + 1), "--filter", f"container={name}", "--format",
                     "{{json .}}")
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.decode().splitlines()]
    return [" ".join([event["Action"], *(event["Actor"]["Attributes"][key]
                                         for key in ("signal", "exitCode")
                                         if key in event["Actor"]["Attributes"])])
            for event in events if event["timeNano"] >= since_ns]


def _logs_when(target: Kubedock, name: str, expected: bytes) -> bytes:
    deadline = time.monotonic() + 30
    while True:
        logs = docker_cli(target, "logs", name).stdout
        if logs == expected or time.monotonic() > deadline:
            return logs
        time.sleep(0.2)


@pytest.mark.parametrize(("command", "timeout", "ends"), [
    (["sh", "-c", _HANDLES_TERM], [], ["kill 15", "die 5"]),
    (["sleep", "9999"], ["-t", "1"], ["kill 15", "kill 9", "die 137"]),
], ids=["handles-sigterm", "ignores-sigterm"])
def test_restart_ends_the_run_as_docker_stop_does(target: Kubedock, command: list[str],
                                                  timeout: list[str], ends: list[str],
                                                  cluster: Any) -> None:
    name = f"restart-{time.time_ns()}"
    run = docker_cli(target, "run", "-d", "--name", name, "busybox:1.36", *command)
    try:
        assert run.returncode == 0, run.stderr
        if command[0] == "sh":
            assert _logs_when(target, name, b"run\n") == b"run\n"
        began = time.time_ns()
        restart = docker_cli(target, "restart", *timeout, name)
        assert restart.returncode == 0, restart.stderr
        assert docker_cli(target, "inspect", "-f", "{{.State.Running}}", name).stdout == b"true\n"
        if not target.reference:
            # The pod of the last run is gone (a restart makes the next one before it goes).
            container_id, pod = docker_cli(target, "inspect", "-f",
                                           "{{.Id}} {{.GraphDriver.Data.Pod}}",
                                           name).stdout.decode().split()
            pods = cluster.kubectl("-n", target.namespace, "get", "pods", "-o", "name", "-l",
                                   f"kubedock.containerid={container_id[:12]}").stdout.split()
            assert pods == [f"pod/{pod}"]
        events = _events(target, name, began)
        assert events == [*ends, "stop", "start", "restart"], events
        if command[0] == "sh":
            assert _logs_when(target, name, b"run\nterm\nrun\n") == b"run\nterm\nrun\n"
    finally:
        docker_cli(target, "rm", "-f", name)
