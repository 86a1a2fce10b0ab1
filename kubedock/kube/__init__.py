"""The cluster boundary: the only part of kubedock that talks to Kubernetes.

Pure parts (pod manifests, reading pod status) are plain functions; `Cluster` does the I/O.
"""

from ._boundary import ClusterBoundary
from ._channels import ExecChannel, PortForwardStream
from ._cluster import Cluster, LogStream, WatchHealth
from ._errors import (
    ClusterUnreachable,
    Conflict,
    KubeError,
    NotFound,
    PortForwardFailed,
    Unsupported,
)
from ._liveness import (
    delete_instance,
    hold_lock,
    prune_all,
    reap_dead_instances,
    serve_heartbeat,
)
from ._observe import (
    ContainerObservation,
    ContainerState,
    observe,
    start_time,
    transition_time,
)
from ._ownership import PODS, SECRETS, SERVICES, Kind, instance_selector, owner_reference
from ._podspec import (
    HOST_ALIAS_PREFIX,
    MAIN,
    NETWORK_PREFIX,
    SETUP,
    TOOLS_DIR,
    ContainerSpec,
    MountSpec,
    PodSettings,
    PortSpec,
    dind_secret,
    is_valid_label_key,
    is_valid_label_value,
    network_annotations,
    pod_manifest,
    pod_name,
)
from ._toolbox import (
    TOOLBOX,
    TOOLBOX_PROGRAM,
    ToolboxFailed,
    toolbox_container,
    toolbox_running,
)

__all__ = [
    "HOST_ALIAS_PREFIX",
    "MAIN",
    "NETWORK_PREFIX",
    "PODS",
    "SECRETS",
    "SERVICES",
    "SETUP",
    "TOOLBOX",
    "TOOLBOX_PROGRAM",
    "TOOLS_DIR",
    "Cluster",
    "ClusterBoundary",
    "ClusterUnreachable",
    "Conflict",
    "ContainerObservation",
    "ContainerSpec",
    "ContainerState",
    "ExecChannel",
    "Kind",
    "KubeError",
    "LogStream",
    "MountSpec",
    "NotFound",
    "PodSettings",
    "PortForwardFailed",
    "PortForwardStream",
    "PortSpec",
    "ToolboxFailed",
    "Unsupported",
    "WatchHealth",
    "delete_instance",
    "dind_secret",
    "hold_lock",
    "instance_selector",
    "is_valid_label_key",
    "is_valid_label_value",
    "network_annotations",
    "observe",
    "owner_reference",
    "pod_manifest",
    "pod_name",
    "prune_all",
    "reap_dead_instances",
    "serve_heartbeat",
    "start_time",
    "toolbox_container",
    "toolbox_running",
    "transition_time",
]
