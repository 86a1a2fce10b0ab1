"""The few ways talking to Kubernetes can fail, as seen by the rest of kubedock."""

from __future__ import annotations

import json
from typing import Any

from .._metrics import KUBE_API_ERRORS


class KubeError(Exception):
    """The API server refused or failed a request.

    `status` is the HTTP status code (0 when there was no HTTP answer), `reason` the
    Kubernetes Status reason (``NotFound``, ``AlreadyExists``, ``Forbidden``, ...).
    """

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    """The object already exists, or changed under us."""


class Unsupported(KubeError):
    """The request asks for something kubedock or this cluster cannot do."""


class ClusterUnreachable(KubeError):
    """No answer from the API server (connection refused, TLS failure, timeout)."""


class PortForwardFailed(KubeError):
    """The kubelet could not connect to the pod's port (usually: nothing listens yet)."""


def error_from_status(status_code: int, body: bytes | str) -> KubeError:
    """Turn an error answer of the API server (a Status object, or any text) into a KubeError."""
    status = _parse_status(body)
    KUBE_API_ERRORS.inc(str(status_code))
    message = str(status.get("message") or "").strip()
    if not message:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        message = text.strip() or f"HTTP {status_code}"
    reason = str(status.get("reason") or "")
    code = int(status.get("code") or status_code)
    if code == 404:
        return NotFound(message, status=code, reason=reason)
    if code == 409:
        return Conflict(message, status=code, reason=reason)
    return KubeError(message, status=code, reason=reason)


def _parse_status(body: bytes | str) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
