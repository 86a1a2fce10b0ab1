"""Volume endpoints: create, list, inspect, remove, prune; and containers' mounts as inspect
shows them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, Response, jsonify, request

from ..engine import DRIVER, Container, NoSuchVolume, Volume
from ._app import api_version, engine, request_body
from ._errors import DockerError, bad_request
from ._parse import (
    check_filters,
    field,
    json_object,
    labels_match,
    parse_filters,
    prune_filter,
    query_bool,
    string_map,
)

blueprint = Blueprint("volumes", __name__)

# From API 1.42 on, a prune removes anonymous volumes only, unless the filter `all` says so.
_PRUNE_ANONYMOUS_FROM = (1, 42)


def volume_document(volume: Volume) -> dict[str, Any]:
    return {
        "CreatedAt": volume.created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Driver": DRIVER,
        "Labels": dict(volume.labels) or None,
        "Mountpoint": volume.mountpoint,
        "Name": volume.name,
        "Options": None,
        "Scope": "local",
    }


def mount_documents(container: Container) -> list[dict[str, Any]]:
    """`Mounts` of a container's inspect and list entries, as Docker shows them."""
    documents = []
    for mount in container.config.mounts:
        rw = not mount.read_only
        if mount.kind == "volume":
            documents.append({
                "Type": "volume", "Name": mount.source, "Source": _mountpoint(mount.source),
                "Destination": mount.target, "Driver": DRIVER,
                "Mode": "ro" if mount.read_only else ("" if mount.anonymous else "z"),
                "RW": rw, "Propagation": "",
            })
        elif mount.kind == "tmpfs":
            documents.append({"Type": "tmpfs", "Source": "", "Destination": mount.target,
                              "Mode": "", "RW": rw, "Propagation": ""})
        else:
            source = mount.source if mount.kind == "bind" else mount.target
            documents.append({"Type": "bind", "Source": source, "Destination": mount.target,
                              "Mode": "ro" if mount.read_only else "", "RW": rw,
                              "Propagation": "rprivate"})
    return documents


def _mountpoint(name: str) -> str:
    # Inspecting a container must not fail on one of its volumes, whatever became of it.
    try:
        return engine().volumes.get(name).mountpoint if name else ""
    except NoSuchVolume:
        return ""


@blueprint.route("/volumes/create", methods=["POST"])
async def create() -> tuple[Response, int]:
    body = json_object(await request_body())
    name = field(body, "Name", str) or None
    driver = field(body, "Driver", str) or DRIVER
    if driver != DRIVER:
        raise DockerError(404, f"create {name or ''}: error looking up volume plugin {driver}: "
                               f'plugin "{driver}" not found')
    if field(body, "DriverOpts", dict):
        raise DockerError(501, "volume driver options (DriverOpts) are not supported by "
                               "kubedock: a volume is a PersistentVolumeClaim of the configured "
                               "storage class")
    if field(body, "ClusterVolumeSpec", dict):
        raise DockerError(501, "cluster volumes (ClusterVolumeSpec) are not supported by "
                               "kubedock: it is not a swarm node")
    volume = await engine().volumes.create(name, string_map(body, "Labels"))
    return jsonify(volume_document(volume)), 201


def _name_matches(pattern: str, name: str) -> bool:
    if pattern == name:
        return True
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False


def _dangling(values: list[str]) -> bool:
    if any(value in ("true", "1") for value in values):
        return True
    if any(value in ("false", "0") for value in values):
        return False
    raise bad_request(f"invalid filter 'dangling=[{' '.join(values)}]'")


def _selection(filters: Mapping[str, list[str]]) -> Callable[[Volume], bool]:
    check_filters(filters, {"name", "label", "dangling", "driver"})
    dangling = _dangling(filters["dangling"]) if "dangling" in filters else None

    def selects(volume: Volume) -> bool:
        # Labels must all match; the values of any other filter are alternatives.
        return (all(labels_match(volume.labels, wanted) for wanted in filters.get("label", ()))
                and (not filters.get("name")
                     or any(_name_matches(pattern, volume.name) for pattern in filters["name"]))
                and (not filters.get("driver") or DRIVER in filters["driver"])
                and (dangling is None
                     or dangling == (not engine().volumes.users(volume))))

    return selects


@blueprint.route("/volumes", methods=["GET"])
async def list_volumes() -> Response:
    selects = _selection(parse_filters(request.args.get("filters")))
    volumes = [volume_document(v) for v in engine().volumes.all() if selects(v)]
    return jsonify({"Volumes": volumes, "Warnings": None})


@blueprint.route("/volumes/<name>", methods=["GET"])
async def inspect(name: str) -> Response:
    return jsonify(volume_document(engine().volumes.get(name)))


@blueprint.route("/volumes/<name>", methods=["DELETE"])
async def remove(name: str) -> Response:
    await engine().volumes.remove(name, force=query_bool(request.args, "force"))
    return Response(b"", status=204)


def _prune_all(filters: Mapping[str, list[str]]) -> bool:
    values = filters.get("all", [])
    if api_version() < _PRUNE_ANONYMOUS_FROM:
        return True
    if len(values) > 1:
        raise bad_request(f"invalid filter 'all=[{' '.join(values)}]': only one value is "
                          "expected")
    if not values:
        return False
    if values[0].lower() in ("1", "t", "true"):
        return True
    if values[0].lower() in ("0", "f", "false"):
        return False
    raise bad_request(f"invalid filter 'all': strconv.ParseBool: parsing \"{values[0]}\": "
                      "invalid syntax")


@blueprint.route("/volumes/prune", methods=["POST"])
async def prune() -> Response:
    filters = parse_filters(request.args.get("filters"))
    # Docker's volume prune takes no `until`.
    check_filters(filters, {"label", "label!", "all"})
    selection = prune_filter(filters, datetime.now(UTC), frozenset({"all"}))
    everything = _prune_all(filters)
    pruned = await engine().volumes.prune(
        lambda volume: (everything or volume.anonymous)
        and selection.selects(volume.created, volume.labels))
    return jsonify({"VolumesDeleted": [volume.name for volume in pruned],
                    "SpaceReclaimed": 0})
