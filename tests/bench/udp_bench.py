"""UDP through kubedock's relay in the pod, against TCP through its port-forward to that pod.

    .venv/bin/python tests/bench/udp_bench.py [--runs N] [--count N] [--size BYTES]

One container of kubedock's own image runs `kubedock toolbox echo` (UDP and TCP on one port),
published both ways by a kubedock with --port-forward: UDP goes framed to kubedock's relay in
the pod (over a port-forward to the relay's own TCP port), TCP straight through a port-forward.
Per run, first through UDP then through TCP:
- latency: the median round trip of --count sequential 64-byte datagrams, against --count
  sequential 64-byte messages on one TCP connection;
- throughput: --count datagrams of --size bytes with at most 32 unanswered at any time
  (a lost one is given up after 1 s), against as many bytes echoed over TCP.
Prints medians over the runs and their ratio (UDP/TCP; latency: lower is better): what the
relay adds to the port-forward it rides. Not a test.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import time

import docker
from bench_server import kubedock_server

from kubedock import __version__

_PORT = 5353
_WINDOW = 32


def first_answer(port: int) -> float:
    """Seconds until a first datagram is answered, asked again each second (the server may
    not listen yet, and the relay is added to the pod on first use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.connect(("127.0.0.1", port))
        begun = time.perf_counter()
        while time.perf_counter() - begun < 120:
            sock.send(b"first")
            try:
                sock.recv(65535)
            except (TimeoutError, ConnectionRefusedError):
                continue
            return time.perf_counter() - begun
    raise TimeoutError("no answer through the relay within 120 s")


def udp_latency(port: int, count: int) -> float:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        rounds = []
        for index in range(count):
            payload = index.to_bytes(4, "big") * 16
            begun = time.perf_counter()
            sock.send(payload)
            while sock.recv(65535) != payload:
                pass
            rounds.append(time.perf_counter() - begun)
    return statistics.median(rounds)


def tcp_latency(port: int, count: int) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rounds = []
        for index in range(count):
            payload = index.to_bytes(4, "big") * 16
            begun = time.perf_counter()
            sock.sendall(payload)
            received = b""
            while len(received) < len(payload):
                received += sock.recv(65535)
            rounds.append(time.perf_counter() - begun)
    return statistics.median(rounds)


def udp_throughput(port: int, count: int, size: int) -> tuple[float, int]:
    """MB/s of answered datagrams, and how many were lost."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        payload = os.urandom(size)
        sent = answered = lost = 0
        begun = time.perf_counter()
        while answered + lost < count:
            while sent < count and sent - answered - lost < _WINDOW:
                sock.send(payload)
                sent += 1
            ready, _, _ = select.select([sock], [], [], 1.0)
            if not ready:  # the window's worth is lost
                lost += sent - answered - lost
                continue
            sock.recv(65535)
            answered += 1
        seconds = time.perf_counter() - begun
    return answered * size / seconds / 1e6, lost


def tcp_throughput(port: int, count: int, size: int) -> float:
    total = count * size
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        payload = os.urandom(size)
        received = 0
        begun = time.perf_counter()
        sent = 0
        while received < total:
            # Keep about as much in flight as the UDP window does.
            if sent < total and sent - received < _WINDOW * size:
                sock.sendall(payload)
                sent += size
                continue
            received += len(sock.recv(1 << 20))
        seconds = time.perf_counter() - begun
    return total / seconds / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--size", type=int, default=1200)
    args = parser.parse_args()
    with kubedock_server("--port-forward") as server:
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}", timeout=300)
        container = client.containers.run(
            f"kubedock/kubedock:{__version__}", ["toolbox", "echo", str(_PORT)], detach=True,
            ports={f"{_PORT}/udp": None, f"{_PORT}/tcp": None})
        try:
            container.reload()
            udp = int(container.ports[f"{_PORT}/udp"][0]["HostPort"])
            tcp = int(container.ports[f"{_PORT}/tcp"][0]["HostPort"])
            first = first_answer(udp)  # the first datagram adds the toolbox to the pod
            tcp_latency(tcp, 1)
            latency: dict[str, list[float]] = {"udp": [], "tcp": []}
            rate: dict[str, list[float]] = {"udp": [], "tcp": []}
            lost = 0
            for _ in range(args.runs):
                latency["udp"].append(udp_latency(udp, args.count))
                latency["tcp"].append(tcp_latency(tcp, args.count))
                mb_per_s, dropped = udp_throughput(udp, args.count, args.size)
                rate["udp"].append(mb_per_s)
                lost += dropped
                rate["tcp"].append(tcp_throughput(tcp, args.count, args.size))
        finally:
            container.remove(force=True)
            client.close()
    lat = {name: statistics.median(values) * 1e3 for name, values in latency.items()}
    mbs = {name: statistics.median(values) for name, values in rate.items()}
    print(f"UDP over kubedock's relay vs TCP over its port-forward, one pod, median of "
          f"{args.runs} runs, {os.cpu_count()} cores")
    print(f"  first answer (adds the toolbox)     {first * 1e3:7.0f} ms")
    print(f"  round trip, 64 B      UDP {lat['udp']:6.2f} ms   TCP {lat['tcp']:6.2f} ms   "
          f"ratio {lat['udp'] / lat['tcp']:.2f}")
    print(f"  throughput, {args.size} B    UDP {mbs['udp']:6.2f} MB/s TCP {mbs['tcp']:6.2f} MB/s "
          f"ratio {mbs['udp'] / mbs['tcp']:.2f}   datagrams lost {lost} of "
          f"{args.runs * args.count}")


if __name__ == "__main__":
    main()
