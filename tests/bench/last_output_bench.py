"""Whether the last output of a one-shot container is in its log once `wait` returns, as
docker-py's `containers.run` reads it (create, start, wait, logs).

    .venv/bin/python tests/bench/last_output_bench.py [--runs N] [--parallel N] [--policy P]
        [--remove] [--cases lines large tty]

One kubedock server on the local cluster (``--keep-exited-files always``, the default, unless
told otherwise: every container runs under kubedock's supervisor, whose record may tell the end
before the runtime has put the program's last output into the log). Each case
(tests/e2e/docker/last_output.py) runs `--runs` containers, `--parallel` at a time, and counts
the runs whose log, read right after the wait, misses output, and of those the ones whose log
is still short a few seconds later (lost, not late). Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import docker
from bench_server import cluster_env, kubedock_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e" / "docker"))

from last_output import CASES, stress


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--policy", choices=("auto", "always", "never"), default="always")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--remove", action="store_true",
                        help="run as docker-py's run(remove=True): the log kubedock keeps of "
                        "a container that removes itself")
    args = parser.parse_args()
    # Supervised only where kubedock knows the image's config: from the cluster's registry.
    registry = cluster_env().get("REGISTRY")
    mirror = ["--registry-mirror", f"docker.io=http://{registry}"] if registry else []
    with kubedock_server("--keep-exited-files", args.policy, *mirror) as server:
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}", timeout=180)
        stress(client, "lines", 1, 1)  # warm-up: the image, the supervisor's ConfigMap
        began = time.monotonic()
        for case in args.cases:
            stress(client, case, args.runs, args.parallel, remove=args.remove)
        print(f"{time.monotonic() - began:.0f} s")
        client.close()


if __name__ == "__main__":
    main()
