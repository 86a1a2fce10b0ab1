"""`docker build` of a small image through kubedock, against the reference Docker engine's classic
builder on the same machine in the same run.

    .venv/bin/python tests/bench/build_bench.py [--runs N]

The Dockerfile: FROM busybox:1.36, ARG, COPY, RUN, ENV, EXPOSE, HEALTHCHECK, CMD. "cold" builds
with --no-cache (kubedock: a sandbox pod is made, busybox's layer applied, the step run and the
image pushed to the cluster's registry; Docker: a container per step); "warm" is the same build
again with the cache (no RUN on either). Medians of `--runs`; prints seconds and ratios; not a
test. Needs the local cluster (`build/cluster/up`) and the reference engine (`build/oracle/up`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from bench_server import ROOT, kubedock_server, timed

DOCKERFILE = """\
FROM busybox:1.36
ARG GREETING=hello
COPY greet.sh /app/
RUN echo "built with $GREETING" > /app/built.txt && chmod 755 /app/greet.sh
ENV WHO=bench
EXPOSE 8080
HEALTHCHECK --interval=5s CMD test -f /app/built.txt
CMD ["/app/greet.sh"]
"""


def _oracle_host() -> str:
    output = subprocess.run([ROOT / "build/oracle/up"], capture_output=True, text=True,
                            check=True).stdout
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)["DOCKER_HOST"]


def _builder(host: str, context: Path, *flags: str) -> None:
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "0"}
    done = subprocess.run(["docker", "build", "-q", "-t", "bench-build:1", *flags, str(context)],
                          env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"docker build against {host} failed: {done.stderr.decode()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    oracle = _oracle_host()
    with tempfile.TemporaryDirectory() as directory:
        context = Path(directory)
        context.joinpath("Dockerfile").write_text(DOCKERFILE)
        context.joinpath("greet.sh").write_text('#!/bin/sh\necho "greetings from $WHO"\n')
        with kubedock_server("--registry-mirror", "docker.io=http://127.0.0.1:5000") as server:
            host = f"tcp://127.0.0.1:{server.port}"
            rows = []
            for name, target in (("kubedock", host), ("docker classic", oracle)):
                cold = timed(lambda t=target: _builder(t, context, "--no-cache"), args.runs)
                warm = timed(lambda t=target: _builder(t, context), args.runs)
                rows.append((name, cold, warm))
    print(f"{'builder':<16}{'cold (s)':>10}{'warm (s)':>10}")
    for name, cold, warm in rows:
        print(f"{name:<16}{cold:>10.2f}{warm:>10.2f}")
    (_, kd_cold, kd_warm), (_, docker_cold, docker_warm) = rows
    print(f"kubedock / docker: cold {kd_cold / docker_cold:.1f}x, "
          f"warm {kd_warm / docker_warm:.1f}x; kubedock warm / cold {kd_warm / kd_cold:.2f}")


if __name__ == "__main__":
    main()
