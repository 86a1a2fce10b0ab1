"""Container endpoints: create, inspect, list, lifecycle, wait, logs."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast, get_args

import attrs
from quart import Blueprint, Response, jsonify, request

from .. import wire
from ..engine import (
    Conflict,
    Container,
    ContainerConfig,
    Healthcheck,
    HostBinding,
    LogRequest,
    Mount,
    Network,
    NoSuchContainer,
    NotFound,
    RestartPolicy,
    RestartPolicyName,
    WaitCondition,
    container_top,
    parse_reference,
)
from ..kube import PortSpec
from ..registry import ImageConfig
from ._app import bind_policy, engine, request_body
from ._errors import DockerError, bad_request, docker_error
from ._hijack import Hijack
from ._mounts import BindPolicy, parse_mounts, with_volumes_from
from ._parse import (
    check_filters,
    field,
    json_object,
    labels_match,
    parse_filters,
    prune_filter,
    query_bool,
    query_float,
    query_int,
    string_list,
    string_map,
)
from ._streams import read_ahead
from ._volumes import mount_documents

blueprint = Blueprint("containers", __name__)

_ZERO_TIME = "0001-01-01T00:00:00Z"
_NANOSECONDS = 1_000_000_000


# -- create ---------------------------------------------------------------------------------

def _unsupported(option: str, why: str) -> DockerError:
    return DockerError(501, f"{option} is not supported by kubedock: {why}")


def _is_number(text: str) -> bool:
    """Digits as Go reads them: ASCII only (Python's isdigit() takes "²", which int() refuses)."""
    return text.isascii() and text.isdigit()


def _port_spec(text: str) -> PortSpec:
    number, _, protocol = text.partition("/")
    protocol = (protocol or "tcp").lower()
    if not _is_number(number) or not 0 < int(number) < 65536 or protocol not in (
        "tcp", "udp", "sctp"
    ):
        raise bad_request(f"invalid port specification: {text!r}")
    return PortSpec(int(number), protocol)


def _port_bindings(host_config: Mapping[str, Any]) -> dict[PortSpec, tuple[HostBinding, ...]]:
    document = field(host_config, "PortBindings", dict, "HostConfig.") or {}
    bindings: dict[PortSpec, tuple[HostBinding, ...]] = {}
    for key, entries in document.items():
        port = _port_spec(key)
        if entries is not None and not isinstance(entries, list):
            raise bad_request(f"invalid port bindings for {key}: want a list")
        parsed = []
        for entry in entries or ():
            if not isinstance(entry, dict):
                raise bad_request(f"invalid port binding for {key}")
            host_port = str(entry.get("HostPort") or "").strip()
            if "-" in host_port:
                host_port = host_port.split("-", 1)[0]
            if host_port and (not _is_number(host_port) or int(host_port) > 65535):
                raise bad_request(f"invalid host port {host_port!r} for {key}")
            parsed.append(HostBinding(str(entry.get("HostIp") or ""), int(host_port or 0)))
        bindings[port] = tuple(parsed)
    return bindings


def _duration_seconds(document: Mapping[str, Any], name: str, default: float) -> float:
    value = field(document, name, int, "Healthcheck.")
    if value and value < 1_000_000:  # a probe every nanosecond would be a busy loop
        raise bad_request(f"{name} in Healthcheck cannot be less than 1ms")
    return default if not value else value / _NANOSECONDS


def _healthcheck(config: Mapping[str, Any]) -> Healthcheck | None:
    document = field(config, "Healthcheck", dict)
    if not document:
        return None
    test = string_list(document, "Test", "Healthcheck") or ()
    if not test or test[0] == "NONE":
        return None
    if test[0] not in ("CMD", "CMD-SHELL"):
        raise bad_request(f"invalid healthcheck test {test[0]!r}: want CMD or CMD-SHELL")
    retries = field(document, "Retries", int, "Healthcheck.") or 3
    if retries < 0:
        raise bad_request("Retries in Healthcheck cannot be negative")
    return Healthcheck(
        test=test,
        interval=_duration_seconds(document, "Interval", 30.0),
        timeout=_duration_seconds(document, "Timeout", 30.0),
        retries=retries,
        start_period=_duration_seconds(document, "StartPeriod", 0.0),
        start_interval=_duration_seconds(document, "StartInterval", 5.0),
    )


def _extra_hosts(host_config: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    hosts = []
    for entry in string_list(host_config, "ExtraHosts", "HostConfig") or ():
        name, sep, address = entry.partition(":") if "=" not in entry else entry.partition("=")
        if not sep or not name or not address:
            raise bad_request(f"invalid extra host {entry!r}: want name:ip")
        if address == "host-gateway":
            raise _unsupported("ExtraHosts host-gateway",
                               "pods have no Docker host gateway to point at")
        hosts.append((name, address.strip("[]")))
    return tuple(hosts)


# HostConfig options whose effect kubedock cannot reproduce on a pod, and that change what the
# container sees or does. A request that sets any of them is refused rather than half-honoured.
_REFUSED_HOST_OPTIONS: dict[str, str] = {
    "Privileged": "pods run unprivileged",
    "CapAdd": "kubedock does not add capabilities to pods",
    "Devices": "host devices are not available to pods",
    "DeviceRequests": "host devices are not available to pods",
    "DeviceCgroupRules": "host devices are not available to pods",
    "Dns": "pods use the cluster's DNS",
    "DnsSearch": "pods use the cluster's DNS",
    "DnsOptions": "pods use the cluster's DNS",
    "PidMode": "pods have their own PID namespace",
    "IpcMode": "pods have their own IPC namespace",
    "UTSMode": "pods have their own UTS namespace",
    "UsernsMode": "pods have their own user namespace setup",
    "CgroupnsMode": "pods have their own cgroup namespace",
    "Cgroup": "the kubelet places pods in cgroups",
    "CgroupParent": "the kubelet places pods in cgroups",
    "Sysctls": "sysctls are set by the cluster",
    "SecurityOpt": "security options are set by the cluster",
    "MaskedPaths": "masked paths are set by the container runtime",
    "ReadonlyPaths": "read-only paths are set by the container runtime",
    "ReadonlyRootfs": "a read-only root filesystem is not available yet",
    "Ulimits": "ulimits are set by the node",
    "ShmSize": "the shared memory size is set by the node",
    "Init": "kubedock has no init process to run in a pod yet",
    "PidsLimit": "the kubelet sets one PID limit for every pod of a node",
    "OomKillDisable": "the node's OOM killer cannot be turned off for a pod",
    "OomScoreAdj": "the kubelet sets OOM scores from the pod's QoS class",
    "MemorySwappiness": "pods cannot tune swapping",
    "KernelMemory": "kernel memory cannot be limited for a pod",
    "KernelMemoryTCP": "kernel memory cannot be limited for a pod",
    "BlkioWeight": "block I/O cannot be limited for a pod",
    "BlkioWeightDevice": "block I/O cannot be limited for a pod",
    "BlkioDeviceReadBps": "block I/O cannot be limited for a pod",
    "BlkioDeviceWriteBps": "block I/O cannot be limited for a pod",
    "BlkioDeviceReadIOps": "block I/O cannot be limited for a pod",
    "BlkioDeviceWriteIOps": "block I/O cannot be limited for a pod",
    "CpuRealtimePeriod": "realtime scheduling is not available to pods",
    "CpuRealtimeRuntime": "realtime scheduling is not available to pods",
    "CpusetCpus": "CPU pinning is the kubelet's CPU manager's",
    "CpusetMems": "memory node pinning is the kubelet's",
    "CpuCount": "it is a Windows option",
    "CpuPercent": "it is a Windows option",
    "IOMaximumIOps": "it is a Windows option",
    "IOMaximumBandwidth": "it is a Windows option",
    "StorageOpt": "storage options are the node's",
    "VolumeDriver": "volume drivers are not available",
    "Runtime": "pods run with the cluster's container runtime",
    "Isolation": "Linux has only the default isolation",
    "Annotations": "runtime annotations cannot be passed through a pod",
}
# Values of those options that ask for nothing beyond what a pod does anyway, besides absent,
# false, zero and empty.
_HARMLESS_VALUES: dict[str, tuple[Any, ...]] = {
    "IpcMode": ("private", "shareable"),
    "PidMode": ("private",),
    "UTSMode": ("private",),
    "CgroupnsMode": ("private",),
    "PidsLimit": (-1,),
    "MemorySwappiness": (-1,),
    "VolumeDriver": ("local",),
    "Runtime": ("runc",),
    "Isolation": ("default",),
}
_ABSENT: tuple[Any, ...] = (None, False, 0, "", [], {})


def _asks_for_something(option: str, value: Any) -> bool:
    if option in ("MaskedPaths", "ReadonlyPaths"):
        return value is not None  # an empty list unmasks everything
    return value not in _ABSENT + _HARMLESS_VALUES.get(option, ())
_DEFAULT_NETWORK_MODES = {"", "default", "bridge"}
_REFUSED_NETWORK_MODES = {
    "host": "every pod has its own network namespace; publish ports instead",
    "container": "pods cannot share another pod's network namespace",
}


def _networks(body: Mapping[str, Any], host_config: Mapping[str, Any]
              ) -> dict[str, tuple[str, ...]]:
    """Network reference → aliases, from NetworkMode and NetworkingConfig.EndpointsConfig.

    Clients key EndpointsConfig by network name (Go, Python) or id (Java); the engine resolves
    both, and merges two keys that turn out to be the same network.
    """
    networking = field(body, "NetworkingConfig", dict) or {}
    endpoints = field(networking, "EndpointsConfig", dict, "NetworkingConfig.") or {}
    networks: dict[str, tuple[str, ...]] = {}
    mode = field(host_config, "NetworkMode", str, "HostConfig.") or ""
    if field(body, "NetworkDisabled", bool) and mode in _DEFAULT_NETWORK_MODES:
        mode = "none"  # no networking: loopback alone, as on the none network
    if mode not in _DEFAULT_NETWORK_MODES:
        networks[mode] = ()
    for key, endpoint in endpoints.items():
        if endpoint is not None and not isinstance(endpoint, dict):
            raise bad_request(f"invalid endpoint settings for network {key!r}")
        refuse_endpoint_settings(endpoint or {}, f"EndpointsConfig.{key}")
        ref = "bridge" if key in _DEFAULT_NETWORK_MODES else key
        aliases = string_list(endpoint or {}, "Aliases", f"EndpointsConfig.{key}") or ()
        networks[ref] = networks.get(ref, ()) + aliases
    return networks


def parse_links(document: Mapping[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    """``Links`` entries ``name:alias`` (or ``name``, its own alias) as (name, alias)."""
    links = []
    for entry in string_list(document, "Links", where) or ():
        name, _, alias = entry.partition(":")
        name, alias = name.removeprefix("/"), alias.rpartition("/")[2] or name.removeprefix("/")
        if not name:
            raise bad_request(f"invalid link {entry!r}: want name:alias")
        links.append((name, alias))
    return tuple(links)


def _links(body: Mapping[str, Any], host_config: Mapping[str, Any]
           ) -> tuple[tuple[tuple[str, str], ...], dict[str, tuple[tuple[str, str], ...]]]:
    """Legacy links (HostConfig.Links on the default bridge), and links per network reference.

    As with Docker, HostConfig.Links of a container on a user network are that network's links.
    """
    networking = field(body, "NetworkingConfig", dict) or {}
    endpoints = field(networking, "EndpointsConfig", dict, "NetworkingConfig.") or {}
    per_network = {"bridge" if key in _DEFAULT_NETWORK_MODES else key:
                   parse_links(endpoint or {}, f"EndpointsConfig.{key}")
                   for key, endpoint in endpoints.items()}
    legacy = parse_links(host_config, "HostConfig")
    mode = field(host_config, "NetworkMode", str, "HostConfig.") or ""
    if legacy and mode not in _DEFAULT_NETWORK_MODES:
        per_network[mode] = per_network.get(mode, ()) + legacy
        legacy = ()
    return legacy, {ref: links for ref, links in per_network.items() if links}


def _restart_policy(host_config: Mapping[str, Any]) -> RestartPolicy:
    """HostConfig.RestartPolicy, checked as Docker checks it."""
    document = field(host_config, "RestartPolicy", dict, "HostConfig.") or {}
    name = field(document, "Name", str, "HostConfig.RestartPolicy.") or "no"
    retries = field(document, "MaximumRetryCount", int, "HostConfig.RestartPolicy.") or 0
    if name not in get_args(RestartPolicyName):
        raise bad_request(f"invalid restart policy '{name}'")
    if name != "on-failure" and retries:
        raise bad_request(f"maximum retry count cannot be used with restart policy '{name}'")
    if retries < 0:
        raise bad_request("maximum retry count cannot be negative")
    if name != "no" and field(host_config, "AutoRemove", bool, "HostConfig."):
        raise bad_request("can't create 'AutoRemove' container with restart policy")
    return RestartPolicy(cast(RestartPolicyName, name), retries)


def refuse_endpoint_settings(endpoint: Mapping[str, Any], where: str) -> None:
    """Refuse what a pod's one interface on the cluster network cannot be given."""
    ipam = field(endpoint, "IPAMConfig", dict, f"{where}.") or {}
    if any(value not in _ABSENT for value in ipam.values()):
        raise _unsupported(f"{where}.IPAMConfig", "pods get their addresses from the cluster")
    if field(endpoint, "MacAddress", str, f"{where}."):
        raise _unsupported(f"{where}.MacAddress", "pods get their addresses from the cluster")


def endpoint_driver_options(body: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """DriverOpts per network reference (name or id), echoed by inspect: the bridge driver
    ignores the keys it does not know, and kubedock's networks know none."""
    networking = field(body, "NetworkingConfig", dict) or {}
    endpoints = field(networking, "EndpointsConfig", dict, "NetworkingConfig.") or {}
    return {key: string_map(endpoint, "DriverOpts", f"EndpointsConfig.{key}.")
            for key, endpoint in endpoints.items() if endpoint and endpoint.get("DriverOpts")}


def _refuse_unsupported(host_config: Mapping[str, Any]) -> None:
    for option, why in _REFUSED_HOST_OPTIONS.items():
        if _asks_for_something(option, host_config.get(option)):
            raise _unsupported(f"HostConfig.{option}", why)
    mode = field(host_config, "NetworkMode", str, "HostConfig.") or ""
    refusal = _REFUSED_NETWORK_MODES.get(mode.partition(":")[0])
    if refusal:
        raise _unsupported(f"network mode {mode!r}", refusal)


_CAPABILITIES = frozenset({
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
})


def _dropped_capabilities(host_config: Mapping[str, Any]) -> tuple[str, ...]:
    """CapDrop as Kubernetes spells capabilities: upper case, no CAP_ prefix, or ALL."""
    dropped = []
    for name in string_list(host_config, "CapDrop", "HostConfig") or ():
        bare = name.upper().removeprefix("CAP_")
        if bare != "ALL" and bare not in _CAPABILITIES:
            raise bad_request(f'invalid CapDrop: unknown capability: "CAP_{bare}"')
        dropped.append(bare)
    return tuple(dict.fromkeys(dropped))


def _group_ids(host_config: Mapping[str, Any]) -> tuple[int, ...]:
    groups = []
    for group in string_list(host_config, "GroupAdd", "HostConfig") or ():
        if _is_number(group):
            groups.append(int(group))
        elif group == "root":
            groups.append(0)
        else:
            raise _unsupported(f"HostConfig.GroupAdd {group!r}",
                               "only numeric group ids: group names are the image's to resolve")
    return tuple(groups)


def _resource(host_config: Mapping[str, Any], name: str) -> int:
    value = field(host_config, name, int, "HostConfig.") or 0
    if value < 0 and name != "CpuQuota":  # a quota of -1 means none, as Docker takes it
        raise bad_request(f"invalid resources: {name} must not be negative")
    return max(value, 0)


def _cpu_limit(host_config: Mapping[str, Any]) -> int | None:
    """The CPU cap in billionths of a CPU: NanoCpus, or CpuQuota per CpuPeriod (Docker's
    checks and texts); a period without a quota caps nothing."""
    nano_cpus = _resource(host_config, "NanoCpus")
    quota, period = _resource(host_config, "CpuQuota"), _resource(host_config, "CpuPeriod")
    if nano_cpus and period:
        raise bad_request("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano_cpus and quota:
        raise bad_request("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if period and not 1000 <= period <= 1_000_000:
        raise bad_request("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than "
                          "1 second (i.e. 1000000)")
    if quota and quota < 1000:
        raise bad_request("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if quota:
        return quota * 1_000_000_000 // (period or 100_000)
    return nano_cpus or None


def _memory(host_config: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """Memory (the limit) and MemoryReservation; MemorySwap caps memory plus swap, which a
    pod (that does not swap) never exceeds, so only its consistency is checked, as Docker does."""
    memory = _resource(host_config, "Memory")
    reservation = _resource(host_config, "MemoryReservation")
    swap = field(host_config, "MemorySwap", int, "HostConfig.") or 0
    if memory and memory < 6 * 1024 * 1024:
        raise bad_request("Minimum memory limit allowed is 6MB")
    if memory and reservation > memory:
        raise bad_request("Minimum memory limit can not be less than memory reservation limit, "
                          "see usage")
    if swap > 0 and not memory:
        raise bad_request("You should always set the Memory limit when using Memoryswap limit, "
                          "see usage")
    if swap > 0 and swap < memory:
        raise bad_request("Minimum memoryswap limit should be larger than memory limit, "
                          "see usage")
    return memory or None, reservation or None


_LOG_DRIVERS = {"": "json-file", "json-file": "json-file", "local": "local", "none": "none"}
# Docker's other drivers: kubedock reads logs from the kubelet and ships them nowhere else.
_DOCKER_LOG_DRIVERS = {"syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "etwlogs",
                       "gcplogs", "logentries"}
_LOG_OPTIONS = {
    "json-file": {"max-size", "max-file", "compress", "labels", "labels-regex", "env",
                  "env-regex", "tag"},
    "local": {"max-size", "max-file", "compress"},
    "none": set(),
}


def log_config(host_config: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """The log driver (Docker's default when none is named) and its options.

    kubedock keeps every container's output as the kubelet does (which rotates it), so it has
    json-file and local (which differ only on a Docker host's disk) and none (no logs to read).
    """
    document = field(host_config, "LogConfig", dict, "HostConfig.") or {}
    driver = field(document, "Type", str, "HostConfig.LogConfig.") or ""
    options = string_map(document, "Config", "HostConfig.LogConfig.")
    if driver in _DOCKER_LOG_DRIVERS:
        raise bad_request(f"log driver {driver!r} is not supported by kubedock: it keeps "
                          "container output in the cluster (json-file, local or none)")
    if driver not in _LOG_DRIVERS:
        raise bad_request(f'error looking up logging plugin {driver}: plugin "{driver}" '
                          'not found')
    driver = _LOG_DRIVERS[driver]
    for option in options:
        if option not in _LOG_OPTIONS[driver]:
            raise bad_request(f"unknown log opt '{option}' for {driver} log driver")
    return driver, options


def _console_size(host_config: Mapping[str, Any]) -> tuple[int, int] | None:
    size = field(host_config, "ConsoleSize", list, "HostConfig.")
    if not size:
        return None
    if len(size) != 2 or not all(isinstance(n, int) and n >= 0 for n in size):
        raise bad_request("invalid HostConfig.ConsoleSize: want [height, width]")
    return (size[0], size[1]) if all(size) else None


def parse_create(body: Mapping[str, Any], binds: BindPolicy | None = None) -> ContainerConfig:
    image = field(body, "Image", str)
    if not image:
        raise bad_request("Config cannot be empty in order to create a container")
    try:
        parse_reference(image)
    except Exception as error:
        raise docker_error(error) from None
    host_config = field(body, "HostConfig", dict) or {}
    _refuse_unsupported(host_config)
    networks = _networks(body, host_config)
    links, network_links = _links(body, host_config)
    if field(body, "Domainname", str):
        raise _unsupported("Domainname", "pods take their domain from the cluster")
    if field(body, "MacAddress", str):
        raise _unsupported("MacAddress", "pods get their addresses from the cluster network")
    exposed = field(body, "ExposedPorts", dict) or {}
    env = string_list(body, "Env") or ()
    for item in env:
        if not item or item.startswith("="):
            raise bad_request(f"invalid environment variable: {item!r}")
    stop_timeout = field(body, "StopTimeout", int)
    memory, memory_reservation = _memory(host_config)
    log_config(host_config)
    hostname = field(body, "Hostname", str) or None
    if hostname and not re.fullmatch(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?", hostname):
        raise bad_request(f"invalid hostname {hostname!r}: want a DNS label")
    return ContainerConfig(
        image=image,
        entrypoint=string_list(body, "Entrypoint"),
        cmd=string_list(body, "Cmd"),
        env=env,
        working_dir=field(body, "WorkingDir", str) or None,
        user=field(body, "User", str) or None,
        labels=string_map(body, "Labels"),
        tty=bool(field(body, "Tty", bool)),
        open_stdin=bool(field(body, "OpenStdin", bool)),
        stdin_once=bool(field(body, "StdinOnce", bool)),
        hostname=hostname,
        exposed_ports=tuple(_port_spec(key) for key in exposed),
        stop_signal=field(body, "StopSignal", str) or None,
        stop_timeout=stop_timeout,
        healthcheck=_healthcheck(body),
        port_bindings=_port_bindings(host_config),
        memory=memory,
        nano_cpus=_cpu_limit(host_config),
        cpu_shares=_resource(host_config, "CpuShares") or None,
        memory_reservation=memory_reservation,
        group_add=_group_ids(host_config),
        cap_drop=_dropped_capabilities(host_config),
        console_size=_console_size(host_config),
        extra_hosts=_extra_hosts(host_config),
        auto_remove=bool(field(host_config, "AutoRemove", bool, "HostConfig.")),
        restart_policy=_restart_policy(host_config),
        links=links,
        network_mode=field(host_config, "NetworkMode", str) or "bridge",
        networks=networks,
        network_links=network_links,
        driver_options=endpoint_driver_options(body),
        mounts=parse_mounts(body, host_config, binds or BindPolicy()),
        raw_config={k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")},
        raw_host_config=host_config,
    )


def with_image_defaults(config: ContainerConfig, image: ImageConfig) -> ContainerConfig:
    """What a container takes from its image beyond what the runtime applies in the pod: the
    image's healthcheck (field by field under the request's, as Docker merges them) and, with
    PublishAllPorts, the image's exposed ports."""
    request_check = field(config.raw_config, "Healthcheck", dict) or {}
    healthcheck = config.healthcheck
    if image.healthcheck and request_check.get("Test") != ["NONE"]:
        merged = {**image.healthcheck, **{k: v for k, v in request_check.items() if v}}
        healthcheck = _healthcheck({"Healthcheck": merged})
    exposed = config.exposed_ports
    if field(config.raw_host_config, "PublishAllPorts", bool, "HostConfig."):
        exposed = tuple(dict.fromkeys((*exposed, *map(_port_spec, image.exposed_ports))))
    return attrs.evolve(config, healthcheck=healthcheck, exposed_ports=exposed,
                        image_config=image)


@blueprint.route("/containers/create", methods=["POST"])
async def create() -> tuple[Response, int]:
    config = parse_create(json_object(await request_body()), bind_policy())
    image = await engine().images.of_container(config.image)
    if image is not None and image.config is not None:
        config = with_image_defaults(config, image.config)
    if config.stop_signal:
        from ..engine import signal_name

        signal_name(config.stop_signal)
    name = request.args.get("name") or None
    volumes_from = string_list(config.raw_host_config, "VolumesFrom", "HostConfig") or ()
    if volumes_from:
        config = attrs.evolve(config, mounts=with_volumes_from(
            config.mounts, volumes_from, _mounts_of))
    await engine().volumes.ensure(config.mounts)
    container = engine().create(name, config)
    if config.console_size:
        height, width = config.console_size
        container.terminal.request(width, height)
    response = jsonify({"Id": container.id, "Warnings": []})
    return response, 201


def _mounts_of(ref: str) -> tuple[Mount, ...] | None:
    try:
        return engine().get(ref).config.mounts
    except NoSuchContainer:
        return None


# -- inspect and list -----------------------------------------------------------------------

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
    ports: dict[str, Any] = {_port_key(p): None for p in container.config.ports}
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


@blueprint.route("/containers/<ref>/json", methods=["GET"])
async def inspect(ref: str) -> Response:
    return jsonify(inspect_document(engine().get(ref)))


def _status_text(container: Container) -> str:
    if container.status == "running":
        since = container.started_at
        health = f" ({container.health.status})" if container.health else ""
        return f"Up since {_timestamp(since)}{health}"
    if container.restarting:
        return f"Restarting ({container.exit_code}) at {_timestamp(container.finished_at)}"
    if container.status == "exited":
        return f"Exited ({container.exit_code}) at {_timestamp(container.finished_at)}"
    if container.status == "removing":
        return "Removal In Progress"
    return "Created"


def _summary(container: Container) -> dict[str, Any]:
    ports = []
    for published in container.published:
        ports.append({"IP": published.host_ip, "PrivatePort": published.port.port,
                      "PublicPort": published.host_port, "Type": published.port.protocol})
    published_ports = {p.port for p in container.published}
    ports += [{"PrivatePort": p.port, "Type": p.protocol}
              for p in container.config.ports if p not in published_ports]
    config = container.config
    command = " ".join(_command_line(config))
    return {
        "Id": container.id,
        "Names": [f"/{container.name}"],
        "Image": config.image,
        "ImageID": config.image_config.id if config.image_config
        else parse_reference(config.image).image_id,
        "Command": command,
        "Created": int(container.created.timestamp()),
        "Ports": ports,
        "Labels": dict(config.labels),
        "State": _status(container),
        "Status": _status_text(container),
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


def _select(containers: list[Container], filters: Mapping[str, list[str]]) -> list[Container]:
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


@blueprint.route("/containers/json", methods=["GET"])
async def list_containers() -> Response:
    filters = parse_filters(request.args.get("filters"))
    show_all = query_bool(request.args, "all")
    limit = query_int(request.args, "limit", -1) or -1
    containers = engine().containers()
    if not show_all and limit <= 0 and "status" not in filters and "exited" not in filters:
        containers = [c for c in containers if c.status == "running" or c.restarting]
    containers = _select(containers, filters)
    if limit > 0:
        containers = containers[:limit]
    return jsonify([_summary(c) for c in containers])


# -- lifecycle ------------------------------------------------------------------------------

def _no_content() -> Response:
    return Response(b"", status=204)


@blueprint.route("/containers/<ref>/start", methods=["POST"])
async def start(ref: str) -> Response:
    container = engine().get(ref)
    await engine().start(container)
    return _no_content()


def _stop_seconds() -> int | None:
    return query_int(request.args, "t") if "t" in request.args else query_int(
        request.args, "timeout")


@blueprint.route("/containers/<ref>/stop", methods=["POST"])
async def stop(ref: str) -> Response:
    container = engine().get(ref)
    await engine().stop(container, _stop_seconds())
    return _no_content()


@blueprint.route("/containers/<ref>/restart", methods=["POST"])
async def restart(ref: str) -> Response:
    container = engine().get(ref)
    await engine().restart(container, _stop_seconds())
    return _no_content()


@blueprint.route("/containers/<ref>/kill", methods=["POST"])
async def kill(ref: str) -> Response:
    container = engine().get(ref)
    await engine().kill(container, request.args.get("signal", ""))
    return _no_content()


@blueprint.route("/containers/<ref>/top", methods=["GET"])
async def top(ref: str) -> Response:
    titles, processes = await container_top(engine(), engine().get(ref),
                                            request.args.get("ps_args", ""))
    return jsonify({"Processes": processes, "Titles": titles})


@blueprint.route("/containers/<ref>/rename", methods=["POST"])
async def rename(ref: str) -> Response:
    name = request.args.get("name", "")
    if not name:
        raise bad_request("name is required")
    engine().rename(engine().get(ref), name)
    return _no_content()


@blueprint.route("/containers/<ref>", methods=["DELETE"])
async def remove(ref: str) -> Response:
    if query_bool(request.args, "link"):
        raise _unsupported("removing links", "a link lasts as long as the linking container")
    container = engine().get(ref)
    await engine().remove(container, force=query_bool(request.args, "force"))
    return _no_content()


@blueprint.route("/containers/prune", methods=["POST"])
async def prune() -> Response:
    selection = prune_filter(parse_filters(request.args.get("filters")), datetime.now(UTC))
    deleted = []
    for container in engine().containers():
        if container.status not in ("created", "exited"):
            continue
        if not selection.selects(container.created, container.config.labels):
            continue
        try:
            await engine().remove(container, force=False)
        except (Conflict, NotFound):
            continue  # started, or removed, meanwhile: not for pruning, as with Docker
        deleted.append(container.id)
    return jsonify({"ContainersDeleted": deleted or None, "SpaceReclaimed": 0})


_WAIT_CONDITIONS: tuple[WaitCondition, ...] = ("not-running", "next-exit", "removed")


@blueprint.route("/containers/<ref>/wait", methods=["POST"])
async def wait(ref: str) -> Response:
    container = engine().get(ref)
    wanted = request.args.get("condition") or "not-running"
    for condition in _WAIT_CONDITIONS:
        if condition == wanted:
            break
    else:
        raise bad_request(f"invalid condition: {wanted!r}")

    containers = engine()  # the app context does not reach into the streamed body

    async def body() -> AsyncIterator[bytes]:
        # The 200 goes out at once: the docker CLI waits for it before it starts the container.
        yield b""
        try:
            await containers.wait(container, condition)
        except Exception as failure:
            message = docker_error(failure).message
            yield json.dumps({"StatusCode": -1, "Error": {"Message": message}}).encode()
            return
        error = {"Message": container.error} if container.error else None
        yield json.dumps({"StatusCode": container.exit_code, "Error": error}).encode() + b"\n"

    return Response(body(), content_type="application/json")


# -- logs -----------------------------------------------------------------------------------

@blueprint.route("/containers/<ref>/logs", methods=["GET"])
async def logs(ref: str) -> Response:
    container = engine().get(ref)
    if log_config(container.config.raw_host_config)[0] == "none":
        raise DockerError(501, "configured logging driver does not support reading")
    args = request.args
    stdout, stderr = query_bool(args, "stdout"), query_bool(args, "stderr")
    if not (stdout or stderr):
        raise bad_request("You must choose at least one stream")
    tail_text = args.get("tail", "all").strip().lower()
    if tail_text in ("", "all"):
        tail = None
    else:
        try:
            tail = int(tail_text)
        except ValueError:
            raise bad_request(f"invalid value for tail: {tail_text!r}") from None
        tail = None if tail < 0 else tail
    log_request = LogRequest(
        stdout=stdout, stderr=stderr,
        follow=query_bool(args, "follow") and container.status == "running",
        timestamps=query_bool(args, "timestamps"),
        since=query_float(args, "since") or None,
        until=query_float(args, "until") or None,
        tail=tail,
    )
    tty = container.config.tty

    containers = engine()  # the app context does not reach into the streamed body

    async def frames() -> AsyncIterator[bytes]:
        async for stream, data in containers.logs(container, log_request):
            yield data if tty else wire.frame(wire.Stream(stream), data)

    async def followed() -> AsyncIterator[bytes]:
        yield b""  # the head at once, as Docker's, before the container writes anything
        async for chunk in frames():
            yield chunk

    if log_request.follow:
        body = followed()
    else:
        body = await read_ahead(frames())
        if hijack := Hijack.offered(request.scope):
            hijack.write_head_with_body()

    content_type = ("application/vnd.docker.raw-stream" if tty
                    else "application/vnd.docker.multiplexed-stream")
    return Response(body, content_type=content_type)
