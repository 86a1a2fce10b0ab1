"""The pod watch's stream, read: events parsed and handed on, and how the watch fares.

Pure of I/O but for logging: `follow` reads the lines of one watch response that the caller
opened (see `Cluster.watch_pod_documents`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal

from ._errors import KubeError

log = logging.getLogger(__name__)

# Called with each pod document and whether the pod is gone.
PodCallback = Callable[[Mapping[str, Any], bool], None]


async def follow(
    lines: AsyncIterator[str],
    version: str,
    on_change: PodCallback,
    known: dict[str, Mapping[str, Any]],
    health: WatchHealth,
) -> str | None:
    """Report the events of one watch stream; the version to resume from, None to relist.

    An ERROR event other than 410 Gone (our version is too old: list again) is raised.
    """
    async for line in lines:
        if not line.strip():
            continue
        event = parse_event(line)
        if event is None:
            log.warning("pod watch: skipped a malformed event: %.200r", line)
            continue
        kind, pod = event
        if kind == "ERROR":
            code = pod.get("code")
            if code == 410:
                return None
            raise KubeError(str(pod.get("message") or f"watch error {code}"),
                            status=code if isinstance(code, int) else 0,
                            reason=str(pod.get("reason") or ""))
        health.settled()
        version = str(pod["metadata"].get("resourceVersion") or version)
        if kind == "BOOKMARK":
            continue
        name = pod_name_of(pod)
        if name is None:
            log.warning("pod watch: skipped a %s event without a pod name: %.200r", kind, line)
        elif kind == "DELETED":
            known.pop(name, None)
            report(on_change, pod, True)
        else:
            known[name] = pod
            report(on_change, pod, False)
    health.settled()
    return version


def parse_event(line: str) -> tuple[str, Mapping[str, Any]] | None:
    """A watch event's type and object; None unless it has both, the object with metadata
    (an ERROR event's Status object needs none)."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    kind, thing = event.get("type"), event.get("object")
    if not isinstance(kind, str) or not isinstance(thing, dict):
        return None
    if kind != "ERROR" and not isinstance(thing.get("metadata"), dict):
        return None
    return kind, thing


def pod_name_of(pod: Mapping[str, Any]) -> str | None:
    metadata = pod.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) and name else None


def report(on_change: PodCallback, pod: Mapping[str, Any], deleted: bool) -> None:
    """Hand one pod to `on_change`; a pod it fails on is logged and the watch goes on."""
    try:
        on_change(pod, deleted)
    except Exception:
        log.exception("pod watch: could not take in pod %s", pod_name_of(pod))


class WatchHealth:
    """How a pod watch fares: why it fails now (None while it works).

    Each distinct failure is logged once per outage, and the end of the outage once: when the
    watch has delivered an event or run its term, not merely connected (a watch that connects
    and then fails at once is still out).
    """

    def __init__(self) -> None:
        self.failure: str | None = None
        self._logged: set[str] = set()

    def failed(self, reason: str, *, unexpected: bool = False) -> None:
        """Called in an except block; an `unexpected` failure is logged with its traceback."""
        self.failure = reason
        if reason not in self._logged:
            self._logged.add(reason)
            log.warning("pod watch failing, retrying: %s", reason, exc_info=unexpected)

    def working(self) -> None:
        """The watch is connected."""
        self.failure = None

    def settled(self) -> None:
        """The watch delivers."""
        if self._logged:
            log.info("pod watch working again")
            self._logged.clear()


def watch_failure(action: Literal["list", "watch"], exc: Exception, namespace: str) -> str:
    if not isinstance(exc, KubeError):
        return f"cannot {action} pods in namespace {namespace}: {type(exc).__name__}: {exc}"
    if exc.status == 403:
        return f"kubedock lacks the right to {action} pods in namespace {namespace}: {exc.message}"
    if exc.status == 401:
        return f"the Kubernetes API server refused kubedock's credentials: {exc.message}"
    status = f" ({exc.status})" if exc.status else ""
    return f"cannot {action} pods in namespace {namespace}{status}: {exc.message}"
