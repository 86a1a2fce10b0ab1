"""Restart policies and links, the same scenario against kubedock and the Docker engine."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubedock_server import Kubedock, docker_cli

pytestmark = pytest.mark.cluster


def inspect(target: Kubedock, name: str) -> dict[str, Any]:
    run = docker_cli(target, "inspect", name)
    assert run.returncode == 0, run.stderr
    document: dict[str, Any] = json.loads(run.stdout)[0]
    return document


def until(target: Kubedock, name: str, condition: Callable[[dict[str, Any]], bool],
          timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        document = inspect(target, name)
        if condition(document) or time.monotonic() > deadline:
            return document
        time.sleep(0.2)


def test_on_failure_gives_up_after_its_retries(target: Kubedock) -> None:
    name = f"onfailure-{time.time_ns()}"
    began = time.time() - 1
    run = docker_cli(target, "run", "-d", "--name", name, "--restart", "on-failure:2",
                     "busybox:1.36", "sh", "-c", "echo ran; exit 3")
    try:
        assert run.returncode == 0, run.stderr
        # A container waiting for its restart counts as running: `docker wait` ends at an exit.
        waited = docker_cli(target, "wait", name)
        assert waited.stdout.strip() == b"3", waited.stderr
        document = until(target, name, lambda d: d["State"]["Status"] == "exited")
        assert document["RestartCount"] == 2
        assert document["State"]["Status"] == "exited"
        assert (document["State"]["ExitCode"], document["State"]["Restarting"]) == (3, False)
        assert document["HostConfig"]["RestartPolicy"] == {"Name": "on-failure",
                                                           "MaximumRetryCount": 2}
        # The container's log spans its runs.
        assert docker_cli(target, "logs", name).stdout == b"ran\n" * 3
        # Each automatic restart is a die and a start, with no restart event.
        events = docker_cli(target, "events", "--since", str(int(began)), "--until",
                            str(int(time.time()) + 1), "--filter", f"container={name}",
                            "--format", "{{.Action}}")
        actions = events.stdout.decode().split()
        assert (actions.count("die"), actions.count("start"), "restart" in actions) == (
            3, 3, False), actions
    finally:
        docker_cli(target, "rm", "-f", name)


def test_always_restarts_until_stopped(target: Kubedock) -> None:
    name = f"always-{time.time_ns()}"
    run = docker_cli(target, "run", "-d", "--name", name, "--restart", "always",
                     "busybox:1.36", "sh", "-c", "sleep 1")
    try:
        assert run.returncode == 0, run.stderr
        document = until(target, name, lambda d: d["RestartCount"] >= 2)
        assert document["RestartCount"] >= 2
        listed = docker_cli(target, "ps", "--filter", f"name={name}", "--format", "{{.Names}}")
        assert listed.stdout.strip() == name.encode()  # restarting counts as running
        stop = docker_cli(target, "stop", "-t", "1", name)
        assert stop.returncode == 0, stop.stderr
        document = inspect(target, name)
        count = document["RestartCount"]
        assert (document["State"]["Status"], document["State"]["Restarting"]) == ("exited",
                                                                                  False)
        time.sleep(3)
        document = inspect(target, name)
        assert (document["State"]["Status"], document["RestartCount"]) == ("exited", count)
    finally:
        docker_cli(target, "rm", "-f", name)


def test_a_link_names_the_linked_container(target: Kubedock) -> None:
    db = f"db-{time.time_ns()}"
    missing = docker_cli(target, "run", "--rm", "--link", f"{db}:database", "busybox:1.36",
                         "true")
    assert missing.returncode != 0
    assert f"could not get container for {db}: No such container: {db}" in (
        missing.stderr.decode())
    run = docker_cli(target, "run", "-d", "--name", db, "redis:7")
    web = f"web-{time.time_ns()}"
    try:
        assert run.returncode == 0, run.stderr
        ping = docker_cli(target, "run", "--name", web, "--link", f"{db}:database",
                          "busybox:1.36", "ping", "-c1", "-W5", "database")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert inspect(target, web)["HostConfig"]["Links"] == [f"/{db}:/{web}/database"]
    finally:
        docker_cli(target, "rm", "-f", web, db)


def test_a_network_link_may_name_a_container_created_later(target: Kubedock) -> None:
    tag = f"{time.time_ns()}"
    network, web, upstream = f"links-{tag}", f"web-{tag}", f"upstream-{tag}"
    assert docker_cli(target, "network", "create", network).returncode == 0
    try:
        run = docker_cli(target, "run", "-d", "--name", web, "--network", network, "--link",
                         f"{upstream}:bar", "busybox:1.36", "sleep", "300")
        assert run.returncode == 0, run.stderr
        settings = inspect(target, web)
        assert settings["HostConfig"]["Links"] is None
        assert settings["NetworkSettings"]["Networks"][network]["Links"] == [f"{upstream}:bar"]
        run = docker_cli(target, "run", "-d", "--name", upstream, "--network", network,
                         "busybox:1.36", "sleep", "300")
        assert run.returncode == 0, run.stderr
        lookup = docker_cli(target, "exec", web, "ping", "-c1", "-W5", "bar")
        assert lookup.returncode == 0, lookup.stdout + lookup.stderr
    finally:
        docker_cli(target, "rm", "-f", web, upstream)
        docker_cli(target, "network", "rm", network)
