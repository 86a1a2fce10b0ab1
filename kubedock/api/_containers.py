"""Container endpoints: create, inspect, list, lifecycle, wait, logs."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, Response, jsonify, request

from .. import wire
from ..engine import (
    Container,
    ContainerConfig,
    Healthcheck,
    HostBinding,
    LogRequest,
    WaitCondition,
    parse_reference,
)
from ..kube import PortSpec
from ._app import engine, request_body
from ._errors import DockerError, bad_request, docker_error
from ._mounts import parse_mounts
from ._parse import (
    check_filters,
    field,
    json_object,
    parse_filters,
    query_bool,
    query_float,
    query_int,
    string_list,
    string_map,
)

blueprint = Blueprint("containers", __name__)

_ZERO_TIME = "0001-01-01T00:00:00Z"
_NANOSECONDS = 1_000_000_000


# -- create ---------------------------------------------------------------------------------

def _unsupported(option: str, why: str) -> DockerError:
    return DockerError(501, f"{option} is not supported by kubedock: {why}")


def _port_spec(text: str) -> PortSpec:
    number, _, protocol = text.partition("/")
    protocol = (protocol or "tcp").lower()
    if not number.isdigit() or not 0 < int(number) < 65536 or protocol not in (
        "tcp", "udp", "sctp"
    ):
        raise bad_request(f"invalid port specification: {text!r}")
    return PortSpec(int(number), protocol)


def _port_bindings(host_config: Mapping[str, Any]) -> dict[PortSpec, tuple[HostBinding, ...]]:
    document = field(host_config, "PortBindings", dict, "HostConfig.") or {}
    bindings: dict[PortSpec, tuple[HostBinding, ...]] = {}
    for key, entries in document.items():
        port = _port_spec(key)
        parsed = []
        for entry in entries or ():
            if not isinstance(entry, dict):
                raise bad_request(f"invalid port binding for {key}")
            host_port = str(entry.get("HostPort") or "").strip()
            if "-" in host_port:
                host_port = host_port.split("-", 1)[0]
            if host_port and (not host_port.isdigit() or int(host_port) > 65535):
                raise bad_request(f"invalid host port {host_port!r} for {key}")
            parsed.append(HostBinding(str(entry.get("HostIp") or ""), int(host_port or 0)))
        bindings[port] = tuple(parsed)
    return bindings


def _duration_seconds(document: Mapping[str, Any], name: str, default: float) -> float:
    value = field(document, name, int, "Healthcheck.")
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
    "VolumesFrom": "pods cannot share another pod's volumes",
    "Privileged": "pods run unprivileged",
    "CapAdd": "capabilities are not configurable",
    "Devices": "host devices are not available to pods",
    "Dns": "pods use the cluster's DNS",
    "DnsSearch": "pods use the cluster's DNS",
    "DnsOptions": "pods use the cluster's DNS",
    "Links": "legacy links are not available; use a network",
    "PidMode": "pods have their own PID namespace",
    "IpcMode": "pods have their own IPC namespace",
    "UTSMode": "pods have their own UTS namespace",
    "UsernsMode": "pods have their own user namespace setup",
    "Sysctls": "sysctls are set by the cluster",
    "SecurityOpt": "security options are set by the cluster",
    "ReadonlyRootfs": "a read-only root filesystem is not available yet",
    "Ulimits": "ulimits are set by the node",
    "ShmSize": "the shared memory size is set by the node",
}
_DEFAULT_NETWORK_MODES = {"", "default", "bridge"}
_REFUSED_NETWORK_MODES = {
    "host": "every pod has its own network namespace; publish ports instead",
    "none": "every pod is on the cluster network and cannot be taken off it",
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
    if mode not in _DEFAULT_NETWORK_MODES:
        networks[mode] = ()
    for key, endpoint in endpoints.items():
        if endpoint is not None and not isinstance(endpoint, dict):
            raise bad_request(f"invalid endpoint settings for network {key!r}")
        ref = "bridge" if key in _DEFAULT_NETWORK_MODES else key
        aliases = string_list(endpoint or {}, "Aliases", f"EndpointsConfig.{key}") or ()
        networks[ref] = networks.get(ref, ()) + aliases
    return networks


def _refuse_unsupported(host_config: Mapping[str, Any]) -> None:
    for option, why in _REFUSED_HOST_OPTIONS.items():
        value = host_config.get(option)
        if value in (None, False, 0, "", [], {}) or (option == "IpcMode" and value in (
            "private", "shareable"
        )) or (option == "PidMode" and value == "private"):
            continue
        raise _unsupported(f"HostConfig.{option}", why)
    mode = field(host_config, "NetworkMode", str, "HostConfig.") or ""
    refusal = _REFUSED_NETWORK_MODES.get(mode.partition(":")[0])
    if refusal:
        raise _unsupported(f"network mode {mode!r}", refusal)
    policy = field(host_config, "RestartPolicy", dict, "HostConfig.") or {}
    if (policy.get("Name") or "no") not in ("no", ""):
        raise _unsupported(f"restart policy {policy.get('Name')!r}",
                           "a pod that exits stays exited (restartPolicy Never)")


def parse_create(body: Mapping[str, Any]) -> ContainerConfig:
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
    if field(body, "Domainname", str):
        raise _unsupported("Domainname", "pods take their domain from the cluster")
    exposed = field(body, "ExposedPorts", dict) or {}
    env = string_list(body, "Env") or ()
    for item in env:
        if not item or item.startswith("="):
            raise bad_request(f"invalid environment variable: {item!r}")
    stop_timeout = field(body, "StopTimeout", int)
    memory = field(host_config, "Memory", int, "HostConfig.")
    nano_cpus = field(host_config, "NanoCpus", int, "HostConfig.")
    if (memory is not None and memory < 0) or (nano_cpus is not None and nano_cpus < 0):
        raise bad_request("invalid resources: Memory and NanoCpus must not be negative")
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
        memory=memory or None,
        nano_cpus=nano_cpus or None,
        extra_hosts=_extra_hosts(host_config),
        auto_remove=bool(field(host_config, "AutoRemove", bool, "HostConfig.")),
        network_mode=field(host_config, "NetworkMode", str) or "bridge",
        networks=networks,
        mounts=parse_mounts(body, host_config),
        raw_config={k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")},
        raw_host_config=host_config,
    )


@blueprint.route("/containers/create", methods=["POST"])
async def create() -> tuple[Response, int]:
    config = parse_create(json_object(await request_body()))
    if config.stop_signal:
        from ..engine import signal_name

        signal_name(config.stop_signal)
    name = request.args.get("name") or None
    container = engine().create(name, config)
    response = jsonify({"Id": container.id, "Warnings": []})
    return response, 201


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


def _state(container: Container) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Status": "removing" if container.status == "removing" else container.status,
        "Running": container.status == "running",
        "Paused": False,
        "Restarting": False,
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
            "IPAMConfig": None, "Links": None,
            "Aliases": list(endpoint.aliases) or None, "MacAddress": "",
            "NetworkID": network.id, "EndpointID": container.pod_name or "",
            "Gateway": _gateway(container), "IPAddress": ip,
            "IPPrefixLen": 0 if not ip else 32,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DriverOpts": None,
            "DNSNames": None if network.name == "bridge" else names,
        }
        for network, endpoint in engine().networks.of(container.id)
    }


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
    if config.stop_signal:
        document["StopSignal"] = config.stop_signal
    return document


def inspect_document(container: Container) -> dict[str, Any]:
    config = container.config
    image_id = parse_reference(config.image).image_id
    host_config = {
        "NetworkMode": config.network_mode,
        "PortBindings": {},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": config.auto_remove,
        "LogConfig": {"Type": "json-file", "Config": {}},
        "Memory": config.memory or 0,
        "NanoCpus": config.nano_cpus or 0,
        "ExtraHosts": [f"{name}:{ip}" for name, ip in config.extra_hosts] or None,
        **config.raw_host_config,
    }
    if host_config.get("LogConfig") is None:
        host_config["LogConfig"] = {"Type": "json-file", "Config": {}}
    entrypoint = list(config.entrypoint or ())
    args = list(config.cmd or ())
    path, *arguments = (entrypoint + args) or [""]
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
        "Mounts": [],
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
    command = " ".join([*(config.entrypoint or ()), *(config.cmd or ())])
    return {
        "Id": container.id,
        "Names": [f"/{container.name}"],
        "Image": config.image,
        "ImageID": parse_reference(config.image).image_id,
        "Command": command,
        "Created": int(container.created.timestamp()),
        "Ports": ports,
        "Labels": dict(config.labels),
        "State": container.status,
        "Status": _status_text(container),
        "HostConfig": {"NetworkMode": config.network_mode},
        "NetworkSettings": {"Networks": _network_document(container)},
        "Mounts": [],
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
    "status": lambda c, v: c.status == v,
    "ancestor": lambda c, v: _same_image(c.config.image, v),
    "exited": lambda c, v: c.status == "exited" and str(c.exit_code) == v,
    "network": lambda c, v: any(v in (n.name, n.id) for n, _ in engine().networks.of(c.id)),
    "health": lambda c, v: (c.health.status if c.health else "none") == v,
    "before": lambda c, v: False,
    "since": lambda c, v: False,
}


def _same_image(image: str, wanted: str) -> bool:
    try:
        return parse_reference(image).canonical == parse_reference(wanted).canonical
    except Exception:
        return image == wanted


def _label_matches(container: Container, wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    labels = container.config.labels
    return key in labels and (not sep or labels[key] == value)


def _select(containers: list[Container], filters: Mapping[str, list[str]]) -> list[Container]:
    check_filters(filters, set(_CONTAINER_FILTERS) | {"label"})
    selected = []
    for container in containers:
        if not all(_label_matches(container, wanted) for wanted in filters.get("label", ())):
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
        containers = [c for c in containers if c.status == "running"]
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


@blueprint.route("/containers/<ref>/rename", methods=["POST"])
async def rename(ref: str) -> Response:
    name = request.args.get("name", "")
    if not name:
        raise bad_request("name is required")
    engine().rename(engine().get(ref), name)
    return _no_content()


@blueprint.route("/containers/<ref>", methods=["DELETE"])
async def remove(ref: str) -> Response:
    container = engine().get(ref)
    if query_bool(request.args, "link"):
        raise _unsupported("removing links", "kubedock has no legacy links")
    await engine().remove(container, force=query_bool(request.args, "force"))
    return _no_content()


@blueprint.route("/containers/prune", methods=["POST"])
async def prune() -> Response:
    filters = parse_filters(request.args.get("filters"))
    check_filters(filters, {"label", "label!", "until"})
    deleted = []
    for container in engine().containers():
        if container.status not in ("created", "exited"):
            continue
        if not all(_label_matches(container, w) for w in filters.get("label", ())):
            continue
        if any(_label_matches(container, w) for w in filters.get("label!", ())):
            continue
        await engine().remove(container, force=True)
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

    async def body() -> AsyncIterator[bytes]:
        yield b""
        async for stream, data in containers.logs(container, log_request):
            yield data if tty else wire.frame(wire.Stream(stream), data)

    content_type = ("application/vnd.docker.raw-stream" if tty
                    else "application/vnd.docker.multiplexed-stream")
    return Response(body(), content_type=content_type)
