"""Port-forward throughput through kubedock, against `kubectl port-forward` on the same pod.

    .venv/bin/python tests/bench/portforward_bench.py [--runs N] [--size MB] [--streams N]

A busybox pod serves random files over HTTP; each run downloads one file of `--size` MB
(a single stream) and then `--streams` files of `--size / --streams` MB at once, first through
kubectl's forward and then through kubedock's, alternating so that a drift of the shared
machine hits both. Prints MB/s medians, their ratio, and the CPU seconds each forwarder spent
per GB. Not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import threading
import time

import docker
from bench_server import kubedock_server, process_cpu_seconds

MB = 1024 * 1024
_PORT = 8080


def download(port: int, name: str) -> int:
    """GET /name over HTTP/1.0 from 127.0.0.1:port; the number of body bytes read."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as connection:
        connection.sendall(f"GET /{name} HTTP/1.0\r\n\r\n".encode())
        received, head = 0, b""
        while chunk := connection.recv(1 << 20):
            if received == 0 and b"\r\n\r\n" not in head:
                head += chunk
                if b"\r\n\r\n" in head:
                    received = len(head.split(b"\r\n\r\n", 1)[1]) or 1
                continue
            received += len(chunk)
    if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"bad answer: {head[:80]!r}")
    return received


def parallel(port: int, name: str, streams: int) -> None:
    errors: list[BaseException] = []

    def one() -> None:
        try:
            download(port, name)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def kubectl_forward(kubectl: list[str], namespace: str, pod: str
                    ) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen([*kubectl, "-n", namespace, "port-forward", pod, f":{_PORT}"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"127\.0\.0\.1:(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"kubectl port-forward said {line!r}")
    return process, int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--streams", type=int, default=16)
    args = parser.parse_args()
    part = max(1, args.size // args.streams)
    script = (f"mkdir -p /www && head -c {args.size}m /dev/urandom > /www/one && "
              f"head -c {part}m /dev/urandom > /www/part && "
              f"exec httpd -f -p {_PORT} -h /www")
    with kubedock_server("--port-forward") as server:
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}", timeout=300)
        container = client.containers.run("busybox:1.36", ["sh", "-c", script], detach=True,
                                          ports={f"{_PORT}/tcp": None})
        forward: subprocess.Popen[str] | None = None
        try:
            container.reload()
            kubedock_port = int(container.ports[f"{_PORT}/tcp"][0]["HostPort"])
            pod = subprocess.run(
                [*server.kubectl, "-n", server.namespace, "get", "pods", "-o", "name",
                 "-l", f"kubedock.containerid={container.id[:12]}"],
                capture_output=True, text=True, check=True).stdout.strip()
            forward, kubectl_port = kubectl_forward(server.kubectl, server.namespace, pod)
            for _ in range(100):  # httpd is up once the files are written
                try:
                    download(kubedock_port, "part")
                    break
                except (OSError, RuntimeError):
                    time.sleep(0.5)
            download(kubectl_port, "part")
            forwarders = {"kubectl": (kubectl_port, forward.pid),
                          "kubedock": (kubedock_port, server.process.pid)}
            seconds: dict[tuple[str, str], list[float]] = {}
            cpu: dict[str, float] = dict.fromkeys(forwarders, 0.0)
            workloads = {
                "single": lambda port: download(port, "one"),
                "parallel": lambda port: parallel(port, "part", args.streams),
            }
            for _ in range(args.runs):
                for kind, work in workloads.items():
                    for name, (port, pid) in forwarders.items():
                        used = process_cpu_seconds(pid)
                        begun = time.perf_counter()
                        work(port)
                        seconds.setdefault((kind, name), []).append(
                            time.perf_counter() - begun)
                        cpu[name] += process_cpu_seconds(pid) - used
        finally:
            if forward is not None:
                forward.terminate()
                forward.wait()
            container.remove(force=True)
            client.close()
    total_gb = args.runs * (args.size + part * args.streams) * MB / 1e9
    print(f"port-forward GET, median of {args.runs} (MB/s; ratio kubedock/kubectl), "
          f"{os.cpu_count()} cores")
    for kind, size in (("single", args.size), ("parallel", part * args.streams)):
        rates = {name: size / statistics.median(seconds[(kind, name)]) for name in forwarders}
        label = "1 stream" if kind == "single" else f"{args.streams} streams"
        ratio = rates["kubedock"] / rates["kubectl"]
        print(f"  {label:11} {size:4} MB   kubectl {rates['kubectl']:7.1f}   "
              f"kubedock {rates['kubedock']:7.1f}   ratio {ratio:.2f}")
    print(f"  forwarder CPU per GB      kubectl {cpu['kubectl'] / total_gb:5.2f} s   "
          f"kubedock {cpu['kubedock'] / total_gb:5.2f} s")


if __name__ == "__main__":
    main()
