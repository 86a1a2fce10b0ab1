"""The pod watch's I/O: list the selected pods, then watch them, resuming, relisting and
retrying forever (reading one watch stream is `_watch`'s)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import httpx
import trio

from ._errors import KubeError
from ._transport import Transport, unwind
from ._watch import PodCallback, WatchHealth, follow, pod_name_of, report, watch_failure

log = logging.getLogger(__name__)

# Watches are re-opened now and then so a silently dead connection cannot stall them forever.
_WATCH_SECONDS = 240
# The API server sends a watch that allows bookmarks one about every minute (Kubernetes 1.34,
# with its watch cache, as by default): longer silence means a dead connection.
_WATCH_SILENCE_SECONDS = 90.0
_RETRY_FIRST, _RETRY_MAX = 0.5, 10.0


async def watch_pod_documents(
    transport: Transport,
    label_selector: str,
    on_change: PodCallback,
    *,
    task_status: trio.TaskStatus[WatchHealth] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Report every change of the selected pods to `on_change`, forever.

    Starts (task_status, with the watch's `WatchHealth`) once the current pods have been
    reported; a refusal of that first listing is raised. Afterwards the API server may
    drop, expire the resource version (410), refuse or be unreachable for a while: the
    watch logs each distinct failure once, retries with backoff, lists again, reports pods
    that vanished meanwhile as deleted, and carries on. Events it cannot read are skipped.
    """
    known: dict[str, Mapping[str, Any]] = {}
    health = WatchHealth()
    try:
        version: str | None = await _relist(transport, label_selector, on_change, known)
    except KubeError as exc:
        raise type(exc)(watch_failure("list", exc, transport.namespace),
                        status=exc.status, reason=exc.reason) from exc
    task_status.started(health)
    delay = _RETRY_FIRST
    while True:
        action: Literal["list", "watch"] = "watch"
        try:
            if version is None:
                action = "list"
                version = await _relist(transport, label_selector, on_change, known)
                action = "watch"
            version = await _watch_once(transport, label_selector, version, on_change,
                                        known, health)
            delay = _RETRY_FIRST
        except Exception as exc:
            # Whatever the failure, the engine must not go blind for good: retry.
            health.failed(watch_failure(action, exc, transport.namespace),
                          unexpected=not isinstance(exc, KubeError))
            version = None
            await trio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)


async def _relist(
    transport: Transport,
    label_selector: str,
    on_change: PodCallback,
    known: dict[str, Mapping[str, Any]],
) -> str:
    async with transport.request("GET", "pods", params={"labelSelector": label_selector}) as r:
        listing = r.json()
    current = {}
    for item in listing.get("items") or ():
        name = pod_name_of(item)
        if name is None:
            log.warning("pod watch: skipped a pod without a name in a listing: %.200r", item)
        else:
            current[name] = item
    for name in known.keys() - current.keys():
        report(on_change, known.pop(name), True)
    for name, pod in current.items():
        known[name] = pod
        report(on_change, pod, False)
    return str(listing["metadata"]["resourceVersion"])


async def _watch_once(
    transport: Transport,
    label_selector: str,
    version: str,
    on_change: PodCallback,
    known: dict[str, Mapping[str, Any]],
    health: WatchHealth,
) -> str | None:
    """One watch connection; the version to resume from, None to relist."""
    params = {
        "labelSelector": label_selector,
        "watch": "1",
        "resourceVersion": version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": str(_WATCH_SECONDS),
    }
    timeout = httpx.Timeout(30.0, read=_WATCH_SILENCE_SECONDS)
    async with transport.request(
        "GET", "pods", params=params, stream=True, http_timeout=timeout
    ) as r:
        health.working()
        lines = r.aiter_lines()
        try:
            return await follow(lines, version, on_change, known, health)
        finally:
            await unwind(lines)
