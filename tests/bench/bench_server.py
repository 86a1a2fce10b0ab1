"""A kubedock server on the local cluster in a namespace of its own, for the benchmarks."""

from __future__ import annotations

import os
import signal
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
PEER_ENV = "KUBEDOCK_BENCH_PEER"
"""The path of a Go kubedock built from its public source, for a peer column (skipped without)."""
PROFILE_ENV = "KUBEDOCK_BENCH_PROFILE"


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


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def kubedock_server(*extra: str) -> Iterator[BenchServer]:
    """Start ``python -m kubedock server`` on a fresh namespace, reading images from the
    cluster's registry; delete both afterwards.

    With $KUBEDOCK_BENCH_PROFILE set, py-spy samples the server for the whole run and writes
    its collapsed stacks to that file (`pip install py-spy`).
    """
    with _server([sys.executable, "-m", "kubedock", "server"], *extra, mirrored=True) as server:
        profile = os.environ.get(PROFILE_ENV)
        if not profile:
            yield server
            return
        sampler = subprocess.Popen(
            ["py-spy", "record", "--pid", str(server.process.pid), "--format", "raw",
             "--threads", "--output", profile], stdout=subprocess.DEVNULL)
        try:
            yield server
        finally:
            sampler.send_signal(signal.SIGINT)
            sampler.wait(timeout=60)


@contextmanager
def peer_server(*extra: str) -> Iterator[BenchServer | None]:
    """The Go kubedock named by $KUBEDOCK_BENCH_PEER on a fresh namespace, or None."""
    peer = os.environ.get(PEER_ENV)
    if not peer:
        yield None
        return
    with _server([peer, "server"], *extra) as server:
        yield server


@contextmanager
def _server(command: list[str], *extra: str, mirrored: bool = False) -> Iterator[BenchServer]:
    env = cluster_env()
    if mirrored and "--registry-mirror" not in extra and "REGISTRY" in env:
        # As where kubedock reads images' configs (without them it supervises nothing).
        extra = ("--registry-mirror", f"docker.io=http://{env['REGISTRY']}", *extra)
    kubectl = [env["KUBECTL"], "--kubeconfig", env["KUBECONFIG"]]
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    subprocess.run([*kubectl, "create", "namespace", namespace], check=True, capture_output=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    process = subprocess.Popen(
        [*command, "--listen-addr", f"127.0.0.1:{port}",
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
