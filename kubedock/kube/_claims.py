"""Pure translation of one named Docker volume into one PersistentVolumeClaim manifest."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from ._ownership import INSTANCE_LABEL
from ._podspec import PodSettings, _dns_label_chars

# The Docker name and labels of the volume a claim stands for (neither fits a Kubernetes name
# or label: Docker names may hold '_' and capitals, Docker labels anything).
VOLUME_NAME_ANNOTATION = "kubedock.volume/name"
VOLUME_LABELS_ANNOTATION = "kubedock.volume/labels"
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany", "ReadOnlyMany")
_READABLE_MAX = 40


@attrs.frozen
class ClaimSettings:
    """How named volumes are provisioned (flags of `kubedock server`).

    The defaults suit one node: ReadWriteOnce still lets every pod on that node mount the
    volume at once; a cluster spreading containers over nodes needs ReadWriteMany and a
    storage class that offers it.
    """

    storage_class: str | None = None  # None: the cluster's default class
    access_mode: str = "ReadWriteOnce"
    size: str = "1Gi"


def claim_name(volume: str, unique: str) -> str:
    """`kubedock-<volume>-<unique>`, squeezed into a DNS-1123 label: the unique part lets a
    volume be created again under its name while the previous claim is still going away."""
    readable = _dns_label_chars(f"kubedock-{volume}")[:_READABLE_MAX].strip("-")
    return f"{readable}-{unique}"


def claim_manifest(volume: str, claim: str, labels: Mapping[str, str],
                   pods: PodSettings, settings: ClaimSettings) -> dict[str, Any]:
    """The claim `claim` for Docker volume `volume` with Docker labels `labels`, labelled and
    annotated like every object of this instance."""
    spec: dict[str, Any] = {
        "accessModes": [settings.access_mode],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": settings.size}},
    }
    if settings.storage_class:
        spec["storageClassName"] = settings.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": claim,
            "namespace": pods.namespace,
            "labels": {**pods.labels, "kubedock": "true", INSTANCE_LABEL: pods.instance_id},
            "annotations": {
                **pods.annotations,
                VOLUME_NAME_ANNOTATION: volume,
                VOLUME_LABELS_ANNOTATION: json.dumps(dict(labels), sort_keys=True),
            },
        },
        "spec": spec,
    }
