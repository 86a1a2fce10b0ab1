"""Container start latency through kubedock, against the raw-pod floor measured in the same run.

    .venv/bin/python tests/bench/start_bench.py [--runs N] [--parallel N]
    .venv/bin/python tests/bench/start_bench.py --keep-exited-files never always [--runs N]

Floor: a pod created directly through the Kubernetes API, timed until the watch reports it
Running. kubedock: ``docker create`` + ``start`` of redis:7 with a published port, timed until a
PING answers through the port-forward. Both run on the local cluster (``build/cluster/up``).
Every measurement starts once the pods of the one before are gone, so that no start competes
with another's teardown; a parallel batch waits `--settle` seconds more, since the node goes on
tearing 20 pods down (sandboxes, network) after the API has forgotten them, which slowed the
batch that followed by 1-3 s. Prints medians and the per-container overhead; not a test.
With ``--keep-exited-files``, one server per policy (the images' configs from the cluster's
registry, without which no container is supervised), the sequential starts only, each run
measuring the floor and then every server, the first turning from run to run.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import trio
from bench_server import cluster_env, kubedock_server
from docker.models.containers import Container

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kubedock import kube  # noqa: E402


async def _raw_pod_seconds(kubeconfig: str, namespace: str, count: int) -> list[float]:
    cluster = await kube.Cluster.connect(kubeconfig=kubeconfig, namespace=namespace)
    running: dict[str, float] = {}
    started: dict[str, float] = {}
    gone: set[str] = set()
    all_running, all_gone = trio.Event(), trio.Event()

    def on_change(observation: kube.ContainerObservation) -> None:
        name = observation.pod_name
        if observation.deleted:
            gone.add(name)
            if len(gone) == count:
                all_gone.set()
        elif observation.state == "running" and name in started and name not in running:
            running[name] = time.perf_counter() - started[name]
            if len(running) == count:
                all_running.set()

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
                await all_running.wait()
            await cluster.delete_all(selector, grace_seconds=0)
            # The next measurement starts on a node that is not tearing these pods down.
            with trio.fail_after(120):
                await all_gone.wait()
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


def _kubedock_start(client: docker.DockerClient) -> tuple[float, Container]:
    begun = time.perf_counter()
    container = client.containers.create("redis:7", ports={"6379/tcp": ("127.0.0.1", None)})
    container.start()
    container.reload()
    port = int(container.ports["6379/tcp"][0]["HostPort"])
    while not _ping(port):
        time.sleep(0.005)
    return time.perf_counter() - begun, container


def _kubedock_seconds(client: docker.DockerClient, kubectl: list[str], namespace: str,
                      count: int, parallel: bool) -> list[float]:
    """Start `count` containers, one after the other or all at once; remove them afterwards,
    as the floor does, so that no start competes with another container's teardown."""
    if parallel:
        with ThreadPoolExecutor(count) as pool:
            started = list(pool.map(lambda _: _kubedock_start(client), range(count)))
    else:
        started = [_kubedock_start(client) for _ in range(count)]
    for _, container in started:
        container.remove(force=True)
    _wait_until_no_pods(kubectl, namespace)
    return [seconds for seconds, _ in started]


def _wait_until_no_pods(kubectl: list[str], namespace: str) -> None:
    """Until the removed containers' pods are gone (not only being deleted)."""
    while subprocess.run([*kubectl, "-n", namespace, "get", "pods", "-o", "name",
                          "-l", "kubedock.containerid"],
                         capture_output=True, text=True, check=True).stdout.strip():
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--settle", type=float, default=20,
                        help="seconds to wait before each parallel batch (default 20)")
    parser.add_argument("--keep-exited-files", nargs="+", choices=("never", "auto", "always"),
                        help="compare servers with these policies in one run")
    args = parser.parse_args()
    if args.keep_exited_files:
        _compare_policies(args.keep_exited_files, args.runs)
        return
    with kubedock_server("--port-forward") as server:
        kubeconfig, namespace = server.kubeconfig, server.namespace
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}", timeout=120)
        kubectl = server.kubectl
        _kubedock_seconds(client, kubectl, namespace, 1, parallel=False)  # warm-up
        floor = [trio.run(_raw_pod_seconds, kubeconfig, namespace, 1)[0]
                 for _ in range(args.runs)]
        ours = [_kubedock_seconds(client, kubectl, namespace, 1, parallel=False)[0]
                for _ in range(args.runs)]
        floor_median, ours_median = statistics.median(floor), statistics.median(ours)
        print(f"sequential, {args.runs} runs (median)")
        print(f"  raw pod create -> Running      {floor_median * 1000:8.0f} ms")
        print(f"  kubedock create+start -> PONG  {ours_median * 1000:8.0f} ms")
        print(f"  overhead per container         {(ours_median - floor_median) * 1000:8.0f} ms"
              f"   (ratio {ours_median / floor_median:.2f})")

        time.sleep(args.settle)
        floor_parallel = trio.run(_raw_pod_seconds, kubeconfig, namespace, args.parallel)
        time.sleep(args.settle)
        ours_parallel = _kubedock_seconds(client, kubectl, namespace, args.parallel,
                                          parallel=True)
        print(f"{args.parallel} in parallel")
        print(f"  raw pods: slowest {max(floor_parallel) * 1000:8.0f} ms, "
              f"median {statistics.median(floor_parallel) * 1000:8.0f} ms")
        print(f"  kubedock: slowest {max(ours_parallel) * 1000:8.0f} ms, "
              f"median {statistics.median(ours_parallel) * 1000:8.0f} ms")
        client.close()


def _compare_policies(policies: list[str], runs: int) -> None:
    registry = cluster_env().get("REGISTRY")
    mirror = ["--registry-mirror", f"docker.io=http://{registry}"] if registry else []
    with contextlib.ExitStack() as stack:
        servers = {policy: stack.enter_context(kubedock_server(
            "--port-forward", "--keep-exited-files", policy, *mirror)) for policy in policies}
        clients = {policy: docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}",
                                               timeout=120) for policy, server in servers.items()}
        for policy, server in servers.items():  # warm-up: the image, the supervisor's ConfigMap
            _kubedock_seconds(clients[policy], server.kubectl, server.namespace, 1,
                              parallel=False)
        time.sleep(5)
        any_server = next(iter(servers.values()))
        floor: list[float] = []
        ours: dict[str, list[float]] = {policy: [] for policy in policies}
        for run in range(runs):
            floor.append(trio.run(_raw_pod_seconds, any_server.kubeconfig,
                                  any_server.namespace, 1)[0])
            for policy in (policies if run % 2 == 0 else policies[::-1]):
                server = servers[policy]
                ours[policy].append(_kubedock_seconds(clients[policy], server.kubectl,
                                                      server.namespace, 1, parallel=False)[0])
        floor_median = statistics.median(floor)
        print(f"sequential, {runs} runs (median)")
        print(f"  raw pod create -> Running        {floor_median * 1000:8.0f} ms")
        for policy in policies:
            median = statistics.median(ours[policy])
            print(f"  --keep-exited-files {policy:6} -> PONG {median * 1000:8.0f} ms"
                  f"   (ratio {median / floor_median:.2f})")
        for client in clients.values():
            client.close()


if __name__ == "__main__":
    main()
