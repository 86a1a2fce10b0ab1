"""Liveness and cleanup in the cluster: heartbeat Leases, the namespace lock, deleting
an instance's objects (its own at shutdown, a dead instance's when reaping)."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from ._boundary import ClusterBoundary
from ._cluster import Cluster
from ._errors import Conflict, KubeError, NotFound
from ._ownership import (
    CLAIMS,
    INSTANCE_LABEL,
    LABELLED_KINDS,
    LEASES,
    LOCK_LEASE,
    PODS,
    SECRETS,
    Kind,
    Labelled,
    dead_instances,
    expired,
    heartbeat_name,
    instance_selector,
    lease_expiry,
    lease_manifest,
)

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.25
_LOCK_DURATION = 60.0
_LOCK_RETRY_SECONDS = 2.0
_RELEASE_SECONDS = 5.0


async def serve_heartbeat(
    cluster: Cluster, instance_id: str, duration: float,
    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep the Lease ``kubedock-<instance id>`` alive: renewed every third of `duration`.

    Started once the Lease exists, so no pod is created before the instance is visible.
    The Lease is left behind on cancellation; `delete_instance` removes it with the rest.
    """
    name = heartbeat_name(instance_id)
    labels = {"kubedock": "true", INSTANCE_LABEL: instance_id}
    try:
        lease = await cluster.create_object(
            LEASES, lease_manifest(name, instance_id, duration, _now(), labels=labels))
    except Conflict:
        lease = await _take_over(cluster, name, instance_id, duration, labels)
    task_status.started()
    while True:
        await trio.sleep(duration / 3)
        try:
            try:
                lease = await cluster.replace_object(
                    LEASES, lease_manifest(name, instance_id, duration, _now(), previous=lease))
            except (Conflict, NotFound):
                # Someone changed or deleted it: ours all the same, so write it afresh.
                lease = await _recreate(cluster, name, instance_id, duration, labels)
        except KubeError as error:
            log.warning("cannot renew heartbeat %s: %s", name, error)
        except Exception:
            log.exception("cannot renew heartbeat %s", name)


async def _take_over(cluster: Cluster, name: str, holder: str, duration: float,
                     labels: dict[str, str]) -> dict[str, Any]:
    """The heartbeat of an instance started again with the same identity: taken over once
    the one before has let it expire (it cannot be told from a live one before)."""
    while True:
        try:
            current = await cluster.get_object(LEASES, name)
        except NotFound:
            current = None
        expiry = lease_expiry(current) if current is not None else None
        if expiry is not None and expiry > _now():
            log.info("waiting %.0fs for the heartbeat %s of the previous kubedock %s to expire",
                     (expiry - _now()).total_seconds(), name, holder)
            await trio.sleep((expiry - _now()).total_seconds() + _POLL_SECONDS)
            continue
        manifest = lease_manifest(name, holder, duration, _now(), labels=labels,
                                  previous=current)
        try:
            if current is None:
                return await cluster.create_object(LEASES, manifest)
            return await cluster.replace_object(LEASES, manifest)
        except Conflict:
            continue  # renewed or taken meanwhile: look again


async def _recreate(cluster: Cluster, name: str, holder: str, duration: float,
                    labels: dict[str, str]) -> dict[str, Any]:
    try:
        current = await cluster.get_object(LEASES, name)
    except NotFound:
        return await cluster.create_object(
            LEASES, lease_manifest(name, holder, duration, _now(), labels=labels))
    return await cluster.replace_object(
        LEASES, lease_manifest(name, holder, duration, _now(), labels=labels, previous=current))


async def hold_lock(
    cluster: Cluster, holder: str,
    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Take the Lease ``kubedock-lock`` (started once held; bound the wait with a cancel scope
    around ``nursery.start``), keep renewing it, and release it when cancelled."""
    while True:
        lease = await _try_lock(cluster, holder)
        if lease is not None:
            break
        await trio.sleep(_LOCK_RETRY_SECONDS)
    log.info("acquired lock %s", LOCK_LEASE)
    task_status.started()
    try:
        while True:
            await trio.sleep(_LOCK_DURATION / 4)
            try:
                lease = await cluster.replace_object(
                    LEASES, lease_manifest(LOCK_LEASE, holder, _LOCK_DURATION, _now(),
                                           previous=lease))
            except KubeError as error:
                # As the Go kubedock does: a lost lock is reported, serving goes on.
                log.warning("cannot renew lock %s: %s", LOCK_LEASE, error)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(_RELEASE_SECONDS):
            await _release(cluster, holder)


async def _try_lock(cluster: Cluster, holder: str) -> dict[str, Any] | None:
    try:
        current = await cluster.get_object(LEASES, LOCK_LEASE)
    except NotFound:
        current = None
    try:
        if current is None:
            return await cluster.create_object(
                LEASES, lease_manifest(LOCK_LEASE, holder, _LOCK_DURATION, _now()))
        holder_now = (current.get("spec") or {}).get("holderIdentity")
        if holder_now != holder and not expired(current, _now(), timedelta(0)):
            return None
        return await cluster.replace_object(
            LEASES, lease_manifest(LOCK_LEASE, holder, _LOCK_DURATION, _now(),
                                   previous=current))
    except Conflict:
        return None  # another instance was faster


async def _release(cluster: Cluster, holder: str) -> None:
    try:
        current = await cluster.get_object(LEASES, LOCK_LEASE)
        if (current.get("spec") or {}).get("holderIdentity") == holder:
            await cluster.delete_object(
                LEASES, LOCK_LEASE, resource_version=current["metadata"]["resourceVersion"])
    except KubeError as error:
        log.warning("cannot release lock %s: %s", LOCK_LEASE, error)


async def delete_instance(cluster: ClusterBoundary, instance_id: str) -> None:
    """Delete every object of one instance and return once the API server has no pod of it
    left; its heartbeat Lease goes last."""
    selector = instance_selector(instance_id)
    for kind in LABELLED_KINDS:
        if kind == LEASES:
            await _until_no_pods(cluster, selector)
        items = await _list_labelled(cluster, kind, selector)
        await _delete_all(cluster, [Labelled.from_object(kind, item) for item in items])


async def _list_labelled(cluster: ClusterBoundary, kind: Kind,
                         selector: str) -> list[dict[str, Any]]:
    try:
        return await cluster.list_objects(kind, selector)
    except KubeError as error:
        # A Role from before named volumes (or pull secrets): an instance that may not list
        # claims (secrets) made none, and its pods and Services must still be cleaned up.
        if kind not in (CLAIMS, SECRETS) or error.status != 403:
            raise
        log.debug("cannot list persistentvolumeclaims: %s", error)
        return []


async def _until_no_pods(cluster: ClusterBoundary, selector: str) -> None:
    while True:
        remaining = await cluster.list_objects(PODS, selector)
        if not remaining:
            return
        await trio.sleep(_POLL_SECONDS)


async def reap_dead_instances(
    cluster: ClusterBoundary, alive: str, grace: float,
    absent_since: MutableMapping[str, datetime] | None = None,
) -> set[str]:
    """Delete the objects of every instance that is provably gone; the ids reaped.

    `absent_since` remembers, across calls, since when an instance with objects has had no
    heartbeat Lease (see `dead_instances`); without it only the objects' age counts.
    """
    objects, heartbeats = await _labelled(cluster, "kubedock=true")
    now = _now()
    if absent_since is not None:
        ids = {o.instance_id for o in objects if o.instance_id} - heartbeats.keys() - {alive}
        for gone in absent_since.keys() - ids:
            del absent_since[gone]
        for instance_id in ids:
            absent_since.setdefault(instance_id, now)
    dead = dead_instances(objects, heartbeats, now, timedelta(seconds=grace), alive=alive,
                          absent_since=absent_since)
    if dead:
        log.info("deleting the objects of stopped kubedock instances %s", ", ".join(sorted(dead)))
        await _delete_all(cluster, [o for o in objects if o.instance_id in dead])
    return dead


async def prune_all(cluster: Cluster, alive: str) -> None:
    """Delete every ``kubedock=true`` object but the caller's own, whoever created it."""
    objects, _ = await _labelled(cluster, "kubedock=true")
    await _delete_all(cluster, [o for o in objects if o.instance_id != alive])


async def _labelled(
    cluster: ClusterBoundary, selector: str
) -> tuple[list[Labelled], dict[str, dict[str, Any]]]:
    objects: list[Labelled] = []
    heartbeats: dict[str, dict[str, Any]] = {}
    for kind in LABELLED_KINDS:
        for item in await _list_labelled(cluster, kind, selector):
            found = Labelled.from_object(kind, item)
            objects.append(found)
            if kind == LEASES and found.name == heartbeat_name(found.instance_id):
                heartbeats[found.instance_id] = item
    return objects, heartbeats


async def _delete_all(cluster: ClusterBoundary, objects: list[Labelled]) -> None:
    """Delete concurrently; fail like one call would, with the first error after trying all.

    Pods go without a grace period: whoever started them is gone, nobody waits for a
    graceful exit, and the bound on shutdown must hold.
    """
    failures: list[KubeError] = []

    async def delete(item: Labelled) -> None:
        try:
            await cluster.delete_object(
                item.kind, item.name, grace_seconds=0 if item.kind == PODS else None)
        except KubeError as error:
            failures.append(error)

    async with trio.open_nursery() as nursery:
        for item in objects:
            if not item.terminating or item.kind == PODS:
                nursery.start_soon(delete, item)
    if failures:
        raise failures[0]


def _now() -> datetime:
    return datetime.now(UTC)
