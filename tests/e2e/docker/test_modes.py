"""Server modes and log options: unix socket, reverse proxy, pod IP; since, until, timestamps."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import pytest
from kubedock_server import Kubedock, docker_cli, start_kubedock, stop_kubedock

from kubedock import __version__

pytestmark = pytest.mark.cluster


def _http_get(host: str, port: int) -> bytes:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as answer:
                body: bytes = answer.read()
                return body
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.parametrize("mode", ["--reverse-proxy", "pod-ip"])
def test_exposure_modes(cluster: Any, namespace: str, tmp_path: Path, mode: str) -> None:
    extra = [mode] if mode.startswith("--") else []
    process, server = start_kubedock(cluster, namespace, tmp_path, *extra,
                                     "--network-names", "external")
    try:
        client = docker.DockerClient(base_url=server.host, timeout=120)
        container = client.containers.run("nginx:1.27", detach=True, ports={"80/tcp": None})
        try:
            container.reload()
            binding = container.ports["80/tcp"][0]
            if mode == "pod-ip":
                assert binding["HostIp"] == container.attrs["NetworkSettings"]["IPAddress"]
                assert binding["HostPort"] == "80"
            assert b"nginx" in _http_get(binding["HostIp"], int(binding["HostPort"]))
        finally:
            container.remove(force=True)
            client.close()
    finally:
        assert stop_kubedock(process) == 143, server.log.read_text()[-3000:]


def test_unix_socket_serves_with_tcp(cluster: Any, namespace: str, tmp_path: Path) -> None:
    path = tmp_path / "kubedock.sock"
    process, server = start_kubedock(cluster, namespace, tmp_path, "--unix-socket", str(path),
                                      "--network-names", "external")
    try:
        for _ in range(50):
            if path.exists():
                break
            time.sleep(0.1)
        result = subprocess.run(
            ["docker", "-H", f"unix://{path}", "run", "--rm", "busybox:1.36", "echo", "via socket"],
            capture_output=True, timeout=120, check=False)
        assert (result.returncode, result.stdout) == (0, b"via socket\n"), result.stderr
        with socket.create_connection(("127.0.0.1", server.port)):
            pass
    finally:
        assert stop_kubedock(process) == 143
    assert not path.exists()


def test_the_go_kubedocks_whole_flag_set_runs(cluster: Any, namespace: str,
                                              tmp_path: Path) -> None:
    # A deployment of the Go kubedock passes every flag it knows; switching must not break it.
    template = tmp_path / "pod.yaml"
    template.write_text("kind: Pod\nmetadata:\n  labels:\n    from-template: 'yes'\n")
    image = f"kubedock/kubedock:{__version__}"
    process, server = start_kubedock(
        cluster, namespace, tmp_path, "--unix-socket", str(tmp_path / "kd.sock"),
        "--kube-api-qps", "20", "--kube-api-burst", "40", "--poll-rate", "2",
        "--poll-burst", "5", "--pod-template", str(template), "--pod-name-prefix", "go",
        "--service-account", "default", "--image-pull-secrets", "unused",
        "--pull-policy", "ifnotpresent", "--runas-user", "1000", "--request-cpu", "10m",
        "--request-memory", "16Mi", "--ignore-container-memory",
        "--node-selector", "kubernetes.io/os=linux", "--active-deadline-seconds", "600",
        "--label", "team=x", "--annotation", "owner=y", "--inspector", "--initimage", image,
        "--dindimage", image, "--disable-dind", "--port-forward", "--reverse-proxy",
        "--disable-services", "--pre-archive", "--timeout", "2m", "--reapmax", "30m",
        "--prune-start", "--lock", "--lock-timeout", "1m", "--verbosity", "2")
    try:
        result = docker_cli(server, "run", "--rm", "-m", "8m", "busybox:1.36", "id", "-u")
        assert (result.returncode, result.stdout) == (0, b"1000\n"), result.stderr
        started = docker_cli(server, "run", "-d", "-m", "8m", "busybox:1.36", "sleep", "60")
        assert started.returncode == 0, started.stderr
        resources = cluster.kubectl(
            "-n", namespace, "get", "pods", "-l", "team=x,from-template=yes",
            "-o", 'jsonpath={.items[*].spec.containers[?(@.name=="main")].resources}').stdout
        assert "10m" in resources and "8388608" not in resources  # --ignore-container-memory
        docker_cli(server, "rm", "-f", started.stdout.decode().strip())
        refused = docker_cli(server, "create", "-v", "/var/run/docker.sock:/var/run/docker.sock",
                             "busybox:1.36")
        assert refused.returncode != 0 and b"--disable-dind" in refused.stderr
    finally:
        assert stop_kubedock(process) == 143, server.log.read_text()[-3000:]
    log = server.log.read_text()
    for flag in ("--reverse-proxy", "--poll-rate", "--poll-burst", "--pre-archive",
                 "--inspector"):
        assert flag in log


def test_metrics_count_what_clients_did(cluster: Any, namespace: str, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    process, server = start_kubedock(
        cluster, namespace, tmp_path, "--port-forward", "--network-names", "external",
        "--metrics-addr", f"127.0.0.1:{metrics_port}", "--log-format", "json", "-v", "2")

    def scrape() -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as answer:
            text = answer.read().decode()
        return {name: float(value) for name, _, value in
                (line.rpartition(" ") for line in text.splitlines() if line[:1] != "#")}

    try:
        client = docker.DockerClient(base_url=server.host, timeout=120)
        container = client.containers.run("nginx:1.27", detach=True, ports={"80/tcp": None})
        container.reload()
        binding = container.ports["80/tcp"][0]
        bodies = [_http_get(binding["HostIp"], int(binding["HostPort"])) for _ in range(3)]
        assert all(b"nginx" in body for body in bodies)
        numbers = scrape()
        assert numbers['kubedock_containers{state="running"}'] == 1
        assert numbers['kubedock_api_requests_total{method="POST",route="/containers/create",'
                       'status="201"}'] == 1
        assert numbers['kubedock_exposed_port_connections_total{mode="port-forward"}'] >= 3
        assert numbers['kubedock_exposed_port_bytes_total{direction="out"}'] > sum(
            len(body) for body in bodies)
        assert numbers['kubedock_exposed_port_bytes_total{direction="in"}'] > 3 * len("GET / ")
        container.remove(force=True)
        client.close()
        assert 'kubedock_containers{state="running"}' not in scrape()
    finally:
        assert stop_kubedock(process) == 143, server.log.read_text()[-3000:]
    entries = [json.loads(line) for line in server.log.read_text().splitlines()]
    access = [e for e in entries if e["logger"] == "kubedock.access"]
    assert any(e["route"] == "/containers/create" and " 201 " in e["message"] for e in access)


def test_log_since_until_and_timestamps(client: docker.DockerClient) -> None:
    container = client.containers.run(
        "busybox:1.36", ["sh", "-c", "echo one; sleep 1.5; echo two; sleep 1.5; echo three"],
        detach=True)
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        stamped = container.logs(timestamps=True).decode().splitlines()
        moments = [datetime.fromisoformat(line.split(" ", 1)[0][:26] + "+00:00")
                   for line in stamped]
        assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two", "three"]
        middle = moments[1].timestamp()
        assert container.logs(since=middle - 0.2, until=middle + 0.2) == b"two\n"
        assert container.logs(since=middle - 0.2) == b"two\nthree\n"
        assert container.logs(tail=0) == b""
        assert container.logs(tail=2) == b"two\nthree\n"
    finally:
        container.remove(force=True)


def test_server_answers_docker_style_to_unknown_versions(kubedock: Kubedock) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{kubedock.port}/v1.99/_ping") as answer:
        assert answer.read() == b"OK"
        assert answer.headers["Api-Version"] == "1.45"
