"""Running kubedock with only the rights of deploy/rbac.yaml: a ServiceAccount in the test
namespace and a kubeconfig holding a token for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
RBAC = ROOT / "deploy" / "rbac.yaml"
TOKEN_SECONDS = 3600


def _documents(namespace: str) -> list[dict[str, Any]]:
    documents = list(yaml.safe_load_all(RBAC.read_text()))
    for document in documents:
        for subject in document.get("subjects") or ():
            subject["namespace"] = namespace
        if document["kind"] == "ClusterRoleBinding":  # cluster-wide: one per namespace
            document["metadata"]["name"] += f"-{namespace}"
    return documents


def apply_rbac(cluster: Any, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "apply", "-f", "-",
                    input=yaml.safe_dump_all(_documents(namespace)))


def remove_cluster_rbac(cluster: Any, namespace: str) -> None:
    """Delete what `apply_rbac` made outside the namespace (which goes with the namespace)."""
    for document in _documents(namespace):
        if document["kind"] == "ClusterRoleBinding":
            cluster.kubectl("delete", "clusterrolebinding", document["metadata"]["name"],
                            "--ignore-not-found")


def restricted_kubeconfig(cluster: Any, namespace: str, directory: Path) -> Path:
    """A kubeconfig for the ServiceAccount ``kubedock`` of `namespace` (RBAC applied first)."""
    apply_rbac(cluster, namespace)
    token = cluster.kubectl("-n", namespace, "create", "token", "kubedock",
                            f"--duration={TOKEN_SECONDS}s").stdout.strip()
    admin = json.loads(cluster.kubectl("config", "view", "--raw", "--minify",
                                       "-o", "json").stdout)
    server = dict(admin["clusters"][0]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": server}],
        "users": [{"name": "kubedock", "user": {"token": token}}],
        "contexts": [{"name": "kubedock", "context": {
            "cluster": "cluster", "user": "kubedock", "namespace": namespace}}],
        "current-context": "kubedock",
    }
    path = directory / f"kubeconfig-{namespace}"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path
