"""Query-string and JSON-body parsing with Docker's rules (and its error texts)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import attrs

from ._errors import bad_request

T = TypeVar("T")

_FALSE = {"", "0", "no", "false", "none"}


def query_bool(args: Mapping[str, str], name: str, default: bool = False) -> bool:
    """Docker's boolean form values: ``""``, 0, no, false and none are false (any case)."""
    if name not in args:
        return default
    return args[name].strip().lower() not in _FALSE


_GO_INTEGER = re.compile(r"[+-]?[0-9]+")
_UNSIGNED = re.compile(r"[0-9]+")
_INT64 = 2**63


def _go_int(text: str, parser: str) -> int:
    """`text` as Go's strconv parses a 64-bit integer, with its error texts: no spaces,
    underscores or non-ASCII digits (which Python's int() takes), nothing beyond 64 bits."""
    if not _GO_INTEGER.fullmatch(text):
        raise bad_request(f'{parser}: parsing "{text}": invalid syntax')
    value = int(text)
    if not -_INT64 <= value < _INT64:
        raise bad_request(f'{parser}: parsing "{text}": value out of range')
    return value


def query_int(args: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    """An integer as Docker reads one (Go's `strconv.Atoi`)."""
    value = args.get(name, "")
    if value == "":
        return default
    return _go_int(value, "strconv.Atoi")


def query_float(args: Mapping[str, str], name: str) -> float | None:
    """A unix time as Docker accepts it: ``seconds`` or ``seconds.fraction``, each part a
    64-bit integer (NaN, infinities and exponents are refused, as Docker does)."""
    value = args.get(name, "")
    if value == "":
        return None
    seconds, _, fraction = value.partition(".")
    _go_int(seconds, "strconv.ParseInt")
    if "." in value and not _UNSIGNED.fullmatch(fraction):
        raise bad_request(f'strconv.ParseInt: parsing "{fraction}": invalid syntax')
    return float(value)


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


def labels_match(labels: Mapping[str, str], wanted: str) -> bool:
    """A `label` filter value: ``key`` (present) or ``key=value``."""
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


_GO_DURATION = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_GO_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                    "m": 60.0, "h": 3600.0}


def go_duration(text: str) -> timedelta | None:
    """A Go duration (``90s``, ``1h30m``, ``-1.5h``); None for anything else."""
    if not _GO_DURATION.fullmatch(text):
        return None
    seconds = sum(float(number) * _GO_UNIT_SECONDS[unit]
                  for number, unit in _GO_DURATION_PART.findall(text))
    return timedelta(seconds=-seconds if text.startswith("-") else seconds)


def parse_time(value: str, now: datetime) -> datetime:
    """A moment as Docker's `until` and `since` take it: a Go duration before `now`, an RFC 3339
    time or date (in local time when it names no zone), or Unix seconds[.nanoseconds]."""
    try:
        return _moment(value, now)
    except (ValueError, OverflowError, OSError):  # beyond what a datetime holds, too
        raise bad_request(f'failed to parse value as time or duration: "{value}"') from None


def _moment(value: str, now: datetime) -> datetime:
    duration = go_duration(value) if value != "0" else None
    if duration is not None:
        return now - duration
    if "-" in value:
        # Python keeps microseconds: nanoseconds beyond them are dropped.
        moment = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value))
        return moment if moment.tzinfo else moment.astimezone()
    return datetime.fromtimestamp(float(value), UTC)


@attrs.frozen
class PruneFilter:
    """Which unused objects a prune removes: created before `until`, carrying every `label`,
    and not carrying every `label!` (Docker's rules)."""

    until: datetime | None = None
    labels: tuple[str, ...] = ()
    not_labels: tuple[str, ...] = ()

    def selects(self, created: datetime, labels: Mapping[str, str]) -> bool:
        if self.until is not None and created > self.until:
            return False
        if not all(labels_match(labels, wanted) for wanted in self.labels):
            return False
        return not (self.not_labels
                    and all(labels_match(labels, wanted) for wanted in self.not_labels))


def prune_filter(filters: Mapping[str, list[str]], now: datetime,
                 accepted: frozenset[str] = frozenset()) -> PruneFilter:
    """The `until`, `label` and `label!` filters of a prune; `accepted` names the others the
    caller handles itself."""
    check_filters(filters, {"until", "label", "label!"} | accepted)
    untils = filters.get("until", [])
    if len(untils) > 1:
        raise bad_request("more than one until filter specified")
    return PruneFilter(
        until=parse_time(untils[0], now) if untils else None,
        labels=tuple(filters.get("label", ())),
        not_labels=tuple(filters.get("label!", ())),
    )


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
    # Docker's integers are Go's 64-bit ones; Docker 20.10 answers a bigger number with a 500,
    # but the input is at fault.
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        raise bad_request(f"json: cannot unmarshal number {value} into field {where}{name} "
                          "of type int64")
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
