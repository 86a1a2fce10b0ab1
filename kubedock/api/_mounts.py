"""`HostConfig.Binds`, `HostConfig.Mounts`, `HostConfig.Tmpfs` and `Volumes` → mounts.

Bind sources are read on kubedock's side when the container starts and copied into the pod
(a one-way copy: changes in the container are not seen on the host). Every named or anonymous
volume is an emptyDir of its pod, so two containers cannot share one.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from typing import Any

from ..engine import Mount
from ._errors import DockerError, bad_request
from ._parse import field

# A bind of these gives the container kubedock's Docker API; nothing is read from them.
_DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


def parse_mounts(body: Mapping[str, Any], host_config: Mapping[str, Any]) -> tuple[Mount, ...]:
    mounts: dict[str, Mount] = {}
    for text in host_config.get("Binds") or ():
        mount = _bind(str(text))
        mounts[mount.target] = mount
    for item in host_config.get("Mounts") or ():
        mount = _mount(item)
        mounts[mount.target] = mount
    for target in field(host_config, "Tmpfs", dict, "HostConfig.") or {}:
        mounts[_target(target)] = Mount("tmpfs", _target(target))
    for target in field(body, "Volumes", dict) or {}:
        mounts.setdefault(_target(target), Mount("volume", _target(target)))
    return tuple(mounts.values())


def _bind(text: str) -> Mount:
    parts = text.split(":")
    if len(parts) == 1:
        return Mount("volume", _target(parts[0]))
    if len(parts) > 3:
        raise bad_request(f"invalid volume specification: {text!r}")
    source, target = parts[0], _target(parts[1])
    options = set(parts[2].split(",")) if len(parts) == 3 else set()
    read_only = "ro" in options
    if source.startswith("/"):
        return _bind_mount(source, target, read_only)
    return Mount("volume", target, source, read_only)


def _mount(item: Any) -> Mount:
    if not isinstance(item, Mapping):
        raise bad_request("HostConfig.Mounts: want a list of objects")
    kind = item.get("Type") or "volume"
    target = _target(str(item.get("Target") or ""))
    read_only = bool(item.get("ReadOnly"))
    if kind == "bind":
        return _bind_mount(str(item.get("Source") or ""), target, read_only)
    if kind == "volume":
        return Mount("volume", target, str(item.get("Source") or ""), read_only)
    if kind == "tmpfs":
        return Mount("tmpfs", target)
    raise DockerError(501, f"mount type {kind!r} is not supported by kubedock")


def _target(target: str) -> str:
    if not target.startswith("/"):
        raise bad_request(f"invalid mount config: mount path must be absolute: {target!r}")
    return posixpath.normpath(target)


def _bind_mount(source: str, target: str, read_only: bool) -> Mount:
    if posixpath.normpath(source) in _DOCKER_SOCKETS:
        if posixpath.dirname(target) == "/":
            raise DockerError(501, (
                f"kubedock serves the Docker socket {target} from a directory it mounts over "
                "the container's: bind it somewhere below /, such as /var/run/docker.sock"
            ))
        return Mount("docker-socket", target)
    return Mount("bind", target, _source(source), read_only)


def _source(source: str) -> str:
    if not os.path.lexists(source):
        raise bad_request(
            f"invalid mount config for type \"bind\": bind source path does not exist: {source}"
            " (bind sources are read on kubedock's side)"
        )
    return source
