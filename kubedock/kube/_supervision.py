"""A supervised `main`: kubedock's supervisor runs as its PID 1 and the container's program as
its child, so that the container (its root filesystem, its volumes) outlives the program, as
a Docker container's files outlive its process until it is removed.

The supervisor (`build/images/recipes/supervise.c`, a static program in the init image beside
kubedock) reaches the pod in one of three ways: pods with the init container `setup` get it with
kubedock's own folder; others mount it from a ConfigMap of the instance (`supervisor_config_map`,
made of the copy in the first such pod), the one volume that the kubelet fills before any
container starts; until that ConfigMap exists, they get a first container, `kubedock-tools`,
whose postStart hook copies it into the tools volume (the kubelet starts `main` only once that
hook is done). It writes the program's end to `STATE_DIR/exit`, which `supervisor_wait_argv`
waits for.
"""

from __future__ import annotations

import base64
import hashlib
import io
import posixpath
import tarfile
from collections.abc import Mapping
from typing import Any

from ._ownership import INSTANCE_LABEL
from ._podspec import (
    INIT_PROGRAM,
    MAIN,
    TOOLS_DIR,
    TOOLS_VOLUME,
    ContainerSpec,
    PodSettings,
    _pull_policy,
)

# Where the init image keeps the supervisor, beside kubedock's program.
SUPERVISOR_PROGRAM = "/opt/kubedock/supervise"
INSTALLER = "kubedock-tools"
# What the installer container (an idle static program, and the copy of it in its hook) gets
# in a pod whose `main` is Guaranteed, so that the pod stays so.
_INSTALLER_RESOURCES = {"cpu": "10m", "memory": "16Mi"}
STATE_VOLUME = "kubedock-state"
STATE_DIR = "/.kubedock/state"
# What the supervisor puts before its termination message when the program could not be
# executed: the start fails, as the runtime's own exec failure would fail it.
NEVER_RAN_MARKER = "kubedock-supervise: "


def supervisor_path(spec: ContainerSpec) -> str:
    """Where `main` finds the supervisor: in kubedock's folder, which the init container
    copies, or where the ConfigMap's volume or the installer's hook puts it."""
    if spec.needs_setup:
        return posixpath.join(TOOLS_DIR, "kubedock", "supervise")
    return posixpath.join(TOOLS_DIR, "supervise")


def supervisor_wait_argv(supervisor: str) -> list[str]:
    """The exec that blocks until the supervised program has ended and prints its record."""
    return [supervisor, "wait", STATE_DIR]


def supervisor_end_argv(supervisor: str) -> list[str]:
    """The exec that SIGKILLs the supervised program (the kernel drops a SIGKILL sent to
    PID 1 from inside its container) and prints its record once the supervisor wrote it."""
    return [supervisor, "end", STATE_DIR]


def supervisor_of(pod: Mapping[str, Any]) -> str | None:
    """Where `main` of `pod` has the supervisor, if it runs under one (an adopted pod)."""
    for container in (pod.get("spec") or {}).get("containers") or ():
        command = container.get("command") or []
        if container.get("name") == MAIN and command[1:3] == ["run", STATE_DIR]:
            return str(command[0])
    return None


def supervise(spec: ContainerSpec, settings: PodSettings, pod_spec: dict[str, Any]) -> None:
    """Make `main` of `pod_spec` run `spec.supervised_argv` under the supervisor."""
    main = next(c for c in pod_spec["containers"] if c["name"] == MAIN)
    supervisor = supervisor_path(spec)
    main.pop("args", None)
    main["command"] = [supervisor, "run", STATE_DIR, *spec.supervised_argv]
    volumes = list(pod_spec.get("volumes") or [])
    mounts = list(main.get("volumeMounts") or [])
    volumes.append({"name": STATE_VOLUME, "emptyDir": {}})
    mounts.append({"name": STATE_VOLUME, "mountPath": STATE_DIR})
    if not spec.needs_setup:
        mounts.append({"name": TOOLS_VOLUME, "mountPath": TOOLS_DIR, "readOnly": True})
        if spec.supervisor_config_map:
            volumes.append({"name": TOOLS_VOLUME, "configMap": {
                "name": spec.supervisor_config_map, "defaultMode": 0o555}})
        else:
            volumes.append({"name": TOOLS_VOLUME, "emptyDir": {}})
            installer = _installer(settings, supervisor)
            if _guaranteed(main):
                # A container without resources would make the pod Burstable.
                installer["resources"] = {"requests": dict(_INSTALLER_RESOURCES),
                                          "limits": dict(_INSTALLER_RESOURCES)}
            pod_spec["containers"] = [installer, *pod_spec["containers"]]
    main["volumeMounts"] = mounts
    pod_spec["volumes"] = volumes


def _guaranteed(container: Mapping[str, Any]) -> bool:
    """Whether `container` alone would make its pod of the Guaranteed QoS class: CPU and memory
    limits, and requests equal to them (or left to default to them)."""
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    return all(name in limits and requests.get(name, limits[name]) == limits[name]
               for name in ("cpu", "memory"))


def _installer(settings: PodSettings, supervisor: str) -> dict[str, Any]:
    installer: dict[str, Any] = {
        "name": INSTALLER,
        "image": settings.init_image,
        "command": [SUPERVISOR_PROGRAM, "idle"],
        "lifecycle": {"postStart": {"exec": {"command": [
            SUPERVISOR_PROGRAM, "install", supervisor]}}},
        "volumeMounts": [{"name": TOOLS_VOLUME, "mountPath": TOOLS_DIR}],
    }
    pull_policy = _pull_policy(settings.pull_policy)
    if pull_policy:
        installer["imagePullPolicy"] = pull_policy
    return installer


def supervisor_config_map_name(settings: PodSettings) -> str:
    """The ConfigMap of this instance that holds the supervisor of its init image (the image
    in the name: an instance restarted with another image never mounts the old one's)."""
    digest = hashlib.sha256(settings.init_image.encode()).hexdigest()[:10]
    return f"kubedock-supervise-{settings.instance_id}-{digest}"


def supervisor_copy_argv() -> list[str]:
    """The exec, in a pod's installer container, whose output (a tar) holds the supervisor."""
    return [INIT_PROGRAM, "archive", "get", SUPERVISOR_PROGRAM]


def supervisor_config_map(settings: PodSettings, archive: bytes) -> dict[str, Any] | None:
    """The ConfigMap holding the supervisor that `archive` (the output of
    `supervisor_copy_argv`) carries; None when it carries none. Immutable: the kubelet then
    reads it once rather than watching it for every pod that mounts it."""
    name = posixpath.basename(SUPERVISOR_PROGRAM)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            member = tar.getmember(name)
            program = tar.extractfile(member) if member.isfile() else None
            content = program.read() if program is not None else b""
    except (tarfile.TarError, KeyError):
        return None
    if not content:
        return None
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": supervisor_config_map_name(settings), "namespace": settings.namespace,
                     "labels": {**settings.labels, "kubedock": "true",
                                INSTANCE_LABEL: settings.instance_id}},
        "immutable": True,
        "binaryData": {name: base64.b64encode(content).decode()},
    }
