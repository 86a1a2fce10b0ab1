"""Container start latency through kubedock, against the raw-pod floor measured in the same run.

    .venv/bin/python tests/bench/start_bench.py [--runs N] [--parallel N]

Floor: a pod created directly through the Kubernetes API, timed until the watch reports it
Running. kubedock: ``docker create`` + ``start`` of redis:7 with a published port, timed until a
PING answers through the port-forward. Both run on the local cluster (``build/cluster/up``).
Prints medians and the per-container overhead; not a test.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import trio
from bench_server import kubedock_server

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kubedock import kube  # noqa: E402


async def _raw_pod_seconds(kubeconfig: str, namespace: str, count: int) -> list[float]:
    cluster = await kube.Cluster.connect(kubeconfig=kubeconfig, namespace=namespace)
    running: dict[str, float] = {}
    started: dict[str, float] = {}
    done = trio.Event()

    def on_change(observation: kube.ContainerObservation) -> None:
        name = observation.pod_name
        if observation.state == "running" and name in started and name not in running:
            running[name] = time.perf_counter() - started[name]
            if len(running) == count:
                done.set()

    try:
        async with trio.open_nursery() as nursery:
            selector = f"bench={namespace}"
            await nursery.start(cluster.watch_pods, selector, on_change)
            for index in range(count):
                name = f"floor-{index}-{uuid.uuid4().hex[:6]}"
                started[name] = time.perf_counter()
                await cluster.create_pod({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "labels": {"bench": namespace}},
                    "spec": {"restartPolicy": "Never", "containers": [{
                        "name": "main", "image": "redis:7", "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": 6379}],
                    }]},
                })
            with trio.fail_after(120):
                await done.wait()
            await cluster.delete_all(selector, grace_seconds=0)
            nursery.cancel_scope.cancel()
    finally:
        await cluster.aclose()
    return list(running.values())


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _kubedock_start(client: docker.DockerClient) -> float:
    begun = time.perf_counter()
    container = client.containers.create("redis:7", ports={"6379/tcp": ("127.0.0.1", None)})
    container.start()
    container.reload()
    port = int(container.ports["6379/tcp"][0]["HostPort"])
    while not _ping(port):
        time.sleep(0.005)
    elapsed = time.perf_counter() - begun
    container.remove(force=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=20)
    args = parser.parse_args()
    with kubedock_server("--port-forward") as server:
        kubeconfig, namespace = server.kubeconfig, server.namespace
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}", timeout=120)
        _kubedock_start(client)  # warm-up: first connections, image already imported
        floor = [trio.run(_raw_pod_seconds, kubeconfig, namespace, 1)[0]
                 for _ in range(args.runs)]
        ours = [_kubedock_start(client) for _ in range(args.runs)]
        floor_median, ours_median = statistics.median(floor), statistics.median(ours)
        print(f"sequential, {args.runs} runs (median)")
        print(f"  raw pod create -> Running      {floor_median * 1000:8.0f} ms")
        print(f"  kubedock create+start -> PONG  {ours_median * 1000:8.0f} ms")
        print(f"  overhead per container         {(ours_median - floor_median) * 1000:8.0f} ms"
              f"   (ratio {ours_median / floor_median:.2f})")

        floor_parallel = trio.run(_raw_pod_seconds, kubeconfig, namespace, args.parallel)
        begun = time.perf_counter()
        with ThreadPoolExecutor(args.parallel) as pool:
            ours_parallel = list(pool.map(lambda _: _kubedock_start(client),
                                          range(args.parallel)))
        wall = time.perf_counter() - begun
        print(f"{args.parallel} in parallel")
        print(f"  raw pods: slowest {max(floor_parallel) * 1000:8.0f} ms, "
              f"median {statistics.median(floor_parallel) * 1000:8.0f} ms")
        print(f"  kubedock: slowest {max(ours_parallel) * 1000:8.0f} ms, "
              f"median {statistics.median(ours_parallel) * 1000:8.0f} ms, wall {wall:.1f} s")
        client.close()


if __name__ == "__main__":
    main()
