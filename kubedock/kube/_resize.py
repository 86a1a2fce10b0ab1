"""Pure: the in-place resize (the ``pods/{name}/resize`` subresource) of a pod's `main`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._podspec import MAIN, resources_document

_RESIZABLE = ("cpu", "memory")


def main_resources(manifest: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The resources of `main` in a pod manifest, as the API server stores them: a limit
    without a request also stands as the request (the defaulting a created pod got, which a
    resize has to restate, or a lower limit would fall below the old request)."""
    for container in (manifest.get("spec") or {}).get("containers") or ():
        if container.get("name") == MAIN:
            resources = container.get("resources") or {}
            break
    else:
        return {}
    limits = dict(resources.get("limits") or {})
    requests = {**limits, **(resources.get("requests") or {})}
    return resources_document(requests, limits)


def resize_patch(resources: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """A strategic merge patch of the resize subresource setting `main`'s CPU and memory
    (the only resources a resize may change)."""
    return {"spec": {"containers": [{"name": MAIN, "resources": {
        kind: {name: value for name, value in values.items() if name in _RESIZABLE}
        for kind, values in resources.items()}}]}}


def resize_refusal(pod: Mapping[str, Any]) -> str | None:
    """Why the kubelet will not apply the pod's latest resize (it does not fit the node, or
    the runtime failed it); None while it is pending for another reason or done. A condition
    about an earlier resize (an earlier generation of the pod) says nothing of this one."""
    generation = (pod.get("metadata") or {}).get("generation") or 0
    for condition in (pod.get("status") or {}).get("conditions") or ():
        kind, reason = condition.get("type"), condition.get("reason")
        if (kind, reason) in (("PodResizePending", "Infeasible"),
                              ("PodResizeInProgress", "Error")) and (
                condition.get("observedGeneration") or 0) >= generation:
            return str(condition.get("message") or reason)
    return None


def resize_seen(pod: Mapping[str, Any]) -> bool:
    """Whether the kubelet has seen the pod's latest spec (and so decided on its resize)."""
    generation = (pod.get("metadata") or {}).get("generation")
    observed = (pod.get("status") or {}).get("observedGeneration")
    return generation is not None and observed is not None and observed >= generation
