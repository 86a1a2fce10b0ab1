"""`docker restart` of a running container against a fresh create+start, in the same run.

    .venv/bin/python tests/bench/restart_bench.py [--runs N]

Two containers: redis:7, which ends on SIGTERM, restarted with Docker's default timeout, and
busybox `sleep` (PID 1 ignores SIGTERM) restarted with `timeout=1`, as docker-py's
`test_restart_with_low_timeout` does, so that the kill after the timeout is part of the time.
Each restart is timed until the API answers (the container then runs again), as is each
create+start; the ratio is restart / create+start. Prints medians; not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

import docker
from bench_server import kubedock_server


def _create_start(client: docker.DockerClient, image: str,
                  command: list[str] | None) -> tuple[float, str]:
    begun = time.perf_counter()
    container = client.api.create_container(image, command)
    client.api.start(container["Id"])
    return time.perf_counter() - begun, container["Id"]


def _restart(client: docker.DockerClient, container_id: str, timeout: int | None) -> float:
    begun = time.perf_counter()
    if timeout is None:
        client.api.post(client.api._url("/containers/{0}/restart", container_id)).raise_for_status()
    else:
        client.api.restart(container_id, timeout=timeout)
    seconds = time.perf_counter() - begun
    assert client.api.inspect_container(container_id)["State"]["Running"]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cases = [("redis:7, default timeout", "redis:7", None, None),
             ("busybox sleep, timeout=1", "busybox:1.36", ["sleep", "9999"], 1)]
    with kubedock_server() as server:
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}", timeout=120)
        _create_start(client, "busybox:1.36", ["true"])  # warm-up
        for title, image, command, timeout in cases:
            starts, restarts = [], []
            for _ in range(args.runs):
                seconds, container_id = _create_start(client, image, command)
                starts.append(seconds)
                restarts.append(_restart(client, container_id, timeout))
                client.api.remove_container(container_id, force=True)
            start, restart = statistics.median(starts), statistics.median(restarts)
            print(f"{title}, {args.runs} runs (median)")
            print(f"  create+start  {start * 1000:8.0f} ms")
            print(f"  restart       {restart * 1000:8.0f} ms   (ratio {restart / start:.2f})")
        client.close()


if __name__ == "__main__":
    main()
