"""The frozen kubedock against the venv it was built from: size, start time and build time.

    .venv/bin/python tests/bench/binary_bench.py [--runs N] [--no-build]

Start time is from exec to the first `GET /_ping` that answers OK, for `python -m kubedock`
(the baseline), the one-file program and the one-folder program, interleaved so that all three
see the same machine; medians and ratios to the baseline are printed, with the server's idle
RSS (after `--idle` seconds, once its cluster part has started), each against its target
(`/_ping` within 0.5 s of exec, idle RSS at most 60 MiB). The server runs against the local
cluster (build/cluster/up) and starts no pods. The roles that run inside pods are timed from
exec to exit, each in the same three forms, against `python -c pass` (the interpreter's own
start) and their target of 0.15 s. Build time is
`build/binary` on a copy of the tree into an empty cache (cold), then again (warm). Not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BINARY = REPO / "build/binary"
PING_TARGET = 0.5  # seconds from exec to the first /_ping answered
RSS_TARGET = 60.0  # MiB, the idle server
ROLE_TARGET = 0.15  # seconds from exec to exit of a role that runs inside pods


def last_line(command: Sequence[str | Path], env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(part) for part in command], env=env, check=True,
                          stdout=subprocess.PIPE, text=True)  # fmt: skip
    return done.stdout.splitlines()[-1]


def kubeconfig() -> str:
    return last_line([REPO / "build/cluster/status"]).removeprefix("KUBECONFIG=")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(port: int, path: str, timeout: float = 1) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            return sock.recv(4096).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system time the processes have used: unlike wall time, the same on a busy
    machine."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def server_pids(process: subprocess.Popen[bytes]) -> list[int]:
    # The one-file program is a bootloader whose child is the server.
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return [process.pid, *map(int, children)]


def seconds_to_ping(program: Sequence[str], config: str, idle: float = 0
                    ) -> tuple[float, float, float, float]:
    """Seconds from exec to the first `/_ping` answered, the CPU seconds used until then, the
    seconds to the first `/containers/json` (which waits until the cluster part has started),
    and the RSS `idle` seconds later."""
    port = free_port()
    # No DNS role: its pod would be part of the start and is not what is measured here.
    command = [*program, "server", "--listen-addr", f"127.0.0.1:{port}", "-n", "default",
               "--kubeconfig", config, "--network-names", "external"]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while not answers(port, "/_ping"):
            if process.poll() is not None:
                raise SystemExit(f"{command[0]} exited with {process.returncode}")
            if time.perf_counter() - started > 60:
                raise SystemExit(f"{command[0]} did not answer /_ping within 60 s")
            time.sleep(0.005)
        seconds = time.perf_counter() - started
        cpu = cpu_seconds(server_pids(process))
        if not answers(port, "/containers/json", timeout=60):
            raise SystemExit(f"{command[0]} did not become ready")
        ready = time.perf_counter() - started
        time.sleep(idle)
        return seconds, cpu, ready, max(rss_mib(pid) for pid in server_pids(process))
    finally:
        process.terminate()
        process.wait(timeout=60)


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def timed(command: Sequence[str | Path], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    last_line(command, env)
    return time.perf_counter() - started


def build_times() -> None:
    """Cold and warm build/binary on a copy of the tree, which edits elsewhere cannot change."""
    with tempfile.TemporaryDirectory(prefix="kd-binary-bench-") as scratch:
        tree = Path(scratch) / "tree"
        for part in ("kubedock", "build/binary", "build/cluster/versions"):
            copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy2
            (tree / part).parent.mkdir(parents=True, exist_ok=True)
            copy(REPO / part, tree / part)
        for part in ("pyinstaller.spec", "pyproject.toml"):
            shutil.copy2(REPO / part, tree / part)
        (tree / ".venv").symlink_to(REPO / ".venv")
        env = {**os.environ, "KUBEDOCK_DEV_CACHE": str(Path(scratch) / "cache")}
        print(f"build/binary cold: {timed([tree / 'build/binary'], env):.1f} s")
        print(f"build/binary warm: {timed([tree / 'build/binary'], env):.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-build", action="store_true", help="skip the build timing (~40 s)")
    parser.add_argument("--idle", type=float, default=5,
                        help="seconds of idling before the server's RSS is read (default 5)")
    args = parser.parse_args()

    if not args.no_build:
        build_times()
    onefile = Path(last_line([BINARY]))
    onedir = Path(last_line([BINARY, "--onedir"]))
    image = Path(last_line([REPO / "build/images/build"])) / "kubedock.tar"
    print(f"size one-file: {tree_bytes(onefile) / 1e6:.1f} MB")
    print(f"size one-folder: {tree_bytes(onedir.parent) / 1e6:.1f} MB")
    print(f"size image (docker save archive, uncompressed): {image.stat().st_size / 1e6:.1f} MB")

    config = kubeconfig()
    programs = {
        "venv (python -m kubedock)": [sys.executable, "-m", "kubedock"],
        "one-file": [str(onefile)],
        "one-folder": [str(onedir)],
    }
    samples: dict[str, list[float]] = {name: [] for name in programs}
    cpu: dict[str, list[float]] = {name: [] for name in programs}
    readiness: dict[str, list[float]] = {name: [] for name in programs}
    rss: dict[str, list[float]] = {name: [] for name in programs}
    for _ in range(args.runs):
        for name, program in programs.items():
            seconds, cpu_used, ready, mib = seconds_to_ping(program, config, args.idle)
            samples[name].append(seconds)
            cpu[name].append(cpu_used)
            readiness[name].append(ready)
            rss[name].append(mib)
    baseline = statistics.median(samples["venv (python -m kubedock)"])
    print(f"exec to /_ping, median of {args.runs}:")
    for name, times in samples.items():
        median = statistics.median(times)
        mib = statistics.median(rss[name])
        print(f"  {name:28} {median:.3f} s  x{median / baseline:.2f}  "
              f"(min {min(times):.3f}, max {max(times):.3f}; {_against(median, PING_TARGET)})  "
              f"idle RSS {mib:.0f} MiB ({_against(mib, RSS_TARGET)})")  # fmt: skip
    print(f"CPU time (user + system) from exec to /_ping, median of {args.runs}:")
    for name, times in cpu.items():
        median = statistics.median(times)
        print(f"  {name:28} {median:.3f} s  ({_against(median, PING_TARGET)})")
    print(f"exec to ready (/containers/json answered), median of {args.runs}:")
    for name, times in readiness.items():
        print(f"  {name:28} {statistics.median(times):.3f} s  "
              f"(min {min(times):.3f}, max {max(times):.3f})")
    pod_roles(programs, args.runs)


# Each role as a pod starts it, with arguments that make it return at once.
_ROLES = {
    "toolbox (usage)": ["toolbox"],
    "archive stat /": ["archive", "stat", "/"],
    "init --help": ["init", "--help"],
    "offline --help": ["offline", "--help"],
    "dind --help": ["dind", "--help"],
    "dns --help": ["dns", "--help"],
}


def pod_roles(programs: dict[str, list[str]], runs: int) -> None:
    """Exec-to-exit of the roles that run inside pods, against `python -c pass`."""
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(runs):
        samples.setdefault(("python -c pass", ""), []).append(
            exit_seconds([sys.executable, "-c", "pass"]))
        for role, argv in _ROLES.items():
            for name, program in programs.items():
                samples.setdefault((role, name), []).append(exit_seconds([*program, *argv]))
    floor = statistics.median(samples.pop(("python -c pass", "")))
    print(f"pod roles, exec to exit, median of {runs} (python -c pass: {floor:.3f} s):")
    for (role, name), times in samples.items():
        median = statistics.median(times)
        print(f"  {role:16} {name:28} {median:.3f} s  "
              f"(min {min(times):.3f}; {_against(median, ROLE_TARGET)})")


def _against(value: float, target: float) -> str:
    """The share of its target a measure takes, and whether it is met."""
    return f"{value / target:.2f}x target {target:g}, {'met' if value <= target else 'not met'}"


def exit_seconds(command: Sequence[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
