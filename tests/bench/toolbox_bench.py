"""What the toolbox costs on first use, and once it is in the pod.

    .venv/bin/python tests/bench/toolbox_bench.py [--runs N]

For each run a fresh `kubedock/noshell:1` container (no shell, tar, stat or kill): the first
`docker top` (the ephemeral container is added and started, then lists), a second `top` (the
toolbox is there), an exec as another user, and a `put_archive` + `get_archive` of a small file
through the toolbox; as the floor, an exec round trip of `true` in busybox as its own user (the
same Kubernetes exec, no toolbox). The start of a container pays nothing: the toolbox is added
only when one of these is first asked for. Prints medians; not a test.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tarfile
import time
from collections.abc import Callable

import docker
from bench_server import kubedock_server, timed


def _seconds(work: Callable[[], object]) -> float:
    begun = time.perf_counter()
    work()
    return time.perf_counter() - begun


def _one_file_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        entry = tarfile.TarInfo("bench.txt")
        entry.size = 6
        archive.addfile(entry, io.BytesIO(b"bench\n"))
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with kubedock_server("--port-forward") as server:
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}", timeout=300)
        busybox = client.containers.run("busybox:1.36", ["sleep", "600"], detach=True)
        try:
            busybox.exec_run(["true"])  # warm-up: connections, the first websocket
            floor = timed(lambda: busybox.exec_run(["true"]), args.runs * 4)
        finally:
            busybox.remove(force=True)
        first, again, as_user, archive = [], [], [], []
        for _ in range(args.runs):
            container = client.containers.run("kubedock/noshell:1", detach=True)
            try:
                first.append(_seconds(container.top))
                again.append(_seconds(container.top))
                as_user.append(_seconds(lambda c=container: c.exec_run(
                    ["/usr/bin/sleep-forever"], user="1000:1000", detach=True)))

                def round_trip(c: docker.models.containers.Container = container) -> None:
                    c.put_archive("/tmp", _one_file_tar())
                    b"".join(c.get_archive("/tmp/bench.txt")[0])

                archive.append(_seconds(round_trip))
            finally:
                container.remove(force=True)
    print(f"exec of true, no toolbox (floor):      {floor * 1000:7.0f} ms")
    print(f"first top (adds the toolbox):          {statistics.median(first) * 1000:7.0f} ms")
    print(f"top with the toolbox in place:         {statistics.median(again) * 1000:7.0f} ms")
    print(f"exec -u 1000:1000 (detached) via it:   {statistics.median(as_user) * 1000:7.0f} ms")
    print(f"put + get archive via it:              {statistics.median(archive) * 1000:7.0f} ms")
    print(f"first-use cost of the toolbox:         "
          f"{(statistics.median(first) - statistics.median(again)) * 1000:7.0f} ms")


if __name__ == "__main__":
    main()
