"""Access to the local test cluster from tests: kubectl with the cluster's kubeconfig."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import attrs


@attrs.frozen
class Cluster:
    kubeconfig: Path
    kubectl_path: Path
    registry: str = ""  # host:port of the cluster's registry, Docker Hub's mirror for the node

    def kubectl(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the cluster; a non-zero exit raises with kubectl's stderr."""
        command = [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args]
        done = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise KubectlError(done.returncode, command, done.stdout, done.stderr)
        return done

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start a long-running kubectl (logs -f, port-forward); the caller terminates it."""
        command = [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class KubectlError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr}"


def succeeds(cluster: Cluster, *args: str) -> bool:
    try:
        cluster.kubectl(*args)
    except KubectlError:
        return False
    return True


def wait_for(condition: Callable[[], bool], *, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)
