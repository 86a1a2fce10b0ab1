"""What volume copy-up adds to a container's start.

    .venv/bin/python tests/bench/seed_bench.py [--runs N]

For postgres:16 (its VOLUME /var/lib/postgresql/data is empty in the image) and for a small
image with files at its VOLUME (built by the reference engine, loaded into kubedock), each on
the local cluster: ``docker start`` with the volume mounted ``nocopy`` (no copy-up: the floor),
the first start of the image in this kubedock (its layers are read from the registry), and the
next starts (what the image holds there is known). Prints medians; not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from collections.abc import Callable

import docker
from bench_server import BenchServer, cluster_env, kubedock_server

ORACLE = "unix:///run/kubedock-oracle/docker.sock"
_DOCKERFILE = b"""FROM busybox:1.36
RUN mkdir -p /seed/nested && for i in $(seq 100); do echo file $i > /seed/f$i; done \\
    && head -c 1048576 /dev/zero > /seed/nested/blob
VOLUME /seed
"""


def _start_seconds(client: docker.DockerClient, image: str, volume: str, *,
                   no_copy: bool, command: list[str]) -> float:
    container = client.containers.create(
        image, command, detach=True,
        mounts=[docker.types.Mount(volume, None, type="volume", no_copy=no_copy)])
    try:
        begun = time.perf_counter()
        container.start()
        return time.perf_counter() - begun
    finally:
        container.remove(force=True, v=True)


def _measure(client: docker.DockerClient, image: str, volume: str, command: list[str],
             runs: int) -> tuple[float, float, float]:
    def start(no_copy: bool) -> Callable[[], float]:
        return lambda: _start_seconds(client, image, volume, no_copy=no_copy, command=command)

    client.images.pull(image)
    floor = statistics.median(start(True)() for _ in range(runs))
    first = start(False)()
    warm = statistics.median(start(False)() for _ in range(runs))
    return floor, first, warm


def _seeded_image(registry: str, server: BenchServer) -> str:
    name = f"{registry}/kd-bench/seeded:{int(time.time())}"
    oracle = {**os.environ, "DOCKER_HOST": ORACLE, "DOCKER_BUILDKIT": "0"}
    subprocess.run(["docker", "build", "-q", "-t", name, "-"], input=_DOCKERFILE, env=oracle,
                   check=True, capture_output=True)
    saved = subprocess.run(["docker", "save", name], env=oracle, check=True,
                           capture_output=True).stdout
    subprocess.run(["docker", "rmi", name], env=oracle, capture_output=True, check=False)
    subprocess.run(["docker", "load"], input=saved, check=True, capture_output=True,
                   env={**os.environ, "DOCKER_HOST": f"tcp://127.0.0.1:{server.port}"})
    return name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    registry = cluster_env()["REGISTRY"]
    with kubedock_server("--registry-mirror", f"docker.io=http://{registry}") as server:
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}", timeout=120)
        seeded = _seeded_image(registry, server)
        for label, image, volume, command in [
            ("postgres:16 /var/lib/postgresql/data (empty)", "postgres:16",
             "/var/lib/postgresql/data", ["sleep", "30"]),
            ("seeded /seed (101 files, 1.4 MB)", seeded, "/seed", ["sleep", "30"]),
        ]:
            floor, first, warm = _measure(client, image, volume, command, args.runs)
            print(f"{label}: nocopy {floor:.2f} s, first start {first:.2f} s "
                  f"(+{first - floor:.2f}), next starts {warm:.2f} s (+{warm - floor:.2f})")


if __name__ == "__main__":
    main()
