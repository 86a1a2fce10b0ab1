"""What keeping an exited container's files costs: starts and one-shot runs with and without
kubedock's supervisor, measured in the same run.

    .venv/bin/python tests/bench/supervise_bench.py [--runs N] [--policy auto|always]

Two servers on the local cluster, one with ``--keep-exited-files never`` and one with
``--policy`` (the default ``auto``); each case runs on both, one after the other, the first
turning from run to run. "start" is create+start until the start returns, "run" is
create+start+wait of ``true`` (a one-shot container until its exit is reported). Cases
(``--cases``): a plain container (supervised by ``always`` only), one with an anonymous volume
of its own (the supervisor comes from the instance's ConfigMap), one with a bind (both have the
init container; the supervised one adds the wait and the write-back). Every measurement starts
once the pods of the one before are gone. Prints medians and means; not a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

import docker
from bench_server import BenchServer, kubedock_server

CASES: dict[str, Callable[[str], dict[str, Any]]] = {
    "plain": lambda _: {},
    "volume": lambda _: {"volumes": ["/vol1"]},
    "bind": lambda source: {"volumes": ["/mnt"], "host_config_binds": {
        source: {"bind": "/mnt", "mode": "rw"}}},
}


def _settled(server: BenchServer) -> None:
    """Until the pods of the removed containers are gone and the node has had a moment:
    a start that competes with another pod's teardown measures the teardown."""
    while subprocess.run([*server.kubectl, "-n", server.namespace, "get", "pods", "-o", "name",
                          "-l", "kubedock.containerid"],
                         capture_output=True, text=True, check=True).stdout.strip():
        time.sleep(0.2)
    time.sleep(1)


def _once(client: docker.DockerClient, options: dict[str, Any], *, wait: bool) -> float:
    binds = options.pop("host_config_binds", None)
    host_config = client.api.create_host_config(binds=binds) if binds else None
    begun = time.perf_counter()
    container = client.api.create_container("busybox:1.36", ["true"] if wait
                                            else ["sleep", "300"], host_config=host_config,
                                            **options)["Id"]
    client.api.start(container)
    if wait:
        client.api.wait(container, timeout=120)
    seconds = time.perf_counter() - begun
    client.api.remove_container(container, force=True, v=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--policy", choices=("auto", "always"), default="auto")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    args = parser.parse_args()
    source = tempfile.mkdtemp(prefix="supervise-bench-")
    with kubedock_server("--keep-exited-files", "never") as never, \
            kubedock_server("--keep-exited-files", args.policy) as supervising:
        servers = {"never": never, args.policy: supervising}
        clients = {name: docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}",
                                             timeout=120)
                   for name, server in servers.items()}
        results: dict[tuple[str, str, str], list[float]] = {}
        for client in clients.values():  # warm-up
            _once(client, CASES["volume"](source), wait=True)
        time.sleep(5)  # the supervisor's copy out of the first supervised pod into a ConfigMap
        for run in range(args.runs):
            for case in args.cases:
                for wait, what in ((False, "start"), (True, "run")):
                    # Which server goes first turns from run to run.
                    for name in sorted(servers, reverse=bool(run % 2)):
                        _settled(servers[name])
                        results.setdefault((case, what, name), []).append(
                            _once(clients[name], CASES[case](source), wait=wait))
        # The kubelet reports a start on its once-a-second relist: times bunch up a second
        # apart, and a median of few runs flips between the bunches; the mean does not.
        print(f"{args.runs} runs, median (mean): never | {args.policy} | difference of the means")
        for case in args.cases:
            for what in ("start", "run"):
                never_s = results[(case, what, "never")]
                other_s = results[(case, what, args.policy)]
                print(f"  {case:7} {what:6} {_summary(never_s)} | {_summary(other_s)} | "
                      f"{(statistics.mean(other_s) - statistics.mean(never_s)) * 1000:+6.0f} ms")
        for client in clients.values():
            client.close()


def _summary(seconds: list[float]) -> str:
    return (f"{statistics.median(seconds) * 1000:5.0f} ms "
            f"({statistics.mean(seconds) * 1000:5.0f} ms)")


if __name__ == "__main__":
    main()
