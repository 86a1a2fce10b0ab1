"""Image pull secrets (pure): the Secrets kubedock makes of credentials clients sent with a pull,
and the Docker config a Secret of the namespace holds."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ._ownership import INSTANCE_LABEL, Kind
from ._podspec import PodSettings

SERVICE_ACCOUNTS = Kind("serviceaccounts")
_DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
_DOCKER_CFG = "kubernetes.io/dockercfg"


def pull_secret_name(settings: PodSettings, registry: str) -> str:
    """One Secret per instance and registry: a client's later credentials replace it."""
    registry_hash = hashlib.sha256(registry.encode()).hexdigest()[:10]
    return f"{settings.pod_name_prefix}-pull-{settings.instance_id}-{registry_hash}"


def pull_secret_manifest(name: str, settings: PodSettings, docker_config: bytes
                         ) -> dict[str, Any]:
    """A ``kubernetes.io/dockerconfigjson`` Secret, labelled as every object of the instance
    (deleted with them at exit, or by another instance's reaper)."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": _DOCKER_CONFIG_JSON,
        "metadata": {"name": name, "namespace": settings.namespace,
                     "labels": {**settings.labels, "kubedock": "true",
                                INSTANCE_LABEL: settings.instance_id}},
        "data": {".dockerconfigjson": base64.b64encode(docker_config).decode()},
    }


def service_account_pull_secrets(account: Mapping[str, Any]) -> tuple[str, ...]:
    secrets = account.get("imagePullSecrets") or ()
    return tuple(str(entry["name"]) for entry in secrets
                 if isinstance(entry, dict) and entry.get("name"))


def docker_config_of_secret(secret: Mapping[str, Any]) -> Any:
    """The Docker config (``{"auths": {...}}``) a pull Secret holds, or None for a Secret of
    another type or an unreadable one. Legacy ``.dockercfg`` Secrets hold the auths alone."""
    kind, data = secret.get("type"), secret.get("data") or {}
    key = {_DOCKER_CONFIG_JSON: ".dockerconfigjson", _DOCKER_CFG: ".dockercfg"}.get(str(kind))
    if key is None or not isinstance(data, dict) or not isinstance(data.get(key), str):
        return None
    try:
        document = json.loads(base64.b64decode(data[key]))
    except (ValueError, binascii.Error):
        return None
    return {"auths": document} if kind == _DOCKER_CFG else document
