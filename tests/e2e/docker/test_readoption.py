"""A kubedock killed with SIGKILL and started again with the same --instance-id takes its
containers over: listed, inspected, exec'd into, reachable on the same host ports, removable.

kubedock runs with only deploy/rbac.yaml's rights; objects are counted with kubectl (admin).
"""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubedock_server import Kubedock, docker_cli, start_kubedock, stop_kubedock

pytestmark = pytest.mark.cluster

HEARTBEAT = 3.0


@pytest.fixture
def launch(cluster: Any, namespace: str, rbac_kubeconfig: Path, current_images: None,
           tmp_path: Path) -> Iterator[Callable[[str], tuple[subprocess.Popen[bytes], Kubedock]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(instance: str) -> tuple[subprocess.Popen[bytes], Kubedock]:
        process, server = start_kubedock(
            cluster, namespace, tmp_path, "--kubeconfig", str(rbac_kubeconfig),
            "--port-forward", "--instance-id", instance, "--heartbeat", f"{HEARTBEAT:g}s",
            "--fail-fast-after", "120s", "--network-names", "external")
        started.append(process)
        return process, server

    yield start
    for process in started:
        if process.poll() is None:
            stop_kubedock(process)


def objects(cluster: Any, namespace: str, instance: str, kinds: str = "pods,services") -> list[str]:
    selector = f"kubedock=true,kubedock.id={instance}"
    return cluster.kubectl("-n", namespace, "get", kinds, "-l", selector, "-o",
                           "name").stdout.split()


def docker(server: Kubedock, *args: str) -> str:
    done = docker_cli(server, *args)
    assert done.returncode == 0, (args, done.stderr.decode(), server.log.read_text()[-3000:])
    return done.stdout.decode().strip()


def http_status(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return connection.recv(1024).split(b"\r\n")[0]


def until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {seconds:g}s"
        time.sleep(0.2)


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def test_a_restarted_kubedock_takes_over_its_running_container(
    cluster: Any, namespace: str, launch: Any,
) -> None:
    instance = f"e2e-{secrets.token_hex(3)}"
    first, server = launch(instance)
    network = docker(server, "network", "create", "app")
    web = docker(server, "run", "-d", "--name", "web", "-p", "8080", "--network", "app",
                 "--network-alias", "www", "busybox:1.36", "httpd", "-f", "-p", "8080", "-h",
                 "/tmp")
    published = docker(server, "port", "web", "8080")
    port = int(published.rpartition(":")[2])
    assert http_status(port).endswith(b" 404 Not Found")
    kill(first)

    killed = time.monotonic()
    _second, server = launch(instance)
    print(f"serving again {time.monotonic() - killed:.1f}s after the kill (heartbeat "
          f"{HEARTBEAT:g}s): {server.log.read_text().count('took over')} take-over logged")
    assert docker(server, "ps", "-q", "--no-trunc") == web
    assert docker(server, "inspect", "-f", "{{.State.Status}} {{.Name}}", "web") == "running /web"
    assert docker(server, "port", "web", "8080") == published
    assert docker(server, "network", "inspect", "-f", "{{.Id}}", "app") == network
    assert docker(server, "inspect", "-f", "{{json .NetworkSettings.Networks.app.Aliases}}",
                  "web").count("www") == 1
    assert http_status(port).endswith(b" 404 Not Found")
    assert docker(server, "exec", "web", "echo", "inside") == "inside"
    docker(server, "logs", "web")
    docker(server, "rm", "-f", "web")
    docker(server, "network", "rm", "app")
    assert objects(cluster, namespace, instance) == []
    with pytest.raises(OSError):
        http_status(port)


def test_a_start_cut_short_by_sigkill_leaves_a_created_container_and_no_pod(
    cluster: Any, namespace: str, launch: Any,
) -> None:
    instance = f"e2e-{secrets.token_hex(3)}"
    first, server = launch(instance)
    # A pull that keeps failing holds the start (--fail-fast-after 120s) until the kill.
    run = subprocess.Popen(["docker", "run", "-d", "--name", "stuck", "kubedock.invalid/no:1"],
                           env=server.env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        until(lambda: bool(objects(cluster, namespace, instance, "pods")), seconds=60)
        kill(first)
    finally:
        run.wait(timeout=30)

    _second, server = launch(instance)
    assert docker(server, "ps", "-a", "--format", "{{.Names}} {{.State}}") == "stuck created"
    assert objects(cluster, namespace, instance) == []
    docker(server, "rm", "-f", "stuck")
    assert docker(server, "ps", "-aq") == ""
