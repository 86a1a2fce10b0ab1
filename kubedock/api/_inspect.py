"""Containers as Docker shows them: the inspect document, the list entries and the list's
filters, rendered from the engine's records."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..engine import (
    Container,
    ContainerConfig,
    Network,
    parse_reference,
)
from ..kube import PortSpec
from ..registry import ImageConfig
from ._app import engine
from ._create_body import log_config
from ._parse import (
    check_filters,
    labels_match,
)
from ._volumes import mount_documents

_ZERO_TIME = "0001-01-01T00:00:00Z"

def _timestamp(moment: datetime | None) -> str:
    """RFC 3339 in UTC as Go's RFC3339Nano writes it, which Docker uses: no trailing zeros in
    the fraction, no fraction at all for a whole second."""
    if moment is None:
        return _ZERO_TIME
    fraction = f".{moment.microsecond:06d}".rstrip("0").rstrip(".")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def _port_key(port: PortSpec) -> str:
    return f"{port.port}/{port.protocol}"


def _ports_document(container: Container) -> dict[str, Any]:
    ports: dict[str, Any] = {_port_key(p): None for p in container.config.ports_with_image}
    for published in container.published:
        key = _port_key(published.port)
        ports[key] = (ports.get(key) or []) + [
            {"HostIp": published.host_ip, "HostPort": str(published.host_port)}
        ]
    return ports


def _status(container: Container) -> str:
    """Docker's State.Status."""
    return "restarting" if container.restarting else container.status


def _state(container: Container) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Status": _status(container),
        # As Docker's: a container waiting to be restarted counts as running.
        "Running": container.status == "running" or container.restarting,
        "Paused": False,
        "Restarting": container.restarting,
        "OOMKilled": container.oom_killed,
        "Dead": False,
        "Pid": 1 if container.status == "running" else 0,
        "ExitCode": container.exit_code,
        "Error": container.error,
        "StartedAt": _timestamp(container.started_at),
        "FinishedAt": _timestamp(container.finished_at),
    }
    if container.health is not None:
        state["Health"] = {
            "Status": container.health.status,
            "FailingStreak": container.health.failing_streak,
            "Log": container.health.log,
        }
    return state


def _gateway(container: Container) -> str:
    """Where a client reaches the container's published ports.

    Clients that run in a container themselves (testcontainers' gateway mode) connect to the
    network gateway and the published port, as they would to a Docker host's bridge.
    """
    for published in container.published:
        return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(published.host_ip, published.host_ip)
    return ""


def _network_document(container: Container) -> dict[str, Any]:
    """One entry per network, all on the pod's one address (pods have a single interface)."""
    ip = container.pod_ip or ""
    names = list(engine().dns_names(container))
    return {
        network.name: {
            "IPAMConfig": None,
            "Links": [f"{name}:{alias}" for name, alias in endpoint.links] or None,
            "Aliases": list(endpoint.aliases) or None, "MacAddress": "",
            "NetworkID": network.id, "EndpointID": container.pod_name or "",
            "Gateway": _gateway(container), "IPAddress": ip,
            "IPPrefixLen": 0 if not ip else 32,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DriverOpts": _driver_options(container, network),
            "DNSNames": None if network.name == "bridge" else names,
        }
        for network, endpoint in engine().networks.of(container.id)
    }


def _driver_options(container: Container, network: Network) -> dict[str, str] | None:
    for ref, options in container.config.driver_options.items():
        if ref == network.name or (len(ref) >= 12 and network.id.startswith(ref)):
            return dict(options)
    return None


def _config_document(container: Container) -> dict[str, Any]:
    config = container.config
    document = dict(config.raw_config)
    document.update({
        "Hostname": config.hostname or container.short_id,
        "Domainname": "",
        "User": config.user or "",
        "Tty": config.tty,
        "OpenStdin": config.open_stdin,
        "StdinOnce": config.stdin_once,
        "Env": list(config.env),
        "Cmd": list(config.cmd) if config.cmd is not None else None,
        "Entrypoint": list(config.entrypoint) if config.entrypoint is not None else None,
        "Image": config.image,
        "WorkingDir": config.working_dir or "",
        "Labels": dict(config.labels),
        "ExposedPorts": {_port_key(p): {} for p in config.ports} or None,
    })
    for key in ("AttachStdin", "AttachStdout", "AttachStderr"):
        document.setdefault(key, False)
    for key in ("Volumes", "OnBuild"):
        document.setdefault(key, None)
    if config.stop_signal:
        document["StopSignal"] = config.stop_signal
    if config.image_config is not None:
        _merge_image_defaults(document, config.image_config)
    if isinstance(document.get("Healthcheck"), dict):
        document["Healthcheck"] = {k: v for k, v in document["Healthcheck"].items() if v}
    # Docker leaves these out when they are unset (Go's omitempty), as clients then expect.
    for key in _OMITTED_WHEN_EMPTY:
        if not document.get(key) and not (key == "StopTimeout" and document.get(key) == 0):
            document.pop(key, None)
    return document


def _command_line(config: ContainerConfig) -> list[str]:
    """What runs: the request's entrypoint and command, the image's where Docker takes them."""
    image = config.image_config
    if config.entrypoint is not None or image is None:
        return [*(config.entrypoint or ()), *(config.cmd or ())]
    return [*(image.entrypoint or ()), *(config.cmd if config.cmd is not None
                                         else image.cmd or ())]


def _merge_image_defaults(document: dict[str, Any], image: ImageConfig) -> None:
    """The image's defaults under the request's, as Docker merges them at create."""
    names = {item.partition("=")[0] for item in document["Env"]}
    document["Env"] = [*document["Env"], *(e for e in image.env
                                           if e.partition("=")[0] not in names)]
    if not document["Entrypoint"]:
        document["Entrypoint"] = list(image.entrypoint) if image.entrypoint else None
        if not document["Cmd"]:
            document["Cmd"] = list(image.cmd) if image.cmd else None
    document["User"] = document["User"] or image.user
    document["WorkingDir"] = document["WorkingDir"] or image.working_dir
    document["Labels"] = {**image.labels, **document["Labels"]}
    exposed = {port: {} for port in image.exposed_ports} | (document["ExposedPorts"] or {})
    document["ExposedPorts"] = exposed or None
    if image.volumes:
        document["Volumes"] = {path: {} for path in image.volumes} | (document["Volumes"] or {})
    document.setdefault("StopSignal", image.stop_signal)
    if image.healthcheck and not document.get("Healthcheck"):
        document["Healthcheck"] = dict(image.healthcheck)


_OMITTED_WHEN_EMPTY = ("ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled",
                       "MacAddress", "StopSignal", "StopTimeout", "Shell")


# Inspect's HostConfig for a container that asked for nothing, as Docker reports it and true of
# a pod: /dev/shm is 64 MiB, the runtime runc, and null leaves a setting to the node's defaults.
_HOST_CONFIG_DEFAULTS: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "bridge", "PortBindings": {},
    "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": False,
    "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0], "CapAdd": None,
    "CapDrop": None, "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [],
    "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None,
    "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
    "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "",
    "ShmSize": 64 * 1024 * 1024, "Runtime": "runc", "Isolation": "", "CpuShares": 0,
    "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
    "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None, "BlkioDeviceReadIOps": None,
    "BlkioDeviceWriteIOps": None, "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [],
    "DeviceCgroupRules": None, "DeviceRequests": None, "KernelMemoryTCP": 0,
    "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": False,
    "PidsLimit": None, "Ulimits": None, "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None,
}


def inspect_document(container: Container) -> dict[str, Any]:
    config = container.config
    image_id = config.image_config.id if config.image_config \
        else parse_reference(config.image).image_id
    host_config = {
        **copy.deepcopy(_HOST_CONFIG_DEFAULTS),
        "NetworkMode": config.network_mode,
        "AutoRemove": config.auto_remove,
        "ExtraHosts": [f"{name}:{ip}" for name, ip in config.extra_hosts] or None,
        # docker-java sends null for every option it does not set: Docker reports its default.
        **{key: value for key, value in config.raw_host_config.items() if value is not None},
        "RestartPolicy": {"Name": config.restart_policy.name,
                          "MaximumRetryCount": config.restart_policy.maximum_retries},
        "Links": engine().legacy_links(container) or None,
    }
    driver, options = log_config(config.raw_host_config)
    host_config["LogConfig"] = {"Type": driver, "Config": options}
    path, *arguments = _command_line(config) or [""]
    return {
        "Id": container.id,
        "Created": _timestamp(container.created),
        "Path": path,
        "Args": arguments,
        "State": _state(container),
        "Image": image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": "",
        "Name": f"/{container.name}",
        "RestartCount": container.restart_count,
        "Driver": "kubernetes",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config,
        "GraphDriver": {"Name": "kubernetes", "Data": {"Pod": container.pod_name or ""}},
        "Mounts": mount_documents(container),
        "Config": _config_document(container),
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": container.pod_name or "",
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": _ports_document(container),
            "SandboxKey": "",
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": container.pod_name or "",
            "Gateway": _gateway(container),
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": container.pod_ip or "",
            "IPPrefixLen": 32 if container.pod_ip else 0,
            "IPv6Gateway": "",
            "MacAddress": "",
            "Networks": _network_document(container),
        },
    }


def status_text(container: Container, now: datetime) -> str:
    """Docker's list Status: how long ago, in Docker's (go-units') words."""
    def since(moment: datetime | None) -> str:
        return human_duration((now - moment).total_seconds() if moment else 0.0)

    if container.status == "running":
        health = container.health.status if container.health else None
        suffix = {None: "", "starting": " (health: starting)"}.get(health, f" ({health})")
        return f"Up {since(container.started_at)}{suffix}"
    if container.restarting:
        return f"Restarting ({container.exit_code}) {since(container.finished_at)} ago"
    if container.status == "exited":
        return f"Exited ({container.exit_code}) {since(container.finished_at)} ago"
    if container.status == "removing":
        return "Removal In Progress"
    return "Created"


def human_duration(seconds: float) -> str:
    """A duration as Docker's ps words it (go-units HumanDuration)."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds // 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    for limit, unit, hours_each in ((48, "hours", 1), (24 * 7 * 2, "days", 24),
                                    (24 * 30 * 2, "weeks", 24 * 7),
                                    (24 * 365 * 2, "months", 24 * 30)):
        if hours < limit:
            return f"{hours // hours_each} {unit}"
    return f"{int(seconds // 3600) // 24 // 365} years"


def _listed_command(config: ContainerConfig) -> str:
    """The list's Command: arguments with a space in single quotes, as Docker shows them."""
    return " ".join(f"'{word}'" if " " in word and index else word
                    for index, word in enumerate(_command_line(config)))


def summary(container: Container) -> dict[str, Any]:
    ports = []
    for published in container.published:
        ports.append({"IP": published.host_ip, "PrivatePort": published.port.port,
                      "PublicPort": published.host_port, "Type": published.port.protocol})
    published_ports = {p.port for p in container.published}
    ports += [{"PrivatePort": p.port, "Type": p.protocol}
              for p in container.config.ports_with_image if p not in published_ports]
    config = container.config
    return {
        "Id": container.id,
        "Names": [f"/{container.name}"],
        "Image": config.image,
        "ImageID": config.image_config.id if config.image_config
        else parse_reference(config.image).image_id,
        "Command": _listed_command(config),
        "Created": int(container.created.timestamp()),
        "Ports": ports,
        "Labels": dict(config.labels),
        "State": _status(container),
        "Status": status_text(container, datetime.now(UTC)),
        "HostConfig": {"NetworkMode": config.network_mode},
        "NetworkSettings": {"Networks": _network_document(container)},
        "Mounts": mount_documents(container),
    }


def _regex_or_exact(pattern: str, value: str) -> bool:
    if pattern == value:
        return True
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return False


_CONTAINER_FILTERS: dict[str, Callable[[Container, str], bool]] = {
    "id": lambda c, v: c.id.startswith(v),
    "name": lambda c, v: _regex_or_exact(v, c.name) or _regex_or_exact(v, f"/{c.name}"),
    "status": lambda c, v: _status(c) == v,
    "ancestor": lambda c, v: _same_image(c.config.image, v),
    "exited": lambda c, v: c.status == "exited" and str(c.exit_code) == v,
    "network": lambda c, v: any(v in (n.name, n.id) for n, _ in engine().networks.of(c.id)),
    "health": lambda c, v: (c.health.status if c.health else "none") == v,
    "volume": lambda c, v: any(v in (m.target, m.source if m.kind == "volume" else "")
                               for m in c.config.mounts),
    "before": lambda c, v: False,
    "since": lambda c, v: False,
}


def _same_image(image: str, wanted: str) -> bool:
    try:
        return parse_reference(image).canonical == parse_reference(wanted).canonical
    except Exception:
        return image == wanted


def select_containers(containers: list[Container], filters: Mapping[str, list[str]]
                      ) -> list[Container]:
    check_filters(filters, set(_CONTAINER_FILTERS) | {"label"})
    selected = []
    for container in containers:
        if not all(labels_match(container.config.labels, wanted)
                   for wanted in filters.get("label", ())):
            continue
        if all(
            any(_CONTAINER_FILTERS[key](container, value) for value in values)
            for key, values in filters.items() if key not in ("label", "before", "since")
        ):
            selected.append(container)
    for key in ("before", "since"):
        for ref in filters.get(key, ()):
            anchor = engine().get(ref)
            selected = [c for c in selected if (c.created < anchor.created if key == "before"
                                                else c.created > anchor.created)]
    return selected
