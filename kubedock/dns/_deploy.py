"""Running the DNS role in the namespace: one pod and one Service, shared by every instance.

The objects carry no ``kubedock=true`` label: they belong to no instance, so no instance's
cleanup or reaper removes them while another instance's pods still resolve through them.
A Service named ``kubedock-dns`` that is already there is used as it is.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import trio

from .. import __version__, kube
from ..kube import PODS, SERVICE_ACCOUNTS, SERVICES, Kind
from ._role import PORT

log = logging.getLogger(__name__)

NAME = "kubedock-dns"
SELECTOR = {"app.kubernetes.io/name": NAME}
_LABELS = {**SELECTOR, "app.kubernetes.io/managed-by": "kubedock"}
ROLES = Kind("roles", "rbac.authorization.k8s.io/v1")
ROLE_BINDINGS = Kind("rolebindings", "rbac.authorization.k8s.io/v1")


def default_image() -> str:
    return f"kubedock/kubedock:{__version__}"


def manifests(namespace: str, image: str) -> list[tuple[Kind, dict[str, Any]]]:
    """What the role needs: an account that may watch pods, the pod, and its Service."""
    metadata = {"name": NAME, "namespace": namespace, "labels": _LABELS}
    return [
        (SERVICE_ACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}),
        (ROLES, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": metadata,
            "rules": [{"apiGroups": [""], "resources": ["pods"],
                       "verbs": ["get", "list", "watch"]}],
        }),
        (ROLE_BINDINGS, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
        }),
        (PODS, {
            "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {
                "serviceAccountName": NAME,
                "restartPolicy": "Always",
                "enableServiceLinks": False,
                "containers": [{
                    "name": "dns",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["dns", "--listen-addr", f"0.0.0.0:{PORT}"],
                    "ports": [{"name": "dns-udp", "containerPort": PORT, "protocol": "UDP"},
                              {"name": "dns-tcp", "containerPort": PORT, "protocol": "TCP"}],
                    # The TCP port opens once the pods are listed: Ready means it can answer.
                    "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 1},
                    "resources": {"requests": {"cpu": "10m", "memory": "48Mi"}},
                }],
            },
        }),
        (SERVICES, {
            "apiVersion": "v1", "kind": "Service", "metadata": metadata,
            "spec": {
                "selector": SELECTOR,
                "ports": [
                    {"name": "dns-udp", "port": 53, "targetPort": PORT, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": PORT, "protocol": "TCP"},
                ],
            },
        }),
    ]


def pod_dns_config(nameserver: str, namespace: str, cluster_domain: str) -> dict[str, Any]:
    """The dnsConfig of kubedock's pods: the cluster's usual search list, our nameserver."""
    domain = cluster_domain.strip(".")
    return {
        "nameservers": [nameserver],
        "searches": [f"{namespace}.svc.{domain}", f"svc.{domain}", domain],
        "options": [{"name": "ndots", "value": "5"}],
    }


async def ensure_dns(cluster: kube.Cluster, image: str) -> str:
    """Make sure the DNS role answers in the namespace; its Service's cluster IP.

    Waits for a Ready pod behind the Service: callers bound the wait with a cancel scope.
    """
    try:
        service = await cluster.get_object(SERVICES, NAME)
        log.info("using the DNS Service %s that is already there", NAME)
    except kube.NotFound:
        for kind, manifest in manifests(cluster.namespace, image):
            with contextlib.suppress(kube.Conflict):  # another instance created it first
                await cluster.create_object(kind, manifest)
        service = await cluster.get_object(SERVICES, NAME)
    selector = ",".join(f"{k}={v}" for k, v in (service["spec"].get("selector") or {}).items())
    ready = trio.Event()

    def on_pod(pod: Mapping[str, Any], deleted: bool) -> None:
        if not deleted and _ready(pod):
            ready.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(cluster.watch_pod_documents, selector, on_pod)
        await ready.wait()
        nursery.cancel_scope.cancel()
    return str(service["spec"]["clusterIP"])


def _ready(pod: Mapping[str, Any]) -> bool:
    return any(condition.get("type") == "Ready" and condition.get("status") == "True"
               for condition in (pod.get("status") or {}).get("conditions") or ())
