"""Benchmark of kubedock's DNS role (prints figures; not a test).

    .venv/bin/python tests/bench/dns_bench.py            # loopback: 300 networks x 3 pods
    .venv/bin/python tests/bench/dns_bench.py --cluster  # also: pod Ready -> alias resolves

Loopback: the role's server with an in-memory view of 900 pods whose addresses are loopback
addresses, so real UDP queries come from "pods"; reports answers per second and latency for
names of the querier's network, and the cost of rebuilding the view.
Cluster: a kubedock server in DNS mode; for each new redis container with a fresh alias, the time
from `start` returning (the pod runs) until a busybox on the same network resolves the alias; and
what a lookup as a container's first instruction adds to `docker run --rm` (its first answer
waits until the kubelet has reported the new pod).
"""

from __future__ import annotations

import argparse
import ipaddress
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import dns.message
import trio

from kubedock.dns import PodEntry, View, Views, serve_dns

NETWORKS, PODS_PER_NETWORK = 300, 3
CONCURRENCY, QUERIES_PER_CLIENT = (1, 32), 400


def pod_ip(network: int, member: int) -> str:
    return f"127.{10 + network // 200}.{network % 200}.{member + 1}"


def build_view() -> tuple[View, float]:
    entries = [
        PodEntry((pod_ip(n, m),), (f"pod-{n}-{m}", ("db", "app", "cache")[m]),
                 frozenset({f"network-{n}"}), "ready")
        for n in range(NETWORKS) for m in range(PODS_PER_NETWORK)
    ]
    started = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        view = View(entries, ("ns.svc.cluster.local", "svc.cluster.local", "cluster.local"))
    return view, (time.perf_counter() - started) / rounds


async def client(port: int, network: int, latencies: list[float]) -> None:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with sock:
        await sock.bind((pod_ip(network, 1), 0))
        await sock.connect(("127.0.0.1", port))
        wire = dns.message.make_query("db.ns.svc.cluster.local.", "A").to_wire()
        # One A record, the last bytes of the answer: db's address.
        expected = ipaddress.IPv4Address(pod_ip(network, 0)).packed
        for _ in range(QUERIES_PER_CLIENT):
            started = time.perf_counter()
            await sock.send(wire)
            reply = await sock.recv(512)
            latencies.append(time.perf_counter() - started)
            assert reply.endswith(expected), dns.message.from_wire(reply)


def serve_in_child(ports: Connection) -> None:
    """The server in its own process, so that the clients do not share its core."""
    view, rebuild = build_view()

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            # The upstream is never asked: every query names a pod.
            port = await nursery.start(partial(serve_dns, Views(view), ("127.0.0.1", 9),
                                               host="127.0.0.1", port=0))
            ports.send((port, rebuild))

    trio.run(serve)


def loopback() -> None:
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve_in_child, args=(child,), daemon=True)
    server.start()
    port, rebuild = parent.recv()
    print(f"view of {NETWORKS} networks x {PODS_PER_NETWORK} pods: rebuilt in "
          f"{rebuild * 1000:.2f} ms")
    try:
        for clients in CONCURRENCY:
            trio.run(ask_concurrently, port, clients)
    finally:
        server.terminate()
        server.join()


async def ask_concurrently(port: int, concurrency: int) -> None:
    latencies: list[float] = []
    started = time.perf_counter()
    async with trio.open_nursery() as clients:
        for index in range(concurrency):
            clients.start_soon(client, port, index * NETWORKS // concurrency, latencies)
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(f"{len(latencies)} A queries from {concurrency} concurrent pod(s) in {elapsed:.2f} s: "
          f"{len(latencies) / elapsed:.0f} answers/s")
    print(f"latency p50 {statistics.median(latencies) * 1000:.2f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.2f} ms "
          f"(server in its own process; 2 cores)")


def wait_until_resolved(app: Any, alias: str, resolved: list[float]) -> None:
    """Resolve ``alias`` inside ``app`` every 20 ms until it works; note when it did."""
    app.exec_run(["sh", "-c", f"until nslookup {alias} >/dev/null 2>&1; do sleep 0.02; done"])
    resolved.append(time.perf_counter())


def cluster_figures(rounds: int) -> None:
    import docker

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e" / "docker"))
    from e2e_cluster import Cluster, succeeds, wait_for
    from kubedock_server import start_kubedock, stop_kubedock

    root = Path(__file__).resolve().parents[2]
    status = subprocess.run([str(root / "build/cluster/status")], capture_output=True,
                            text=True, check=True).stdout
    outputs = dict(line.split("=", 1) for line in status.splitlines() if line.startswith("KUBE"))
    cluster = Cluster(kubeconfig=Path(outputs["KUBECONFIG"]),
                      kubectl_path=Path(outputs["KUBECTL"]))
    namespace = f"dns-bench-{os.getpid()}"
    cluster.kubectl("create", "namespace", namespace)
    wait_for(lambda: succeeds(cluster, "-n", namespace, "get", "serviceaccount", "default"),
             what="the namespace's default service account")
    process = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            process, server = start_kubedock(cluster, namespace, Path(tmp))
            client = docker.DockerClient(base_url=server.host, timeout=120)
            client.networks.create("bench")
            app = client.containers.run("busybox:1.36", ["sleep", "3600"], detach=True,
                                        network="bench")
            figures = []
            for index in range(rounds):
                alias = f"db{index}"
                db = client.containers.create(
                    "redis:7", network="bench",
                    networking_config={"bench": client.api.create_endpoint_config(
                        aliases=[alias])})
                resolved: list[float] = []
                waiter = threading.Thread(target=wait_until_resolved,
                                          args=(app, alias, resolved))
                waiter.start()
                db.start()
                running = time.perf_counter()
                waiter.join(timeout=60)
                figures.append(resolved[0] - running)
                db.remove(force=True)
            figures.sort()
            print(f"pod running -> alias resolves (busybox nslookup every 20 ms, {rounds} "
                  f"pods): median {statistics.median(figures) * 1000:.0f} ms, "
                  f"max {figures[-1] * 1000:.0f} ms")
            first_lookup_cost(client, rounds)
            app.remove(force=True)
            client.close()
    finally:
        if process is not None:
            stop_kubedock(process)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def first_lookup_cost(client: Any, rounds: int) -> None:
    """`docker run --rm --network bench busybox nslookup db` against `... busybox true`."""
    db = client.containers.run("redis:7", detach=True, network="bench", networking_config={
        "bench": client.api.create_endpoint_config(aliases=["db"])})
    runs: dict[str, list[float]] = {"true": [], "nslookup db": []}
    for _ in range(rounds):
        for command, times in runs.items():
            started = time.perf_counter()
            client.containers.run("busybox:1.36", command.split(), network="bench", remove=True)
            times.append(time.perf_counter() - started)
    db.remove(force=True)
    plain, lookup = (statistics.median(times) for times in runs.values())
    print(f"docker run --rm, {rounds} each: `true` median {plain * 1000:.0f} ms, `nslookup db` "
          f"as first instruction {lookup * 1000:.0f} ms (+{(lookup - plain) * 1000:.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", action="store_true", help="also measure on the cluster")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    loopback()
    if args.cluster:
        cluster_figures(args.rounds)


if __name__ == "__main__":
    main()
