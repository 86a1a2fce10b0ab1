"""Lifecycle corners: health, restart, rename, prune, images, events, broken clients."""

from __future__ import annotations

import socket
import time
import urllib.request
from typing import Any

import docker
import docker.errors
import pytest
from kubedock_server import Kubedock

pytestmark = pytest.mark.cluster

SECOND = 1_000_000_000

UNREACHABLE_IMAGE = "127.0.0.1:9/kubedock/no-such-image:1"


def _wait_for(predicate: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_healthcheck_turns_healthy_then_unhealthy(client: docker.DockerClient) -> None:
    container = client.containers.run(
        "busybox:1.36", ["sleep", "300"], detach=True,
        healthcheck={"test": ["CMD-SHELL", "test ! -e /tmp/sick"], "interval": SECOND // 2,
                     "timeout": 5 * SECOND, "retries": 2},
    )
    try:
        def status() -> str:
            container.reload()
            return str(container.attrs["State"]["Health"]["Status"])

        _wait_for(lambda: status() == "healthy")
        container.exec_run(["touch", "/tmp/sick"])
        _wait_for(lambda: status() == "unhealthy")
        assert container.attrs["State"]["Health"]["FailingStreak"] >= 2
    finally:
        container.remove(force=True)


def test_restart_rename_and_prune(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox:1.36", ["sh", "-c", "echo run; sleep 300"],
                                      detach=True, name=f"first-{time.time_ns()}")
    try:
        container.restart(timeout=1)
        container.reload()
        assert container.status == "running"
        new_name = f"renamed-{time.time_ns()}"
        container.rename(new_name)
        assert client.containers.get(new_name).id == container.id
        with pytest.raises(docker.errors.APIError) as conflict:
            client.containers.create("busybox:1.36", name=new_name)
        assert conflict.value.status_code == 409
    finally:
        container.remove(force=True)
    done = client.containers.run("busybox:1.36", ["true"], detach=True,
                                 labels={"prune": "me"})
    done.wait(timeout=60)
    pruned = client.containers.prune(filters={"label": "prune=me"})
    assert pruned["ContainersDeleted"] == [done.id]


def test_images_are_listed_in_familiar_form(client: docker.DockerClient) -> None:
    client.images.pull("redis", tag="7")
    tags = [tag for image in client.images.list() for tag in image.tags]
    assert "redis:7" in tags
    assert client.images.get("docker.io/library/redis:7").tags == ["redis:7"]
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("never-pulled:1")


def test_events_report_the_lifecycle(client: docker.DockerClient) -> None:
    since = time.time()
    container = client.containers.run("busybox:1.36", ["true"], detach=True)
    container.wait(timeout=60)
    container.remove()
    actions = [event["Action"] for event in client.events(
        since=since, until=time.time() + 1, decode=True,
        filters={"container": container.id})]
    assert actions[:1] == ["create"]
    assert {"start", "die", "destroy"} <= set(actions)


def test_client_gone_during_follow_leaves_server_up(kubedock: Kubedock,
                                                    client: docker.DockerClient) -> None:
    container = client.containers.run(
        "busybox:1.36", ["sh", "-c", "while true; do echo tick; sleep 0.1; done"], detach=True)
    try:
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", kubedock.port)) as raw:
                raw.sendall(f"GET /v1.45/containers/{container.id}/logs?follow=1&stdout=1 "
                            "HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        assert client.ping()
        assert client.api.inspect_container(container.id)["State"]["Running"] is True
    finally:
        container.remove(force=True)


def test_a_pull_that_keeps_failing_fails_the_start_once_it_lasts(
    client: docker.DockerClient,
) -> None:
    # The e2e servers run with --fail-fast-after 5s: the pull fails (nothing listens where the
    # image's registry should be, which kubedock cannot reach either, so it leaves the pull to
    # the node) and the kubelet backs off meanwhile; the start fails after those 5 s, giving
    # the reason.
    container = client.containers.create(UNREACHABLE_IMAGE, ["true"])
    try:
        began = time.monotonic()
        with pytest.raises(docker.errors.APIError) as failed:
            container.start()
        took = time.monotonic() - began
        assert 5 <= took < 60
        explanation = str(failed.value.explanation)
        assert explanation.startswith(("ErrImagePull: ", "ImagePullBackOff: ")), explanation
        assert explanation.endswith("(for 5s)")
        assert UNREACHABLE_IMAGE in explanation
    finally:
        container.remove(force=True)


def test_client_gone_during_start_leaves_a_started_container(
    cluster: Any, kubedock: Kubedock, client: docker.DockerClient,
) -> None:
    since = time.time()
    container = client.containers.create("nginx:1.27", ports={"80/tcp": None})
    try:
        # The client hangs up right after asking, while the pod is still being created.
        with socket.create_connection(("127.0.0.1", kubedock.port)) as raw:
            raw.sendall(f"POST /v1.45/containers/{container.id}/start HTTP/1.1\r\n"
                        "Host: x\r\nContent-Length: 0\r\n\r\n".encode())

        def published() -> bool:
            container.reload()
            return bool(container.ports.get("80/tcp"))

        _wait_for(published)
        assert container.status == "running"
        [binding] = container.ports["80/tcp"]
        url = f"http://{binding['HostIp']}:{binding['HostPort']}/"
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert b"nginx" in answer.read()
        actions = [event["Action"] for event in client.events(
            since=since, until=time.time() + 1, decode=True,
            filters={"container": container.id})]
        assert "start" in actions
    finally:
        container.remove(force=True)
    pods = cluster.kubectl("-n", kubedock.namespace, "get", "pods", "-o", "name", "-l",
                           f"kubedock.containerid={container.id[:12]}").stdout.split()
    assert pods == []
    assert client.ping()
