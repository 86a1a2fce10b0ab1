"""kubedock missing a right on pods: it says which, in its log or as it refuses to start.

kubedock runs as the namespace's ``kubedock`` ServiceAccount, whose Role (deploy/rbac.yaml)
loses rights test by test, in order.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from kubedock_server import docker_cli, start_kubedock, stop_kubedock

pytestmark = pytest.mark.cluster


def drop_pod_verbs(cluster: Any, namespace: str, *verbs: str) -> None:
    role = json.loads(cluster.kubectl("-n", namespace, "get", "role", "kubedock",
                                      "-o", "json").stdout)
    [index] = [i for i, rule in enumerate(role["rules"]) if rule["resources"] == ["pods"]]
    kept = [verb for verb in role["rules"][index]["verbs"] if verb not in verbs]
    patch = [{"op": "replace", "path": f"/rules/{index}/verbs", "value": kept}]
    cluster.kubectl("-n", namespace, "patch", "role", "kubedock", "--type=json",
                    "-p", json.dumps(patch))


# First: the tests after it take pod rights away for good.
def test_without_the_node_stats_rights_stats_says_which_and_the_rest_works(
    cluster: Any, namespace: str, rbac_kubeconfig: Path, current_images: None, tmp_path: Path,
) -> None:
    cluster.kubectl("delete", "clusterrolebinding", f"kubedock-node-stats-{namespace}")
    process, server = start_kubedock(cluster, namespace, tmp_path,
                                     "--kubeconfig", str(rbac_kubeconfig),
                                     "--network-names", "external")
    try:
        name = "unmeasured"
        started = docker_cli(server, "run", "-d", "--name", name, "busybox:1.36", "sleep", "300")
        assert started.returncode == 0, started.stderr
        stats = docker_cli(server, "stats", "--no-stream", name)
        assert stats.returncode != 0
        assert b"forbidden" in stats.stderr and b"nodes/proxy" in stats.stderr, stats.stderr
        df = docker_cli(server, "system", "df")
        assert df.returncode == 0, df.stderr
        docker_cli(server, "rm", "-f", name)
    finally:
        stop_kubedock(process)


def test_without_the_watch_right_the_reason_is_logged_once_and_starts_still_work(
    cluster: Any, namespace: str, rbac_kubeconfig: Path, current_images: None, tmp_path: Path,
) -> None:
    drop_pod_verbs(cluster, namespace, "watch")
    process, server = start_kubedock(cluster, namespace, tmp_path,
                                     "--kubeconfig", str(rbac_kubeconfig),
                                     "--network-names", "external")
    try:
        # The watch is refused again and again; the pods are still seen through listings.
        done = docker_cli(server, "run", "--rm", "busybox:1.36", "echo", "seen", timeout=150)
        assert done.returncode == 0, done.stderr
        assert done.stdout == b"seen\n"
        # A start that cannot succeed fails with the pod's reason, seen the same way.
        began = time.monotonic()
        failed = docker_cli(server, "run", "--rm", "kubedock.invalid/no:1", timeout=150)
        took = time.monotonic() - began
        print(f"without the watch right: a start failed after {took:.1f}s: "
              f"{failed.stderr.decode().strip()}")
        assert failed.returncode != 0
        assert b"ErrImagePull" in failed.stderr or b"ImagePullBackOff" in failed.stderr, \
            failed.stderr
        assert took < 60
    finally:
        stop_kubedock(process)
    log = server.log.read_text()
    reason = f"kubedock lacks the right to watch pods in namespace {namespace}"
    assert log.count(reason) == 1, log[-4000:]
    pods = cluster.kubectl("-n", namespace, "get", "pods", "-o", "name", "-l", "kubedock=true")
    assert not pods.stdout.strip()


def test_without_the_list_right_kubedock_refuses_to_start_and_says_why(
    cluster: Any, namespace: str, rbac_kubeconfig: Path, tmp_path: Path,
) -> None:
    drop_pod_verbs(cluster, namespace, "list")
    with pytest.raises(RuntimeError) as refused:
        process, _ = start_kubedock(cluster, namespace, tmp_path,
                                    "--kubeconfig", str(rbac_kubeconfig),
                                    "--network-names", "external")
        stop_kubedock(process)
    assert f"kubedock lacks the right to list pods in namespace {namespace}" in str(
        refused.value)
