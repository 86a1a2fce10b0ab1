"""An instance started again with the same identity takes its heartbeat Lease over only once
the one before has let it expire (against an in-memory store of Leases, on the real clock:
expiry is wall-clock time)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from kubedock import kube
from kubedock.kube._liveness import serve_heartbeat
from kubedock.kube._ownership import heartbeat_name, lease_expiry, lease_manifest


class Leases:
    """Create, read and replace (with optimistic concurrency) Leases by name."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self._versions = itertools.count(1)

    async def create_object(self, kind: kube.Kind, manifest: Mapping[str, Any]) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        if manifest["metadata"]["name"] in self.items:
            raise kube.Conflict("leases already exists", status=409, reason="AlreadyExists")
        return self._store(manifest)

    async def get_object(self, kind: kube.Kind, name: str) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        if name not in self.items:
            raise kube.NotFound("leases not found", status=404, reason="NotFound")
        return copy.deepcopy(self.items[name])

    async def replace_object(self, kind: kube.Kind, manifest: Mapping[str, Any]
                             ) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        current = self.items[manifest["metadata"]["name"]]
        if manifest["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise kube.Conflict("the object has been modified", status=409, reason="Conflict")
        return self._store(manifest)

    def _store(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(manifest))
        stored["metadata"]["resourceVersion"] = str(next(self._versions))
        self.items[stored["metadata"]["name"]] = stored
        return copy.deepcopy(stored)


def held_until(leases: Leases, instance: str, seconds_left: float) -> None:
    duration = 30.0
    renewed = datetime.now(UTC) - timedelta(seconds=duration - seconds_left)
    leases._store(lease_manifest(heartbeat_name(instance), instance, duration, renewed))


async def test_a_held_heartbeat_is_taken_over_once_it_expired(nursery: trio.Nursery) -> None:
    leases = Leases()
    held_until(leases, "ci-1", seconds_left=1.0)
    started = trio.current_time()
    await nursery.start(serve_heartbeat, leases, "ci-1", 60.0)
    assert 1.0 <= trio.current_time() - started < 3.0
    lease = leases.items[heartbeat_name("ci-1")]
    expiry = lease_expiry(lease)
    assert expiry is not None and expiry > datetime.now(UTC) + timedelta(seconds=50)
    assert lease["spec"]["holderIdentity"] == "ci-1"


async def test_an_expired_heartbeat_is_taken_over_at_once(nursery: trio.Nursery) -> None:
    leases = Leases()
    held_until(leases, "ci-1", seconds_left=-5.0)
    with trio.fail_after(1):
        await nursery.start(serve_heartbeat, leases, "ci-1", 60.0)
    assert leases.items[heartbeat_name("ci-1")]["spec"]["leaseDurationSeconds"] == 60
