"""The pure ownership rules: owner references, Lease documents, who counts as dead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubedock.kube import owner_reference
from kubedock.kube._ownership import (
    LEASES,
    PODS,
    Labelled,
    dead_instances,
    expired,
    format_micro_time,
    heartbeat_name,
    lease_expiry,
    lease_manifest,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
GRACE = timedelta(seconds=30)


def pod(instance: str, age: float, name: str = "p") -> Labelled:
    return Labelled(PODS, f"{name}-{instance}", instance, NOW - timedelta(seconds=age), False)


def heartbeat(instance: str, renewed_ago: float, duration: int = 30) -> dict[str, Any]:
    return lease_manifest(heartbeat_name(instance), instance, duration,
                          NOW - timedelta(seconds=renewed_ago))


def test_owner_reference_names_the_pod_by_uid() -> None:
    created = {"metadata": {"name": "kubedock-x-1", "uid": "u-1", "labels": {}}}
    assert owner_reference(created) == {
        "apiVersion": "v1", "kind": "Pod", "name": "kubedock-x-1", "uid": "u-1",
    }


def test_micro_time_has_six_digits_and_z() -> None:
    assert format_micro_time(NOW) == "2026-01-02T03:04:05.678901Z"
    assert format_micro_time(NOW.replace(microsecond=0)) == "2026-01-02T03:04:05.000000Z"


def test_lease_renewal_keeps_acquire_time_and_takeover_counts() -> None:
    first = lease_manifest("l", "a", 30, NOW, labels={"kubedock": "true"})
    first["metadata"]["resourceVersion"] = "7"
    later = NOW + timedelta(seconds=10)
    renewed = lease_manifest("l", "a", 30, later, previous=first)
    assert renewed["spec"]["acquireTime"] == format_micro_time(NOW)
    assert renewed["spec"]["renewTime"] == format_micro_time(later)
    assert renewed["metadata"] == {"name": "l", "labels": {"kubedock": "true"},
                                   "resourceVersion": "7"}
    taken = lease_manifest("l", "b", 30, later, previous=first)
    assert taken["spec"]["leaseTransitions"] == 1
    assert taken["spec"]["acquireTime"] == format_micro_time(later)
    assert lease_expiry(renewed) == later + timedelta(seconds=30)


def test_a_released_lease_is_expired() -> None:
    lease = heartbeat("a", 0)
    lease["spec"]["holderIdentity"] = ""
    assert expired(lease, NOW, GRACE)


def test_live_heartbeat_protects_old_objects() -> None:
    objects = [pod("a", 10 * 86400)]
    assert dead_instances(objects, {"a": heartbeat("a", 5)}, NOW, GRACE, alive="me") == set()


def test_expired_heartbeat_only_after_the_grace() -> None:
    objects = [pod("a", 5)]
    # Expired 20 s ago: within the grace.
    assert dead_instances(objects, {"a": heartbeat("a", 50)}, NOW, GRACE, alive="me") == set()
    # Expired 31 s ago.
    assert dead_instances(objects, {"a": heartbeat("a", 61)}, NOW, GRACE, alive="me") == {"a"}


def test_own_instance_is_never_dead() -> None:
    assert dead_instances([pod("me", 9999)], {"me": heartbeat("me", 9999)}, NOW, GRACE,
                          alive="me") == set()


def test_missing_heartbeat_needs_old_objects_and_a_long_absence() -> None:
    old, young = [pod("a", 100)], [pod("a", 100), pod("a", 10, "q")]
    assert dead_instances(old, {}, NOW, GRACE, alive="me") == {"a"}
    assert dead_instances(young, {}, NOW, GRACE, alive="me") == set()
    # Seen without a Lease only 10 s ago: maybe someone deleted a live instance's Lease.
    recently = {"a": NOW - timedelta(seconds=10)}
    assert dead_instances(old, {}, NOW, GRACE, alive="me", absent_since=recently) == set()
    long_ago = {"a": NOW - timedelta(seconds=31)}
    assert dead_instances(old, {}, NOW, GRACE, alive="me", absent_since=long_ago) == {"a"}


def test_orphaned_expired_lease_is_dead_too() -> None:
    lease = Labelled(LEASES, heartbeat_name("a"), "a", NOW - timedelta(seconds=500), False)
    assert dead_instances([lease], {"a": heartbeat("a", 500)}, NOW, GRACE, alive="me") == {"a"}
