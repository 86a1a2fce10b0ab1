"""Archive throughput and init-container cost through kubedock, with baselines from the same run.

    .venv/bin/python tests/bench/archive_bench.py [--runs N] [--sizes 1,100]

Throughput: `put_archive` and `get_archive` (docker-py) of one file of each size (MB), into a
running busybox pod that has kubedock's own program (it got the init container) and into one
that has not (the image's tar), against the floor of `kubectl exec -i ... tar` with the same
bytes. kubedock's peak RSS (VmHWM) after each size shows whether archives stream.
Init container: `create` + `start` until running, of a plain busybox and of one with a bind
mount. Prints medians; not a test.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import docker
from bench_server import kubedock_server, timed
from docker.models.containers import Container

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


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
    args = parser.parse_args()
    with kubedock_server("--port-forward", "--network-names", "services") as server:
        kubectl, namespace = server.kubectl, server.namespace
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}", timeout=300)
        with tempfile.TemporaryDirectory() as bind:
            Path(bind, "small.txt").write_text("small\n")
            started_seconds(client, 1)  # warm-up
            plain = started_seconds(client, args.runs)
            with_bind = started_seconds(client, args.runs, volumes={bind: {"bind": "/b"}})
        print(f"create+start -> running, median of {args.runs}")
        print(f"  plain busybox            {plain * 1000:8.0f} ms")
        print(f"  with a bind (init)       {with_bind * 1000:8.0f} ms   "
              f"(init container overhead {(with_bind - plain) * 1000:.0f} ms, "
              f"ratio {with_bind / plain:.2f})")

        tooled = client.containers.create("busybox:1.36", ["sleep", "600"])
        tooled.put_archive("/", one_file_tar(1))  # staged before start: the pod gets setup
        tooled.start()
        plain_container = client.containers.run("busybox:1.36", ["sleep", "600"], detach=True)
        pods = {
            container.id: subprocess.run(
                [*kubectl, "-n", namespace, "get", "pods", "-o", "name",
                 "-l", f"kubedock.containerid={container.id[:12]}"],
                capture_output=True, text=True, check=True).stdout.strip()
            for container in (tooled, plain_container)
        }
        print(f"kubedock RSS peak before archives: {peak_rss_mb(server.process.pid):.0f} MB")
        for size_mb in (int(text) for text in args.sizes.split(",")):
            data = one_file_tar(size_mb * MB)
            pod = pods[plain_container.id]

            def floor_put(data: bytes = data, pod: str = pod) -> None:
                subprocess.run([*kubectl, "-n", namespace, "exec", "-i", pod, "--", "tar",
                                "-x", "-C", "/tmp"], input=data, check=True,
                               capture_output=True)

            def floor_get(pod: str = pod) -> None:
                subprocess.run([*kubectl, "-n", namespace, "exec", pod, "--", "tar", "-c",
                                "-C", "/tmp", "blob.bin"], check=True, capture_output=True)

            floor = (timed(floor_put, args.runs), timed(floor_get, args.runs))
            print(f"{size_mb} MB, median of {args.runs} (MB/s; ratio to kubectl exec tar)")
            print(f"  kubectl exec tar       put {size_mb / floor[0]:7.1f}   "
                  f"get {size_mb / floor[1]:7.1f}")
            for label, container in (("kubedock, own program", tooled),
                                     ("kubedock, image's tar", plain_container)):
                put = timed(lambda c=container, d=data: c.put_archive("/tmp", d), args.runs)
                get = timed(lambda c=container: _drain(c), args.runs)
                print(f"  {label:22} put {size_mb / put:7.1f} ({floor[0] / put:.2f})   "
                      f"get {size_mb / get:7.1f} ({floor[1] / get:.2f})")
            print(f"  kubedock RSS peak so far: {peak_rss_mb(server.process.pid):.0f} MB")
        for container in (tooled, plain_container):
            container.remove(force=True)
        client.close()


def _drain(container: Container) -> None:
    chunks, _ = container.get_archive("/tmp/blob.bin", chunk_size=256 * 1024)
    for _ in chunks:
        pass


if __name__ == "__main__":
    main()
