"""The cluster boundary: the only part of kubedock that talks to Kubernetes.

Pure parts (pod manifests, reading pod status) are plain functions; `Cluster` does the I/O.
"""

from ._channels import ExecChannel, PortForwardStream
from ._cluster import Cluster, LogStream
from ._errors import (
    ClusterUnreachable,
    Conflict,
    KubeError,
    NotFound,
    PortForwardFailed,
    Unsupported,
)
from ._observe import ContainerObservation, ContainerState, observe
from ._podspec import (
    MAIN,
    ContainerSpec,
    PodSettings,
    PortSpec,
    is_valid_label_key,
    is_valid_label_value,
    pod_manifest,
    pod_name,
)

__all__ = [
    "MAIN",
    "Cluster",
    "ClusterUnreachable",
    "Conflict",
    "ContainerObservation",
    "ContainerSpec",
    "ContainerState",
    "ExecChannel",
    "KubeError",
    "LogStream",
    "NotFound",
    "PodSettings",
    "PortForwardFailed",
    "PortForwardStream",
    "PortSpec",
    "Unsupported",
    "is_valid_label_key",
    "is_valid_label_value",
    "observe",
    "pod_manifest",
    "pod_name",
]
