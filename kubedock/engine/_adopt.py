"""What a pod keeps of its container, so that a restarted kubedock can rebuild the record.

Two annotations: ``kubedock.record`` (the container's id, creation time, networks (id and
name) and create request, as compact JSON without defaults, the request's own documents
without their empty entries) is written with the pod; ``kubedock.ports`` (the host ports its
exposed ports were published on) follows once they are bound. The rest comes from the pod
itself: its name annotation, labels and status.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from .. import kube
from ._records import Container, ContainerConfig, PublishedPort

RECORD = "kubedock.record"
PORTS = "kubedock.ports"
NAME = "kubedock.containername"
# The request's own documents: clients send every field, mostly empty, which inspect fills in.
_RAW = frozenset({"raw_config", "raw_host_config"})


def record_annotation(container: Container, networks: list[tuple[str, str]]) -> str:
    """`networks`: (id, name) of each network the container is on."""
    return json.dumps({"id": container.id, "created": container.created.isoformat(),
                       "networks": networks, "config": _encode(container.config)},
                      separators=(",", ":"))


def ports_annotation(published: tuple[PublishedPort, ...]) -> str:
    return json.dumps([[p.port.port, p.port.protocol, p.host_ip, p.host_port]
                       for p in published], separators=(",", ":"))


@attrs.frozen
class Adoptee:
    """A container rebuilt from its pod, with the host ports it was published on and the
    networks it was on: (id, name)."""

    container: Container
    published: tuple[PublishedPort, ...]
    networks: tuple[tuple[str, str], ...]


def from_pod(pod: Mapping[str, Any]) -> Adoptee:
    """The record a pod keeps; ValueError when it keeps none (or one that cannot be read)."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if RECORD not in annotations:
        raise ValueError("the pod keeps no container record")
    try:
        record = json.loads(annotations[RECORD])
        config = _decode(ContainerConfig, record["config"])
        container = Container(
            id=str(record["id"]), name=str(annotations.get(NAME) or record["id"][:12]),
            created=datetime.fromisoformat(record["created"]), config=config,
            pod_name=str(metadata["name"]),
        )
        published = tuple(
            PublishedPort(kube.PortSpec(int(port), str(protocol)), str(host_ip), int(host_port))
            for port, protocol, host_ip, host_port in json.loads(annotations.get(PORTS, "[]")))
        networks = tuple((str(network_id), str(name))
                         for network_id, name in record.get("networks") or ())
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"unreadable container record: {error!r}") from None
    return Adoptee(container, published, networks)


def _encode(value: Any) -> Any:
    if attrs.has(type(value)):
        encoded = {}
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            if field.name in _RAW:
                item = {key: entry for key, entry in item.items() if entry}
            if item != _default(field):
                encoded[field.name] = _encode(item)
        return encoded
    if isinstance(value, Mapping):
        if all(isinstance(key, str) for key in value):
            return {key: _encode(item) for key, item in value.items()}
        return [[_encode(key), _encode(item)] for key, item in value.items()]
    if isinstance(value, tuple | list):
        return [_encode(item) for item in value]
    return value


def _default(field: attrs.Attribute[Any]) -> Any:
    default: Any = field.default
    return default.factory() if type(default) is attrs.Factory else default


def _decode(kind: Any, value: Any) -> Any:
    """`value` (decoded JSON) as the type `kind`: attrs classes, tuples, mappings, unions."""
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any or origin is typing.Literal:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return _decode(next(a for a in arguments if a is not type(None)), value)
    if origin is tuple:
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return tuple(_decode(arguments[0], item) for item in value)
        return tuple(_decode(a, item) for a, item in zip(arguments, value, strict=True))
    if origin is Mapping:
        key_kind, item_kind = arguments
        pairs = value.items() if isinstance(value, dict) else value
        return {_decode(key_kind, key): _decode(item_kind, item) for key, item in pairs}
    if isinstance(kind, type) and attrs.has(kind):
        hints = typing.get_type_hints(kind)
        return kind(**{field.name: _decode(hints[field.name], value[field.name])
                       for field in attrs.fields(kind) if field.name in value})
    if kind is float and isinstance(value, int):
        return float(value)
    if not isinstance(kind, type) or not isinstance(value, kind):
        raise ValueError(f"{value!r} is not a {kind}")
    return value
