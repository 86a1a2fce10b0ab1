"""Network endpoints: create, inspect, list, connect, disconnect, remove, prune."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, Response, jsonify, request

from ..engine import Network
from ._app import engine, request_body
from ._create_body import parse_links, refuse_endpoint_settings
from ._errors import DockerError, bad_request
from ._parse import (
    check_filters,
    field,
    json_object,
    labels_match,
    parse_filters,
    prune_filter,
    string_list,
    string_map,
)

blueprint = Blueprint("networks", __name__)


def _document(network: Network) -> dict[str, Any]:
    containers = {}
    for container_id in network.endpoints:
        container = engine().get(container_id)
        if container.status != "running":
            continue  # Docker lists the endpoints of running containers only
        containers[container.id] = {
            "Name": container.name,
            "EndpointID": container.pod_name or "",
            "MacAddress": "",
            "IPv4Address": f"{container.pod_ip}/32" if container.pod_ip else "",
            "IPv6Address": "",
        }
    ipam = dict(network.ipam or {})
    return {
        "Name": network.name,
        "Id": network.id,
        "Created": network.created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "Scope": network.scope,
        "Driver": network.driver,
        "EnableIPv6": network.enable_ipv6,
        "IPAM": {
            "Driver": ipam.get("Driver") or "default",
            "Options": ipam.get("Options"),
            "Config": ipam.get("Config") or [],
        },
        "Internal": network.internal,
        "Attachable": network.attachable,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": dict(network.options),
        "Labels": dict(network.labels),
    }


def _matches(pattern: str, value: str) -> bool:
    if pattern in value:
        return True
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return False


_FILTERS: dict[str, Callable[[Network, str], bool]] = {
    "name": lambda n, v: _matches(v, n.name),
    "id": lambda n, v: n.id.startswith(v),
    "label": lambda n, v: labels_match(n.labels, v),
    "driver": lambda n, v: n.driver == v,
    "type": lambda n, v: v == ("builtin" if n.predefined else "custom"),
    "scope": lambda n, v: v == n.scope,
    "dangling": lambda n, v: (v.lower() in ("1", "true")) == (not n.endpoints and not n.predefined),
}


def _selected(filters: Mapping[str, list[str]]) -> list[Network]:
    check_filters(filters, set(_FILTERS))
    if any(value not in ("builtin", "custom") for value in filters.get("type", ())):
        raise bad_request(f"invalid filter 'type={filters['type'][0]}'")
    return [
        network for network in engine().networks.all()
        # Labels must all match; the values of any other filter are alternatives.
        if all(labels_match(network.labels, wanted) for wanted in filters.get("label", ()))
        and all(any(_FILTERS[key](network, value) for value in values)
                for key, values in filters.items() if key != "label")
    ]


@blueprint.route("/networks", methods=["GET"])
async def list_networks() -> Response:
    return jsonify([_document(n) for n in _selected(parse_filters(request.args.get("filters")))])


@blueprint.route("/networks/<ref>", methods=["GET"])
async def inspect(ref: str) -> Response:
    return jsonify(_document(engine().networks.get(ref)))


def _publish(network: Network, action: str, **extra: str) -> None:
    engine().events.publish("network", action, network.id,
                            {"name": network.name, "type": network.driver, **extra})


@blueprint.route("/networks/create", methods=["POST"])
async def create() -> tuple[Response, int]:
    body = json_object(await request_body())
    name = field(body, "Name", str)
    if not name:
        raise bad_request("network name is required")
    network = engine().networks.create(
        name,
        driver=field(body, "Driver", str) or "bridge",
        labels=string_map(body, "Labels"),
        options=string_map(body, "Options"),
        internal=bool(field(body, "Internal", bool)),
        attachable=bool(field(body, "Attachable", bool)),
        enable_ipv6=bool(field(body, "EnableIPv6", bool)),
        ipam=field(body, "IPAM", dict),
    )
    _publish(network, "create")
    return jsonify({"Id": network.id, "Warning": ""}), 201


@blueprint.route("/networks/<ref>/connect", methods=["POST"])
async def connect(ref: str) -> Response:
    network = engine().networks.get(ref)
    body = json_object(await request_body())
    container = engine().get(field(body, "Container", str) or "")
    settings = field(body, "EndpointConfig", dict) or {}
    refuse_endpoint_settings(settings, "EndpointConfig")
    if settings.get("DriverOpts"):
        raise DockerError(501, "EndpointConfig.DriverOpts is not supported by kubedock on "
                               "connect: give them in the container's create request")
    aliases = string_list(settings, "Aliases", "EndpointConfig") or ()
    links = parse_links(settings, "EndpointConfig")
    await engine().connect_network(network, container, aliases, links)
    return Response(b"", status=200)


@blueprint.route("/networks/<ref>/disconnect", methods=["POST"])
async def disconnect(ref: str) -> Response:
    network = engine().networks.get(ref)
    body = json_object(await request_body())
    container = engine().get(field(body, "Container", str) or "")
    await engine().disconnect_network(network, container)
    return Response(b"", status=200)


@blueprint.route("/networks/<ref>", methods=["DELETE"])
async def remove(ref: str) -> Response:
    network = engine().networks.get(ref)
    engine().networks.remove(network)
    _publish(network, "destroy")
    return Response(b"", status=204)


@blueprint.route("/networks/prune", methods=["POST"])
async def prune() -> Response:
    selection = prune_filter(parse_filters(request.args.get("filters")), datetime.now(UTC))
    pruned = engine().networks.prune(
        lambda network: not selection.selects(network.created, network.labels))
    for network in pruned:
        _publish(network, "destroy")
    return jsonify({"NetworksDeleted": [n.name for n in pruned] or None})
