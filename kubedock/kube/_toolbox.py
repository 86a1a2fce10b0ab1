"""The toolbox: kubedock's own program added to a running pod as an ephemeral container.

Pure: the container to add, and how far the pod says it has come. The ephemeral container
targets `main`, so it shares main's process namespace and reaches main's files through
/proc/<pid>/root (see `kubedock.podside._toolbox`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._podspec import MAIN, PodSettings, _pull_policy

TOOLBOX = "kubedock-toolbox"
TOOLBOX_PROGRAM = "/kubedock"
# Beyond a container runtime's defaults: SYS_PTRACE opens the root and /proc entries of
# main's processes whatever their user; the others are listed so that a pod template that
# drops capabilities by default still leaves the toolbox what copying and exec need.
TOOLBOX_CAPABILITIES = ("SYS_PTRACE", "SYS_CHROOT", "KILL", "CHOWN", "DAC_OVERRIDE",
                        "DAC_READ_SEARCH", "FOWNER", "FSETID", "SETUID", "SETGID")


class ToolboxFailed(Exception):
    """The pod will not run the toolbox (its image, the runtime); the pod's reason."""


def toolbox_container(settings: PodSettings) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": TOOLBOX,
        "image": settings.init_image,
        "command": [TOOLBOX_PROGRAM],
        "args": ["toolbox", "idle"],
        "targetContainerName": MAIN,
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "capabilities": {"add": list(TOOLBOX_CAPABILITIES)},
        },
    }
    pull_policy = _pull_policy(settings.pull_policy)
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    return container


def toolbox_running(pod: Mapping[str, Any]) -> bool:
    """Whether the pod's toolbox runs; raises `ToolboxFailed` if it never will."""
    for status in (pod.get("status") or {}).get("ephemeralContainerStatuses") or ():
        if status.get("name") != TOOLBOX:
            continue
        state = status.get("state") or {}
        if "running" in state:
            return True
        if "terminated" in state:
            ended = state["terminated"]
            why = ended.get("message") or f"exit code {ended.get('exitCode')}"
            raise ToolboxFailed(f"{ended.get('reason') or 'terminated'}: {why}")
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in _NEVER_STARTS:
            raise ToolboxFailed(f"{waiting['reason']}: {waiting.get('message') or ''}".strip())
    return False


_NEVER_STARTS = frozenset({"ErrImageNeverPull", "InvalidImageName", "ImagePullBackOff",
                           "ErrImagePull", "CreateContainerConfigError", "CreateContainerError",
                           "RunContainerError"})
