"""Pure rules of ownership: which objects belong to whom, and when an instance is gone.

Every object kubedock creates carries ``kubedock=true`` and ``kubedock.id=<instance id>``.
Objects that belong to one container (Services, ConfigMaps) also name its pod as their owner,
so the cluster's garbage collector removes them with the pod even when no kubedock is left.
Each instance renews a Lease ``kubedock-<instance id>``; another instance may delete an
instance's objects only after that Lease has been expired for a grace period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

INSTANCE_LABEL = "kubedock.id"
LOCK_LEASE = "kubedock-lock"


@attrs.frozen
class Kind:
    """A namespaced resource: its plural name and its API group/version."""

    plural: str
    version: str = "v1"


PODS = Kind("pods")
SERVICES = Kind("services")
LEASES = Kind("leases", "coordination.k8s.io/v1")
# The Docker socket sidecars' (owned by their pods, which the garbage collector deletes them
# with) and the image pull secrets made of clients' credentials (labelled only).
SECRETS = Kind("secrets")
# Named volumes: not owned by a pod, they outlive containers, and go with their instance.
CLAIMS = Kind("persistentvolumeclaims")
# The supervisor of an instance's pods without the init container (labelled only; see
# `_supervision`).
CONFIG_MAPS = Kind("configmaps")
# Everything that is labelled with an instance id, dependents before the pods they belong to,
# claims, pull secrets and the supervisor after the pods that use them. Leases come last: an
# instance stays visible until its objects are gone.
LABELLED_KINDS = (SERVICES, PODS, CLAIMS, SECRETS, CONFIG_MAPS, LEASES)


@attrs.frozen
class Labelled:
    """One object kubedock created, as found in a listing."""

    kind: Kind
    name: str
    instance_id: str
    created: datetime
    terminating: bool

    @classmethod
    def from_object(cls, kind: Kind, item: Mapping[str, Any]) -> Labelled:
        metadata = item.get("metadata") or {}
        return cls(
            kind=kind,
            name=str(metadata["name"]),
            instance_id=str((metadata.get("labels") or {}).get(INSTANCE_LABEL, "")),
            created=parse_time(metadata.get("creationTimestamp")) or datetime.now(UTC),
            terminating=metadata.get("deletionTimestamp") is not None,
        )


def owner_reference(pod: Mapping[str, Any]) -> dict[str, Any]:
    """An ownerReference to `pod`, a Pod object as the API server returned it (with its uid).

    No ``blockOwnerDeletion``: setting it needs update rights on the pod's finalizers, and
    nothing has to wait for the dependents to go.
    """
    metadata = pod["metadata"]
    return {"apiVersion": "v1", "kind": "Pod", "name": metadata["name"], "uid": metadata["uid"]}


def instance_selector(instance_id: str) -> str:
    return f"kubedock=true,{INSTANCE_LABEL}={instance_id}"


def heartbeat_name(instance_id: str) -> str:
    return f"kubedock-{instance_id}"


def lease_manifest(
    name: str, holder: str, duration: float, now: datetime, *,
    labels: Mapping[str, str] | None = None, previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A Lease held by `holder` from `now`; given `previous`, its renewal or takeover."""
    spec = dict((previous or {}).get("spec") or {})
    metadata = dict((previous or {}).get("metadata") or {"name": name})
    if labels:
        metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    if spec.get("holderIdentity") != holder:
        if previous is not None:
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec["acquireTime"] = format_micro_time(now)
    spec.update(
        holderIdentity=holder,
        leaseDurationSeconds=max(1, round(duration)),
        renewTime=format_micro_time(now),
    )
    return {
        "apiVersion": LEASES.version, "kind": "Lease", "metadata": metadata, "spec": spec,
    }


def lease_expiry(lease: Mapping[str, Any]) -> datetime | None:
    """When the Lease runs out unless renewed; None when it has no holder (released)."""
    spec = lease.get("spec") or {}
    if not spec.get("holderIdentity"):
        return None
    renewed = parse_time(spec.get("renewTime") or spec.get("acquireTime"))
    if renewed is None:
        return None
    return renewed + timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0))


def dead_instances(
    objects: Iterable[Labelled],
    heartbeats: Mapping[str, Mapping[str, Any]],
    now: datetime,
    grace: timedelta,
    *,
    alive: str,
    absent_since: Mapping[str, datetime] | None = None,
) -> set[str]:
    """The instance ids whose objects someone else may delete.

    `heartbeats` maps instance ids to their Lease. An instance is dead when its Lease expired
    (or was released) more than `grace` ago. An instance with objects but no Lease (killed
    before its first heartbeat, or from a kubedock without heartbeats) is dead once its
    newest object and the moment its Lease was first seen missing (`absent_since`, kept by a
    caller that looks repeatedly) are both more than `grace` ago. `alive`, the caller's own
    id, is never dead; age alone never makes an instance dead.
    """
    newest: dict[str, datetime] = {}
    for item in objects:
        if item.instance_id:
            newest[item.instance_id] = max(item.created, newest.get(item.instance_id, item.created))
    dead = set()
    for instance_id in (newest.keys() | heartbeats.keys()) - {alive}:
        lease = heartbeats.get(instance_id)
        if lease is not None:
            if expired(lease, now, grace):
                dead.add(instance_id)
            continue
        missing = max(newest[instance_id], (absent_since or {}).get(instance_id, now - grace * 2))
        if now - missing > grace:
            dead.add(instance_id)
    return dead


def expired(lease: Mapping[str, Any], now: datetime, grace: timedelta) -> bool:
    """Whether the Lease ran out (or was released) more than `grace` ago."""
    expiry = lease_expiry(lease)
    return expiry is None or now - expiry > grace


def parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_micro_time(moment: datetime) -> str:
    """Kubernetes' MicroTime: RFC 3339 with exactly six fractional digits, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
