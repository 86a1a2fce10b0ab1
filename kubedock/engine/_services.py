"""The Services mode: one ClusterIP Service per name of a container, owned by its pod.

The Service is named after the alias itself, so plain cluster DNS resolves it, but for the
whole namespace: two containers (or two kubedock instances) using one alias collide, and the
second start fails with a clear conflict. The DNS mode has no such limit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .. import kube
from ._errors import Conflict

log = logging.getLogger(__name__)

_SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def service_names(names: Iterable[str]) -> list[str]:
    """The names that can be Service names (DNS-1035 labels); others cannot be published."""
    return [name for name in dict.fromkeys(n.lower() for n in names) if _SERVICE_NAME.match(name)]


def service_manifest(name: str, pod: Mapping[str, Any],
                     ports: Iterable[kube.PortSpec]) -> dict[str, Any]:
    metadata = pod["metadata"]
    labels = metadata.get("labels") or {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": metadata["namespace"],
            "labels": {key: labels[key] for key in ("kubedock", "kubedock.id",
                                                     "kubedock.containerid") if key in labels},
            # The garbage collector deletes the Service with the pod, even with no kubedock left.
            "ownerReferences": [kube.owner_reference(pod)],
        },
        "spec": {
            "selector": {"kubedock.containerid": labels["kubedock.containerid"]},
            "ports": [
                {"name": f"{port.protocol}-{port.port}", "port": port.port,
                 "targetPort": port.port, "protocol": port.protocol.upper()}
                for port in ports
            ],
        },
    }


async def publish_services(cluster: kube.ClusterBoundary, pod: Mapping[str, Any],
                           names: Iterable[str], ports: tuple[kube.PortSpec, ...]) -> None:
    if not ports:
        log.info("pod %s exposes no ports: no Service for its names", pod["metadata"]["name"])
        return
    for name in service_names(names):
        manifest = service_manifest(name, pod, ports)
        try:
            await cluster.create_object(kube.SERVICES, manifest)
        except kube.Conflict:
            await _take_over(cluster, pod, manifest)


async def _take_over(cluster: kube.ClusterBoundary, pod: Mapping[str, Any],
                     manifest: Mapping[str, Any]) -> None:
    """Publish `manifest` in place of a Service of the same name: one of an earlier run of the
    container (a restart's last pod, which the garbage collector has yet to delete it with),
    else a Conflict."""
    name = manifest["metadata"]["name"]
    try:
        existing = await cluster.get_object(kube.SERVICES, name)
    except kube.NotFound:  # the garbage collector was quicker
        existing = None
    if existing is not None:
        owners = existing["metadata"].get("ownerReferences") or ()
        if any(owner.get("uid") == pod["metadata"]["uid"] for owner in owners):
            return  # published for this pod already (a name given on two networks)
        if (existing.get("spec") or {}).get("selector") != manifest["spec"]["selector"]:
            raise Conflict(
                f"the name {name!r} is already a Service in namespace "
                f"{pod['metadata']['namespace']}: with --network-names services a name is "
                "namespace-wide; use --network-names dns to scope names per network"
            )
        await cluster.delete_object(kube.SERVICES, name)
    await cluster.create_object(kube.SERVICES, manifest)
