"""How fast the local test cluster comes back and how much memory it holds.

usage: .venv/bin/python tests/bench/cluster_bench.py [--runs N]   (root; restarts the cluster)

Each run is build/cluster/down followed by a warm build/cluster/up (binaries and images cached),
timed until up returns: node Ready, CoreDNS answering, the default ServiceAccount present.
Memory is the resident set of the cluster's processes once up has returned: the components
from their pid files, plus containerd's shims and everything they run (pause, CoreDNS, pods).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "build/cluster"
SHIM_MARK = b"-address\x00/run/containerd/containerd.sock"


def run(script: str) -> str:
    return subprocess.run(
        [str(CLUSTER / script)], check=True, capture_output=True, text=True
    ).stdout


def state_dir() -> Path:
    shell = f". {CLUSTER}/versions; echo $KD_CACHE/cluster"
    return Path(
        subprocess.run(
            ["bash", "-c", shell], check=True, capture_output=True, text=True
        ).stdout.strip()
    )


def rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0  # a kernel thread or a zombie


def processes() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) for every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        table[int(entry.name)] = (parent, cmdline)
    return table


def descendants(roots: Iterable[int], table: dict[int, tuple[int, bytes]]) -> set[int]:
    found = set(roots)
    grew = True
    while grew:
        children = {pid for pid, (parent, _) in table.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return found


def memory() -> dict[str, int]:
    """Resident KiB per component, plus one entry for all pods and their shims."""
    table = processes()
    per_component = {}
    for pidfile in sorted((state_dir() / "run").glob("*.pid")):
        pid = int(pidfile.read_text())
        per_component[pidfile.stem] = rss_kib(pid)
    shims = [pid for pid, (_, cmdline) in table.items() if SHIM_MARK in cmdline]
    per_component["pods (shims, pause, containers)"] = sum(
        rss_kib(pid) for pid in descendants(shims, table)
    )
    return per_component


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs

    run("up")  # builds and imports whatever is missing, so every timed run is warm
    times = []
    for number in range(1, runs + 1):
        started = time.monotonic()
        run("down")
        stopped = time.monotonic()
        run("up")
        times.append(time.monotonic() - stopped)
        print(f"run {number}: down {stopped - started:.1f} s, then up ready in {times[-1]:.1f} s")
    print(
        f"warm up: median {statistics.median(times):.1f} s, "
        f"min {min(times):.1f} s, max {max(times):.1f} s over {runs} runs"
    )

    usage = memory()
    width = max(map(len, usage))
    for name, kib in sorted(usage.items(), key=lambda item: -item[1]):
        print(f"  {name:<{width}}  {kib / 1024:7.1f} MiB")
    print(f"  {'total':<{width}}  {sum(usage.values()) / 1024:7.1f} MiB")


if __name__ == "__main__":
    main()
