"""Query-string and JSON-body parsing with Docker's rules (and its error texts)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from ._errors import bad_request

T = TypeVar("T")

_FALSE = {"", "0", "no", "false", "none"}


def query_bool(args: Mapping[str, str], name: str, default: bool = False) -> bool:
    """Docker's boolean form values: ``""``, 0, no, false and none are false (any case)."""
    if name not in args:
        return default
    return args[name].strip().lower() not in _FALSE


def query_int(args: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    value = args.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {value!r} is not an integer") from None


def query_float(args: Mapping[str, str], name: str) -> float | None:
    """A unix time as Docker accepts it: seconds, fractional or ``seconds.nanoseconds``."""
    value = args.get(name, "")
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {value!r}") from None


def parse_filters(text: str | None) -> dict[str, list[str]]:
    """Both encodings clients send: ``{"k": ["v"]}`` and Go's ``{"k": {"v": true}}``."""
    if not text:
        return {}
    try:
        document = json.loads(text)
    except ValueError as error:
        raise bad_request(f"invalid filter: {error}") from None
    if not isinstance(document, dict):
        raise bad_request("invalid filter: want a JSON object")
    filters: dict[str, list[str]] = {}
    for key, values in document.items():
        if isinstance(values, dict):
            filters[key] = [v for v, on in values.items() if on]
        elif isinstance(values, list) and all(isinstance(v, str) for v in values):
            filters[key] = list(values)
        elif isinstance(values, str):
            filters[key] = [values]
        else:
            raise bad_request(f"invalid filter {key!r}")
    return filters


def check_filters(filters: Mapping[str, list[str]], accepted: set[str]) -> None:
    for key in filters:
        if key not in accepted:
            raise bad_request(f"invalid filter '{key}'")


def json_object(data: bytes, *, allow_empty: bool = False) -> dict[str, Any]:
    if not data.strip():
        if allow_empty:
            return {}
        raise bad_request("request body is empty: want a JSON object")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise bad_request(f"invalid JSON in request body: {error}") from None
    if document is None and allow_empty:
        return {}
    if not isinstance(document, dict):
        raise bad_request("invalid request body: want a JSON object")
    return document


_TYPE_NAMES = {str: "string", bool: "bool", int: "integer", list: "array", dict: "object"}


def _member(document: Mapping[str, Any], name: str) -> Any:
    """A member as Go's JSON decoding finds it: by its exact name, else in any case (docker-py
    sends an exec's `detachKeys`)."""
    if name in document:
        return document[name]
    folded = name.casefold()
    return next((value for key, value in document.items() if key.casefold() == folded), None)


def field(document: Mapping[str, Any], name: str, kind: type[T], where: str = "") -> T | None:
    """A typed optional field; JSON null means absent (docker-java sends null for unset)."""
    value = _member(document, name)
    if value is None:
        return None
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise bad_request(
            f"json: cannot unmarshal {type(value).__name__} into field {where}{name} "
            f"of type {_TYPE_NAMES.get(kind, kind.__name__)}"
        )
    return value


def string_list(document: Mapping[str, Any], name: str, where: str = "",
                *, split_string: bool = False) -> tuple[str, ...] | None:
    """A list of strings; Docker also takes a single string for Cmd/Entrypoint/Healthcheck."""
    value = _member(document, name)
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(value.split()) if split_string else (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"json: cannot unmarshal {name} in {where or 'body'}: want strings")
    return tuple(value)


def string_map(document: Mapping[str, Any], name: str, where: str = "") -> dict[str, str]:
    value = document.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise bad_request(f"json: cannot unmarshal {where}{name}: want an object of strings")
    return dict(value)
