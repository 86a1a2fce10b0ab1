"""Soak: many clients driving whole container lifecycles at once, against one kubedock.

    .venv/bin/python tests/bench/soak_bench.py [--clients 10] [--lifecycles 50]

Each client thread runs `--lifecycles` times: create + start a busybox, an exec with its output
checked, the logs, a file copied in and read back, then a forced remove. Counts every answer
with a 5xx status (a client-side 4xx is counted apart: none is expected either), samples the
server's RSS once a second and prints the curve, and at the end lists what is left in the
namespace (pods, services, secrets, PVCs carrying kubedock's label). Not a test.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import docker
import docker.errors
from bench_server import kubedock_server


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _one_file_tar(name: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


@attrs.define
class Tally:
    lifecycles: int = 0
    server_errors: list[str] = attrs.Factory(list)
    client_errors: list[str] = attrs.Factory(list)
    wrong_results: list[str] = attrs.Factory(list)
    seconds: list[float] = attrs.Factory(list)
    lock: threading.Lock = attrs.Factory(threading.Lock)

    def record_error(self, error: docker.errors.APIError) -> None:
        with self.lock:
            status = error.status_code or 0
            (self.server_errors if status >= 500 else self.client_errors).append(str(error))


def _lifecycle(client: docker.DockerClient, index: int, tally: Tally) -> None:
    payload = f"payload {index}\n".encode()
    begun = time.perf_counter()
    container = None
    try:
        container = client.containers.create(
            "busybox:1.36", ["sh", "-c", f"echo started {index}; exec sleep 600"])
        container.start()
        code, output = container.exec_run(["echo", f"exec {index}"])
        if (code, output) != (0, f"exec {index}\n".encode()):
            tally.wrong_results.append(f"exec {index}: {code} {output!r}")
        deadline = time.monotonic() + 30
        while b"started" not in container.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        if container.logs() != f"started {index}\n".encode():
            tally.wrong_results.append(f"logs {index}: {container.logs()!r}")
        container.put_archive("/tmp", _one_file_tar("copied.txt", payload))
        stream, _ = container.get_archive("/tmp/copied.txt")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.extractfile("copied.txt")
            if member is None or member.read() != payload:
                tally.wrong_results.append(f"copy {index}: content differs")
    except docker.errors.APIError as error:
        tally.record_error(error)
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except docker.errors.APIError as error:
                tally.record_error(error)
    with tally.lock:
        tally.lifecycles += 1
        tally.seconds.append(time.perf_counter() - begun)


def _left_behind(kubectl: list[str], namespace: str) -> str:
    return subprocess.run(
        [*kubectl, "-n", namespace, "get", "pods,services,secrets,pvc", "-o", "name",
         "-l", "kubedock=true"],
        capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--lifecycles", type=int, default=50, help="per client")
    args = parser.parse_args()
    tally = Tally()
    with kubedock_server("--port-forward") as server:
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}", timeout=300)
        curve: list[tuple[float, float]] = []
        done = threading.Event()
        begun = time.monotonic()

        def sample() -> None:
            while not done.wait(1.0):
                curve.append((time.monotonic() - begun, _rss_mb(server.process.pid)))

        sampler = threading.Thread(target=sample)
        sampler.start()
        idle_rss = _rss_mb(server.process.pid)

        def client_work(client_index: int) -> None:
            for round_index in range(args.lifecycles):
                _lifecycle(client, client_index * args.lifecycles + round_index, tally)

        try:
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(client_work, range(args.clients)))
        finally:
            done.set()
            sampler.join()
        elapsed = time.monotonic() - begun
        deadline = time.monotonic() + 120
        while (left := _left_behind(server.kubectl, server.namespace)) and \
                time.monotonic() < deadline:
            time.sleep(1)
        still_serving = client.ping()
        client.close()

    print(f"{args.clients} clients x {args.lifecycles} lifecycles: {tally.lifecycles} done "
          f"in {elapsed:.0f} s (median lifecycle {statistics.median(tally.seconds):.2f} s)")
    print(f"  5xx answers       {len(tally.server_errors)}")
    print(f"  4xx answers       {len(tally.client_errors)}")
    print(f"  wrong results     {len(tally.wrong_results)}")
    for problem in (tally.server_errors + tally.client_errors + tally.wrong_results)[:10]:
        print(f"    {problem}")
    print(f"  left behind       {left or 'nothing'}")
    print(f"  server still up   {still_serving}")
    print(f"  server RSS        idle {idle_rss:.0f} MiB, peak "
          f"{max((rss for _, rss in curve), default=idle_rss):.0f} MiB; curve (s: MiB):")
    step = max(1, len(curve) // 20)
    print("   ", ", ".join(f"{at:.0f}: {rss:.0f}" for at, rss in curve[::step]))


if __name__ == "__main__":
    main()
