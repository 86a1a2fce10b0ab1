"""The local test cluster itself: what kubedock relies on works, and nothing leaves the machine."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import pytest
from e2e_cluster import Cluster, KubectlError, wait_for

pytestmark = pytest.mark.cluster

REDIS = "docker.io/library/redis:7"
BUSYBOX = "docker.io/library/busybox:1.36"
# TEST-NET-1, the machine's uplink subnet here; never routed on the internet either.
OFF_THE_MACHINE = "192.0.2.1"
GUARD_RAIL = "kubedock-cluster"


def run_pod(
    cluster: Cluster, namespace: str, name: str, image: str, command: list[str] | None = None
) -> str:
    """Create a pod, wait until it is Ready and return its IP."""
    container: dict[str, Any] = {"name": "main", "image": image, "imagePullPolicy": "IfNotPresent"}
    if command is not None:
        container["command"] = command
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 0},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    cluster.kubectl(
        "-n", namespace, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s", timeout=70
    )
    return cluster.kubectl(
        "-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.podIP}"
    ).stdout


def sh(cluster: Cluster, namespace: str, pod: str, script: str) -> str:
    return cluster.kubectl("-n", namespace, "exec", pod, "--", "sh", "-c", script).stdout


def redis_ping(host: str) -> str:
    return f"printf 'PING\\r\\nQUIT\\r\\n' | nc -w 5 {host} 6379"


@pytest.fixture(scope="module")
def redis_ip(cluster: Cluster, namespace: str) -> str:
    return run_pod(cluster, namespace, "redis", REDIS)


@pytest.fixture(scope="module")
def client(cluster: Cluster, namespace: str) -> str:
    run_pod(cluster, namespace, "client", BUSYBOX, ["sleep", "3600"])
    return "client"


def test_exec_returns_output_and_exit_code(cluster: Cluster, namespace: str, client: str) -> None:
    with pytest.raises(KubectlError) as failed:
        sh(cluster, namespace, client, "echo to-stdout; echo to-stderr >&2; exit 3")
    assert failed.value.returncode == 3
    assert failed.value.stdout == "to-stdout\n"
    assert "to-stderr" in failed.value.stderr


def test_redis_answers_ping_in_its_pod(cluster: Cluster, namespace: str, redis_ip: str) -> None:
    assert sh(cluster, namespace, "redis", "redis-cli ping").strip() == "PONG"


def test_pod_to_pod(cluster: Cluster, namespace: str, redis_ip: str, client: str) -> None:
    assert "+PONG" in sh(cluster, namespace, client, redis_ping(redis_ip))


def test_service_name_resolves_through_coredns(
    cluster: Cluster, namespace: str, redis_ip: str, client: str
) -> None:
    cluster.kubectl("-n", namespace, "expose", "pod", "redis", "--port=6379")
    service_ip = cluster.kubectl(
        "-n", namespace, "get", "service", "redis", "-o", "jsonpath={.spec.clusterIP}"
    ).stdout
    answer = sh(cluster, namespace, client, f"nslookup redis.{namespace}.svc.cluster.local")
    assert service_ip in answer

    def answers_through_service() -> bool:
        try:
            return "+PONG" in sh(cluster, namespace, client, redis_ping("redis"))
        except KubectlError:
            return False

    # The short name goes through the pod's search path, the ClusterIP through kube-proxy, which
    # rejects connections until it has synced the new endpoints.
    wait_for(answers_through_service, what="redis through its Service", timeout=20)


def test_names_outside_the_cluster_do_not_resolve(
    cluster: Cluster, namespace: str, client: str
) -> None:
    with pytest.raises(KubectlError):
        sh(cluster, namespace, client, "nslookup example.com")


@pytest.fixture
def ticker(cluster: Cluster, namespace: str) -> Iterator[str]:
    script = "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.3; done"
    run_pod(cluster, namespace, "ticker", BUSYBOX, ["sh", "-c", script])
    yield "ticker"
    cluster.kubectl("-n", namespace, "delete", "pod", "ticker", "--wait=false")


def test_logs_follow(cluster: Cluster, namespace: str, ticker: str) -> None:
    with killed_after(30, cluster.popen("-n", namespace, "logs", "-f", "--tail=1", ticker)) as out:
        ticks = [int(out.readline().removeprefix("tick-")) for _ in range(4)]
    # Only one line existed when following began: the rest arrived through the stream.
    assert ticks == list(range(ticks[0], ticks[0] + 4))


def test_port_forward_to_loopback(cluster: Cluster, namespace: str, redis_ip: str) -> None:
    forward = cluster.popen(
        "-n", namespace, "port-forward", "--address=127.0.0.1", "pod/redis", ":6379"
    )
    with killed_after(30, forward) as out:
        banner = out.readline()  # Forwarding from 127.0.0.1:PORT -> 6379
        port = int(banner.split("127.0.0.1:")[1].split()[0])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"PING\r\n")
            assert conn.recv(64) == b"+PONG\r\n"


@contextmanager
def killed_after(seconds: float, process: subprocess.Popen[str]) -> Iterator[IO[str]]:
    """The process's stdout; the process is killed on exit, or after `seconds` if reads hang."""
    watchdog = threading.Timer(seconds, process.kill)
    watchdog.start()
    with process:
        try:
            assert process.stdout is not None
            yield process.stdout
        finally:
            watchdog.cancel()
            process.kill()


def guard_rail_drops() -> int:
    """Packets the guard rail has dropped so far (root: reads the mangle table's counters)."""
    rules = subprocess.run(
        ["iptables-save", "-c", "-t", "mangle"], capture_output=True, text=True, check=True
    ).stdout
    (counters,) = [line.split()[0] for line in rules.splitlines() if GUARD_RAIL in line]
    return int(counters.strip("[]").split(":")[0])


def test_traffic_off_the_machine_is_dropped(cluster: Cluster, namespace: str, client: str) -> None:
    before = guard_rail_drops()
    with pytest.raises(KubectlError):
        sh(cluster, namespace, client, f"nc -w 2 {OFF_THE_MACHINE} 80 </dev/null")
    assert guard_rail_drops() > before
