"""UDP ports as Docker publishes them: port-forward mode (the relay in the pod), reverse proxy."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kubedock_server import Kubedock, docker_cli, start_kubedock, stop_kubedock

from kubedock import __version__

pytestmark = pytest.mark.cluster

# No test image has a UDP server that answers: kubedock's own program has one for tests
# (it echoes TCP on the same port too).
ECHO = [f"kubedock/kubedock:{__version__}", "toolbox", "echo", "5353"]


def run(target: Kubedock, *args: str) -> subprocess.CompletedProcess[bytes]:
    done = docker_cli(target, *args)
    assert done.returncode == 0, done.stderr
    return done


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def echoed(port: int, payload: bytes, *, within: float = 90) -> bytes:
    """The answer to `payload` sent to 127.0.0.1:port, asked again each second (UDP loses
    what comes before the server listens; the first use of a relay adds it to the pod)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        deadline = time.monotonic() + within
        while True:
            sock.sendto(payload, ("127.0.0.1", port))
            try:
                answer, source = sock.recvfrom(65535)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
                continue
            assert source == ("127.0.0.1", port)
            return answer


def test_a_published_udp_port_answers_as_with_docker(target: Kubedock) -> None:
    host_port = free_udp_port()
    container = run(target, "run", "-d", "-p", f"127.0.0.1:{host_port}:5353/udp",
                    "-p", "127.0.0.1::8080", *ECHO).stdout.decode().strip()
    try:
        udp = run(target, "port", container, "5353/udp").stdout.decode()
        assert udp == f"127.0.0.1:{host_port}\n"
        listing = run(target, "port", container).stdout.decode().splitlines()
        assert sorted(line.split(" -> ")[0] for line in listing) == ["5353/udp", "8080/tcp"]
        assert f"5353/udp -> 127.0.0.1:{host_port}" in listing
        ports = json.loads(run(target, "inspect", container).stdout)[0]["NetworkSettings"]["Ports"]
        assert ports["5353/udp"] == [{"HostIp": "127.0.0.1", "HostPort": str(host_port)}]
        assert echoed(host_port, b"first") == b"first"
        # Another client, and a larger datagram: each answer reaches the one that asked.
        big = bytes(range(256)) * 200
        assert echoed(host_port, big, within=10) == big
    finally:
        run(target, "rm", "-f", container)


def test_publish_all_takes_exposed_udp_ports_as_docker(target: Kubedock) -> None:
    container = run(target, "run", "-d", "-P", "--expose", "5353/udp", "--expose", "8080",
                    *ECHO).stdout.decode().strip()
    try:
        ports = json.loads(run(target, "inspect", container).stdout)[0]["NetworkSettings"]["Ports"]
        assert sorted(ports) == ["5353/udp", "8080/tcp"]
        # Published on the addresses a TCP port gets (kubedock: its --expose-host).
        assert ([b["HostIp"] for b in ports["5353/udp"]]
                == [b["HostIp"] for b in ports["8080/tcp"]])
        host_port = int(ports["5353/udp"][0]["HostPort"])
        assert host_port > 0
        assert echoed(host_port, b"any") == b"any"
    finally:
        run(target, "rm", "-f", container)


def test_reverse_proxy_relays_udp(cluster: Any, namespace: str, tmp_path: Path) -> None:
    process, server = start_kubedock(cluster, namespace, tmp_path, "--reverse-proxy",
                                     "--network-names", "external")
    try:
        container = run(server, "run", "-d", "-p", "127.0.0.1::5353/udp",
                        *ECHO).stdout.decode().strip()
        try:
            host_port = int(run(server, "port", container, "5353/udp").stdout.split(b":")[-1])
            assert echoed(host_port, b"proxied") == b"proxied"
        finally:
            run(server, "rm", "-f", container)
    finally:
        assert stop_kubedock(process) == 143, server.log.read_text()[-3000:]
