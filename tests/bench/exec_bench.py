"""Exec round trip of `true` through kubedock, against `kubectl exec` in the same run.

    .venv/bin/python tests/bench/exec_bench.py [--runs N]

Each round trip is what a client waits for: docker-py's `exec_run(["true"])` (create, start
with a hijacked stream, inspect for the exit code) and, as the floor, `kubectl exec POD --
true` (a process start of kubectl included, as every CI shell step pays it). Prints medians;
not a test.
"""

from __future__ import annotations

import argparse
import subprocess

import docker
from bench_server import kubedock_server, timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with kubedock_server("--port-forward") as server:
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}", timeout=120)
        container = client.containers.run("busybox:1.36", ["sleep", "600"], detach=True)
        try:
            pod = subprocess.run(
                [*server.kubectl, "-n", server.namespace, "get", "pods", "-o", "name",
                 "-l", f"kubedock.containerid={container.id[:12]}"],
                capture_output=True, text=True, check=True).stdout.strip()

            def through_kubedock() -> None:
                assert container.exec_run(["true"]).exit_code == 0

            def through_kubectl() -> None:
                subprocess.run([*server.kubectl, "-n", server.namespace, "exec", pod, "-c",
                                "main", "--", "true"], check=True, capture_output=True)

            through_kubedock()  # warm-up: connections, the first websocket
            through_kubectl()
            kubedock_ms = timed(through_kubedock, args.runs) * 1000
            kubectl_ms = timed(through_kubectl, args.runs) * 1000
        finally:
            container.remove(force=True)
            client.close()
    print(f"exec `true`, median of {args.runs}")
    print(f"  kubectl exec              {kubectl_ms:7.0f} ms")
    print(f"  kubedock (docker-py)      {kubedock_ms:7.0f} ms   "
          f"ratio {kubedock_ms / kubectl_ms:.2f}")


if __name__ == "__main__":
    main()
