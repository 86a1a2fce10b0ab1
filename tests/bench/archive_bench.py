"""Archive throughput and init-container cost through kubedock, with baselines from the same run.

    KUBEDOCK_BENCH_PEER=~/.cache/kubedock-bench/kubedock \
    .venv/bin/python tests/bench/archive_bench.py [--runs N] [--sizes 1,100] [--no-start]

Throughput: `put_archive` and `get_archive` (docker-py) of one file of each size (MB), into a
running busybox pod that has kubedock's own program (it got the init container) and into one
that has not (the image's tar), against the floor of `kubectl exec -i ... tar` with the same
bytes, and against the Go kubedock (a binary built from its public source, named by
$KUBEDOCK_BENCH_PEER, e.g. `CGO_ENABLED=0 go build` in a copy of
github.com/joyrex2001/kubedock; the column is skipped without it) on a busybox pod of its
own. kubedock's peak RSS (VmHWM) after each size shows whether archives stream; each server's
CPU seconds per GB put and got are read from /proc.
With `--pod-network-never`, a second kubedock with `--pod-network never` adds a column for its
own program in the pod reached through port-forwards (the same copies without the pod
network, in the same run). Init container: `create` + `start` until running, of a plain
busybox and of one with a bind mount. Prints medians; not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import docker
from bench_server import (
    BenchServer,
    kubedock_server,
    peak_rss_mb,
    peer_server,
    process_cpu_seconds,
    timed,
)
from docker.models.containers import Container

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


def one_file_tar(size: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("blob.bin")
        info.size = size
        archive.addfile(info, io.BytesIO(os.urandom(size)))
    return buffer.getvalue()


def started_seconds(client: docker.DockerClient, runs: int, **options: object) -> float:
    def once() -> None:
        container = client.containers.create("busybox:1.36", ["sleep", "600"], **options)
        container.start()
        timings.append(time.perf_counter() - begun[0])
        container.remove(force=True)

    timings: list[float] = []
    begun = [0.0]
    for _ in range(runs):
        begun[0] = time.perf_counter()
        once()
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1,100")
    parser.add_argument("--no-start", action="store_true", help="skip the init container timing")
    parser.add_argument("--pod-network-never", action="store_true",
                        help="add a kubedock with --pod-network never")
    args = parser.parse_args()
    options = ("--port-forward", "--network-names", "services")
    with kubedock_server(*options) as server, peer_server() as peer, \
            contextlib.ExitStack() as cleanup:
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}", timeout=300)
        cleanup.callback(client.close)
        if not args.no_start:
            print_start_costs(client, args.runs)
        tooled = tooled_container(client, cleanup)
        plain_container = client.containers.run("busybox:1.36", ["sleep", "600"], detach=True)
        cleanup.callback(plain_container.remove, force=True)
        targets = {"kubedock, own program": (tooled, server),
                   "kubedock, image's tar": (plain_container, server)}
        if args.pod_network_never:
            off = cleanup.enter_context(kubedock_server(*options, "--pod-network", "never"))
            off_client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{off.port}", timeout=300)
            cleanup.callback(off_client.close)
            targets["kubedock, own, no pod net"] = (tooled_container(off_client, cleanup), off)
        if peer is not None:
            peer_client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{peer.port}",
                                              timeout=300)
            cleanup.callback(peer_client.close)
            peer_container = peer_client.containers.run("busybox:1.36", ["sleep", "600"],
                                                        detach=True)
            cleanup.callback(peer_container.remove, force=True)
            targets["Go kubedock"] = (peer_container, peer)
        compare_archives(args, targets, plain_container)


def tooled_container(client: docker.DockerClient, cleanup: contextlib.ExitStack) -> Container:
    """A running busybox whose pod has kubedock's program (it got the init container)."""
    container = client.containers.create("busybox:1.36", ["sleep", "600"])
    cleanup.callback(container.remove, force=True)
    container.put_archive("/", one_file_tar(1))  # staged before start: the pod gets setup
    container.start()
    return container


def print_start_costs(client: docker.DockerClient, runs: int) -> None:
    with tempfile.TemporaryDirectory() as bind:
        Path(bind, "small.txt").write_text("small\n")
        started_seconds(client, 1)  # warm-up
        plain = started_seconds(client, runs)
        with_bind = started_seconds(client, runs, volumes={bind: {"bind": "/b"}})
    print(f"create+start -> running, median of {runs}")
    print(f"  plain busybox            {plain * 1000:8.0f} ms")
    print(f"  with a bind (init)       {with_bind * 1000:8.0f} ms   "
          f"(init container overhead {(with_bind - plain) * 1000:.0f} ms, "
          f"ratio {with_bind / plain:.2f})")


def compare_archives(args: argparse.Namespace, targets: dict[str, tuple[Container, BenchServer]],
                     plain_container: Container) -> None:
    """Put and get through every target, one run of each in turn; print medians and ratios."""
    server = targets["kubedock, image's tar"][1]
    kubectl, namespace = server.kubectl, server.namespace
    pod = subprocess.run(
        [*kubectl, "-n", namespace, "get", "pods", "-o", "name",
         "-l", f"kubedock.containerid={plain_container.id[:12]}"],
        capture_output=True, text=True, check=True).stdout.strip()
    servers: dict[str, BenchServer] = {}  # each server once, by its first target's label
    for label, (_, each) in targets.items():
        if each not in servers.values():
            servers[label.partition(",")[0] + (" (no pod net)" if "no pod net" in label
                                               else "")] = each
    print("RSS peak before archives: " + ", ".join(
        f"{name} {peak_rss_mb(each.process.pid):.0f} MiB" for name, each in servers.items()))
    for size_mb in (int(text) for text in args.sizes.split(",")):
        data = one_file_tar(size_mb * MB)

        def floor_put(data: bytes = data) -> None:
            subprocess.run([*kubectl, "-n", namespace, "exec", "-i", pod, "-c", "main", "--",
                            "tar", "-x", "-C", "/tmp"], input=data, check=True,
                           capture_output=True)

        def floor_get() -> None:
            subprocess.run([*kubectl, "-n", namespace, "exec", pod, "-c", "main", "--", "tar",
                            "-c", "-C", "/tmp", "blob.bin"], check=True, capture_output=True)

        seconds: dict[tuple[str, str], list[float]] = {}
        cpu = {label: 0.0 for label in targets}
        for _ in range(args.runs):
            for kind, work in (("put", floor_put), ("get", floor_get)):
                seconds.setdefault(("kubectl exec tar", kind), []).append(timed(work, 1))
            for label, (container, owner) in targets.items():
                used = process_cpu_seconds(owner.process.pid)
                seconds.setdefault((label, "put"), []).append(timed(
                    lambda c=container, d=data: c.put_archive("/tmp", d), 1))
                seconds.setdefault((label, "get"), []).append(timed(
                    lambda c=container: _drain(c), 1))
                cpu[label] += process_cpu_seconds(owner.process.pid) - used
        rate = {key: size_mb / statistics.median(value) for key, value in seconds.items()}
        baseline = "Go kubedock" if "Go kubedock" in targets else "kubectl exec tar"
        print(f"{size_mb} MB, median of {args.runs} (MB/s; ratio to {baseline}; "
              f"server CPU s per GB put+got)")
        for label in ("kubectl exec tar", *targets):
            line = f"  {label:22}"
            for kind in ("put", "get"):
                ratio = rate[(label, kind)] / rate[(baseline, kind)]
                line += f" {kind} {rate[(label, kind)]:7.1f} ({ratio:.2f})  "
            if label in cpu:
                line += f" CPU {cpu[label] / (2 * args.runs * size_mb * MB / 1e9):6.2f}"
            print(line)
        print("  RSS peak so far: " + ", ".join(
            f"{name} {peak_rss_mb(each.process.pid):.0f} MiB" for name, each in servers.items()))


def _drain(container: Container) -> None:
    chunks, _ = container.get_archive("/tmp/blob.bin", chunk_size=256 * 1024)
    for _ in chunks:
        pass


if __name__ == "__main__":
    main()
