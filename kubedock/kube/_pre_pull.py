"""Pre-pull pods (pure): a short-lived pod whose only purpose is that the kubelet pulls an
image onto the node the pods of kubedock go to, and how to tell from it that the pull is done.

Its container's command is a path no image has: the container never runs image code, it fails
to start right after the pull, and the pod is deleted as soon as the pull is seen done.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ._ownership import INSTANCE_LABEL
from ._podspec import PodSettings

PRE_PULL_LABEL = "kubedock.prepull"
_NO_SUCH_COMMAND = "/.kubedock-pre-pull"
# The kubelet's reasons for an image it cannot pull (as the start of a container reports them):
# those it tries again, and those that stand.
_PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "RegistryUnavailable")
_PERMANENT_PULL_FAILURES = ("InvalidImageName", "ErrImageNeverPull")


def pre_pull_manifest(image: str, settings: PodSettings, pull_secrets: tuple[str, ...] = ()
                      ) -> dict[str, Any]:
    """A pod pulling `image` (always: a pull asks the registry again) on a node the pods'
    node selector allows, with the pods' pull secrets."""
    name = (f"{settings.pod_name_prefix}-pull-"
            f"{hashlib.sha256(image.encode()).hexdigest()[:8]}-{secrets.token_hex(3)}")
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [{"name": "pull", "image": image, "imagePullPolicy": "Always",
                        "command": [_NO_SUCH_COMMAND]}],
    }
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    names = (*settings.image_pull_secrets, *pull_secrets)
    if names:
        spec["imagePullSecrets"] = [{"name": name} for name in names]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": settings.namespace,
        "labels": {**settings.labels, "kubedock": "true", INSTANCE_LABEL: settings.instance_id,
                   PRE_PULL_LABEL: "true"}}, "spec": spec}


@attrs.frozen
class PrePullState:
    phase: Literal["pulling", "pulled", "failed"]
    message: str = ""
    # A failure the kubelet does not try again; others may clear (a registry back, a pull
    # secret the kubelet could not read yet, a node added).
    permanent: bool = False


def pre_pull_state(pod: Mapping[str, Any]) -> PrePullState:
    """Pulled once the container has an image id or got past its pull; failed on a pull
    failure or a pod that cannot be scheduled."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("reason") == \
                "Unschedulable":
            return PrePullState("failed", f"Unschedulable: {condition.get('message', '')}")
    for container in status.get("containerStatuses") or ():
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in (*_PULL_FAILURES, *_PERMANENT_PULL_FAILURES):
            return PrePullState("failed", f"{waiting['reason']}: {waiting.get('message', '')}",
                                permanent=waiting["reason"] in _PERMANENT_PULL_FAILURES)
        if container.get("imageID") or "running" in state or "terminated" in state:
            return PrePullState("pulled")
    return PrePullState("pulling")
