"""A kubedock server on the local cluster in a namespace of its own, for the benchmarks."""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]


@attrs.frozen
class BenchServer:
    process: subprocess.Popen[bytes]
    port: int
    namespace: str
    kubeconfig: str
    kubectl: list[str]  # the command, with the kubeconfig


def cluster_env() -> dict[str, str]:
    """``KUBECTL`` and ``KUBECONFIG`` of the local cluster, started if it is not running."""
    output = subprocess.run([ROOT / "build/cluster/up"], capture_output=True, text=True,
                            check=True).stdout
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def timed(work: Callable[[], object], runs: int) -> float:
    """Median seconds of `runs` calls of `work`."""
    seconds = []
    for _ in range(runs):
        begun = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - begun)
    return statistics.median(seconds)


@contextmanager
def kubedock_server(*extra: str) -> Iterator[BenchServer]:
    """Start ``python -m kubedock server`` on a fresh namespace; delete both afterwards."""
    env = cluster_env()
    kubectl = [env["KUBECTL"], "--kubeconfig", env["KUBECONFIG"]]
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    subprocess.run([*kubectl, "create", "namespace", namespace], check=True, capture_output=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "kubedock", "server", "--listen-addr", f"127.0.0.1:{port}",
         "-n", namespace, "--kubeconfig", env["KUBECONFIG"], *extra],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield BenchServer(process, port, namespace, env["KUBECONFIG"], kubectl)
    finally:
        process.terminate()
        process.wait(timeout=60)
        subprocess.run([*kubectl, "delete", "namespace", namespace, "--wait=false"],
                       capture_output=True)
