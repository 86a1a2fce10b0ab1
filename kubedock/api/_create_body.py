"""Docker's create body (`POST /containers/create`) → `engine.ContainerConfig`: pure parsing.

Every option is mapped to what a pod can express or refused by name (`DockerError`), never
dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast, get_args

import attrs

from ..engine import (
    ContainerConfig,
    Healthcheck,
    HostBinding,
    InvalidParameter,
    RestartPolicy,
    RestartPolicyName,
    parse_reference,
    signal_name,
)
from ..kube import PortSpec
from ..registry import ImageConfig
from ._errors import DockerError, bad_request, docker_error
from ._mounts import BindPolicy, parse_mounts
from ._parse import (
    field,
    string_list,
    string_map,
)

_NANOSECONDS = 1_000_000_000

def unsupported(option: str, why: str) -> DockerError:
    return DockerError(501, f"{option} is not supported by kubedock: {why}")


def _is_number(text: str) -> bool:
    """Digits as Go reads them: ASCII only (Python's isdigit() takes "²", which int() refuses)."""
    return text.isascii() and text.isdigit()


def port_spec(text: str) -> PortSpec:
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
        port = port_spec(key)
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


def healthcheck_config(config: Mapping[str, Any]) -> Healthcheck | None:
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
            raise unsupported("ExtraHosts host-gateway",
                               "pods have no Docker host gateway to point at")
        hosts.append((name, address.strip("[]")))
    return tuple(hosts)


# HostConfig options whose effect kubedock cannot reproduce on a pod, and that change what the
# container sees or does. A request that sets any of them is refused rather than half-honoured.
REFUSED_HOST_OPTIONS: dict[str, str] = {
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


def asks_for_something(option: str, value: Any) -> bool:
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


def parse_restart_policy(host_config: Mapping[str, Any]) -> RestartPolicy:
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
        raise unsupported(f"{where}.IPAMConfig", "pods get their addresses from the cluster")
    if field(endpoint, "MacAddress", str, f"{where}."):
        raise unsupported(f"{where}.MacAddress", "pods get their addresses from the cluster")


def endpoint_driver_options(body: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """DriverOpts per network reference (name or id), echoed by inspect: the bridge driver
    ignores the keys it does not know, and kubedock's networks know none."""
    networking = field(body, "NetworkingConfig", dict) or {}
    endpoints = field(networking, "EndpointsConfig", dict, "NetworkingConfig.") or {}
    return {key: string_map(endpoint, "DriverOpts", f"EndpointsConfig.{key}.")
            for key, endpoint in endpoints.items() if endpoint and endpoint.get("DriverOpts")}


def _refuse_unsupported(host_config: Mapping[str, Any]) -> None:
    for option, why in REFUSED_HOST_OPTIONS.items():
        if asks_for_something(option, host_config.get(option)):
            raise unsupported(f"HostConfig.{option}", why)
    mode = field(host_config, "NetworkMode", str, "HostConfig.") or ""
    refusal = _REFUSED_NETWORK_MODES.get(mode.partition(":")[0])
    if refusal:
        raise unsupported(f"network mode {mode!r}", refusal)


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
            raise unsupported(f"HostConfig.GroupAdd {group!r}",
                               "only numeric group ids: group names are the image's to resolve")
    return tuple(groups)


def resource(host_config: Mapping[str, Any], name: str) -> int:
    value = field(host_config, name, int, "HostConfig.") or 0
    if value < 0 and name != "CpuQuota":  # a quota of -1 means none, as Docker takes it
        raise bad_request(f"invalid resources: {name} must not be negative")
    return max(value, 0)


def cpu_limit(host_config: Mapping[str, Any]) -> int | None:
    """The CPU cap in billionths of a CPU: NanoCpus, or CpuQuota per CpuPeriod (Docker's
    checks and texts); a period without a quota caps nothing."""
    nano_cpus = resource(host_config, "NanoCpus")
    quota, period = resource(host_config, "CpuQuota"), resource(host_config, "CpuPeriod")
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


def memory_limits(host_config: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """Memory (the limit) and MemoryReservation; MemorySwap caps memory plus swap, which a
    pod (that does not swap) never exceeds, so only its consistency is checked, as Docker does."""
    memory = resource(host_config, "Memory")
    reservation = resource(host_config, "MemoryReservation")
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
        raise unsupported("Domainname", "pods take their domain from the cluster")
    if field(body, "MacAddress", str):
        raise unsupported("MacAddress", "pods get their addresses from the cluster network")
    exposed = field(body, "ExposedPorts", dict) or {}
    env = string_list(body, "Env") or ()
    for item in env:
        if not item or item.startswith("="):
            raise bad_request(f"invalid environment variable: {item!r}")
    stop_timeout = field(body, "StopTimeout", int)
    memory, memory_reservation = memory_limits(host_config)
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
        exposed_ports=tuple(port_spec(key) for key in exposed),
        stop_signal=field(body, "StopSignal", str) or None,
        stop_timeout=stop_timeout,
        healthcheck=healthcheck_config(body),
        port_bindings=_port_bindings(host_config),
        memory=memory,
        nano_cpus=cpu_limit(host_config),
        cpu_shares=resource(host_config, "CpuShares") or None,
        memory_reservation=memory_reservation,
        group_add=_group_ids(host_config),
        cap_drop=_dropped_capabilities(host_config),
        console_size=_console_size(host_config),
        extra_hosts=_extra_hosts(host_config),
        auto_remove=bool(field(host_config, "AutoRemove", bool, "HostConfig.")),
        init=bool(field(host_config, "Init", bool, "HostConfig.")),
        restart_policy=parse_restart_policy(host_config),
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
    image's healthcheck (field by field under the request's, as Docker merges them), its stop
    signal unless the request names one and, with PublishAllPorts, the image's exposed ports."""
    request_check = field(config.raw_config, "Healthcheck", dict) or {}
    healthcheck = config.healthcheck
    if image.healthcheck and request_check.get("Test") != ["NONE"]:
        merged = {**image.healthcheck, **{k: v for k, v in request_check.items() if v}}
        healthcheck = healthcheck_config({"Healthcheck": merged})
    exposed = config.exposed_ports
    if field(config.raw_host_config, "PublishAllPorts", bool, "HostConfig."):
        exposed = tuple(dict.fromkeys((*exposed, *map(port_spec, image.exposed_ports))))
    return attrs.evolve(config, healthcheck=healthcheck, exposed_ports=exposed,
                        stop_signal=config.stop_signal or _deliverable(image.stop_signal),
                        image_config=image)


def _deliverable(stop_signal: str) -> str | None:
    """An image's stop signal kubedock can send; another (``SIGRTMIN+3``) leaves the kubelet's
    SIGTERM, rather than refusing the image."""
    try:
        return signal_name(stop_signal) if stop_signal else None
    except InvalidParameter:
        return None
