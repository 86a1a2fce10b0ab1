"""The cluster boundary: the only part of kubedock that talks to Kubernetes.

Pure parts (pod manifests, reading pod status) are plain functions; `Cluster` does the I/O.
"""

from ._boundary import ClusterBoundary
from ._channels import ExecChannel, PortForwardStream
from ._claims import (
    ACCESS_MODES,
    VOLUME_NAME_ANNOTATION,
    ClaimSettings,
    claim_manifest,
    claim_name,
)
from ._cluster import Cluster, LogStream
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
from ._ownership import (
    CLAIMS,
    PODS,
    SECRETS,
    SERVICES,
    Kind,
    instance_selector,
    owner_reference,
)
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
    seed_directory,
)
from ._resize import main_resources, resize_patch, resize_refusal, resize_seen
from ._summary import (
    ContainerUsage,
    InterfaceUsage,
    NodeCapacity,
    container_usage,
    node_capacity,
    parse_quantity,
)
from ._toolbox import (
    TOOLBOX,
    TOOLBOX_PROGRAM,
    ToolboxFailed,
    toolbox_container,
    toolbox_running,
)
from ._watch import WatchHealth

__all__ = [
    "ACCESS_MODES",
    "CLAIMS",
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
    "VOLUME_NAME_ANNOTATION",
    "ClaimSettings",
    "Cluster",
    "ClusterBoundary",
    "ClusterUnreachable",
    "Conflict",
    "ContainerObservation",
    "ContainerSpec",
    "ContainerState",
    "ContainerUsage",
    "ExecChannel",
    "InterfaceUsage",
    "Kind",
    "KubeError",
    "LogStream",
    "MountSpec",
    "NodeCapacity",
    "NotFound",
    "PodSettings",
    "PortForwardFailed",
    "PortForwardStream",
    "PortSpec",
    "ToolboxFailed",
    "Unsupported",
    "WatchHealth",
    "claim_manifest",
    "claim_name",
    "container_usage",
    "delete_instance",
    "dind_secret",
    "hold_lock",
    "instance_selector",
    "is_valid_label_key",
    "is_valid_label_value",
    "main_resources",
    "network_annotations",
    "node_capacity",
    "observe",
    "owner_reference",
    "parse_quantity",
    "pod_manifest",
    "pod_name",
    "prune_all",
    "reap_dead_instances",
    "resize_patch",
    "resize_refusal",
    "resize_seen",
    "seed_directory",
    "serve_heartbeat",
    "start_time",
    "toolbox_container",
    "toolbox_running",
    "transition_time",
]
