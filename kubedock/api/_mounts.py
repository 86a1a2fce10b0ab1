"""`HostConfig.Binds`, `HostConfig.Mounts`, `HostConfig.Tmpfs` and `Volumes` → mounts.

Bind sources are read on kubedock's side when the container starts and copied into the pod
(a one-way copy: changes in the container are not seen on the host), so a bind hands the client
whatever kubedock can read: a `BindPolicy` keeps kubedock's credentials and the kernel's trees
out of reach. A named volume is a PersistentVolumeClaim (see engine.VolumeStore), which
containers can share; an anonymous one is an emptyDir of its pod.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from ..engine import Mount
from ._errors import DockerError, bad_request
from ._parse import field, string_list, string_map

# A bind of these gives the container kubedock's Docker API; nothing is read from them.
_DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


# Never bound, nor any directory holding them: the kernel's and devices' trees, and the service
# account tokens Kubernetes mounts into pods (kubedock's own, when it runs in one).
_OFF_LIMITS = (
    ("/proc", "process and kernel state"),
    ("/sys", "kernel state"),
    ("/dev", "devices"),
    ("/var/run/secrets/kubernetes.io", "service account tokens"),
    ("/run/secrets/kubernetes.io", "service account tokens"),
)


@attrs.frozen
class BindPolicy:
    """Which of kubedock's paths binds may read; every path here is absolute and resolved.

    `guarded` paths (with what they are) are never read, nor any directory holding one;
    `roots`, when given, are the only trees bind sources may come from.
    """

    guarded: tuple[tuple[str, str], ...] = _OFF_LIMITS
    roots: tuple[str, ...] = ()

    @classmethod
    def on_this_host(cls, secrets: Iterable[tuple[str, str]] = (),
                     roots: Iterable[str] = ()) -> BindPolicy:
        """The policy guarding `secrets`, kubedock's own files (kubeconfig, TLS key and
        certificates) with what they are, and the off-limits trees, each resolved on this host
        (/var/run is often a link to /run); bind sources restricted to `roots` if any."""
        resolved = [(os.path.realpath(path), what) for path, what in [*_OFF_LIMITS, *secrets]]
        return cls(guarded=tuple(dict.fromkeys([*_OFF_LIMITS, *resolved])),
                   roots=tuple(os.path.realpath(root) for root in roots))

    def refusal(self, path: str) -> str | None:
        """Why a bind may not read `path` (absolute, resolved), or None when it may."""
        for guarded, what in self.guarded:
            if _within(path, guarded):
                return f"it is in {guarded} ({what})"
            if _within(guarded, path):
                return f"it holds {guarded} ({what})"
        if self.roots and not any(_within(path, root) for root in self.roots):
            return f"it is outside the bind roots ({', '.join(self.roots)})"
        return None


def _within(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def parse_mounts(body: Mapping[str, Any], host_config: Mapping[str, Any],
                 policy: BindPolicy) -> tuple[Mount, ...]:
    mounts: dict[str, Mount] = {}
    for text in string_list(host_config, "Binds", "HostConfig") or ():
        mount = _bind(text, policy)
        mounts[mount.target] = mount
    for item in field(host_config, "Mounts", list, "HostConfig.") or ():
        mount = _mount(item, policy)
        mounts[mount.target] = mount
    for target in field(host_config, "Tmpfs", dict, "HostConfig.") or {}:
        mounts[_target(target)] = Mount("tmpfs", _target(target))
    for target in field(body, "Volumes", dict) or {}:
        mounts.setdefault(_target(target), Mount("volume", _target(target)))
    return tuple(mounts.values())


def with_volumes_from(mounts: tuple[Mount, ...], entries: Iterable[str],
                      mounts_of: Callable[[str], tuple[Mount, ...] | None]) -> tuple[Mount, ...]:
    """`mounts` and those of the containers `HostConfig.VolumesFrom` names (``name[:ro|:rw]``;
    `mounts_of` gives None for an unknown container): named volumes and binds, as the source
    has them or read-only with ``ro``; the container's own mounts win at the same target.
    An anonymous volume is its pod's emptyDir, which no other pod can mount: refused."""
    inherited: dict[str, Mount] = {}
    for entry in entries:
        name, _, mode = entry.partition(":")
        if mode not in ("", "ro", "rw"):
            raise bad_request(f"invalid mode: {mode}")
        source = mounts_of(name)
        if source is None:
            raise bad_request(f"No such container: {name}")
        for mount in source:
            if mount.kind == "volume" and (mount.anonymous or not mount.source):
                raise DockerError(501, f"HostConfig.VolumesFrom is not supported by kubedock for "
                                       f"the anonymous volume {mount.target} of {name}: it "
                                       "lives in that container's pod alone (use a named volume)")
            if mount.kind in ("volume", "bind"):
                read_only = mode == "ro" or (not mode and mount.read_only)
                inherited[mount.target] = attrs.evolve(mount, read_only=read_only)
    own = {mount.target for mount in mounts}
    return mounts + tuple(mount for target, mount in inherited.items() if target not in own)


def _bind(text: str, policy: BindPolicy) -> Mount:
    parts = text.split(":")
    if len(parts) == 1:
        return Mount("volume", _target(parts[0]))
    if len(parts) > 3:
        raise bad_request(f"invalid volume specification: {text!r}")
    source, target = parts[0], _target(parts[1])
    options = set(parts[2].split(",")) if len(parts) == 3 else set()
    read_only = "ro" in options
    if source.startswith("/"):
        return _bind_mount(source, target, read_only, policy)
    return Mount("volume", target, source, read_only, no_copy="nocopy" in options)


def _mount(item: Any, policy: BindPolicy) -> Mount:
    if not isinstance(item, Mapping):
        raise bad_request("HostConfig.Mounts: want a list of objects")
    kind = field(item, "Type", str, "HostConfig.Mounts.") or "volume"
    target = _target(str(item.get("Target") or ""))
    read_only = bool(item.get("ReadOnly"))
    if kind == "bind":
        return _bind_mount(str(item.get("Source") or ""), target, read_only, policy)
    if kind == "volume":
        options = field(item, "VolumeOptions", dict, "HostConfig.Mounts.") or {}
        return _volume_mount(str(item.get("Source") or ""), target, read_only, options)
    if kind == "tmpfs":
        return Mount("tmpfs", target)
    raise DockerError(501, f"mount type {kind!r} is not supported by kubedock")


def _volume_mount(source: str, target: str, read_only: bool,
                  options: Mapping[str, Any]) -> Mount:
    where = "HostConfig.Mounts.VolumeOptions."
    driver = field(options, "DriverConfig", dict, where) or {}
    driver_name = field(driver, "Name", str, where + "DriverConfig.") or "local"
    if driver_name != "local":
        raise DockerError(404, f"error looking up volume plugin {driver_name}: "
                               f'plugin "{driver_name}" not found')
    if driver.get("Options"):
        raise DockerError(501, "volume driver options are not supported by kubedock: a named "
                               "volume is a PersistentVolumeClaim of the configured storage class")
    sub_path = (field(options, "Subpath", str, where) or "").strip("/")
    if sub_path and not source:
        raise bad_request("invalid mount config: VolumeOptions.Subpath needs a named volume")
    labels = string_map(options, "Labels", where)
    return Mount("volume", target, source, read_only, sub_path=sub_path,
                 volume_labels=tuple(sorted(labels.items())),
                 no_copy=bool(field(options, "NoCopy", bool, where)))


def _target(target: str) -> str:
    if not target.startswith("/"):
        raise bad_request(f"invalid mount config: mount path must be absolute: {target!r}")
    return posixpath.normpath(target)


def _bind_mount(source: str, target: str, read_only: bool, policy: BindPolicy) -> Mount:
    if posixpath.normpath(source) in _DOCKER_SOCKETS:
        if posixpath.dirname(target) == "/":
            raise DockerError(501, (
                f"kubedock serves the Docker socket {target} from a directory it mounts over "
                "the container's: bind it somewhere below /, such as /var/run/docker.sock"
            ))
        return Mount("docker-socket", target)
    return Mount("bind", target, _source(source, policy), read_only)


def _source(source: str, policy: BindPolicy) -> str:
    """The resolved path of an allowed bind source: what is checked is what is read."""
    resolved = os.path.realpath(source)
    refusal = policy.refusal(resolved)
    if refusal:
        shown = source if resolved == source else f"{source} (that is, {resolved})"
        raise bad_request(
            f"invalid mount config for type \"bind\": kubedock does not bind {shown}: {refusal}"
        )
    if not os.path.lexists(source):
        raise bad_request(
            f"invalid mount config for type \"bind\": bind source path does not exist: {source}"
            " (bind sources are read on kubedock's side)"
        )
    return resolved
