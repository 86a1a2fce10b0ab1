"""Who may resolve which name: a snapshot of the pods and their networks, rebuilt on change.

A pod sees the names of the Ready pods that share a network with it. The view is immutable, so
the server answers from whichever snapshot was current when a query arrived, without locks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from ..kube import HOST_ALIAS_PREFIX, NETWORK_PREFIX

# starting: created, not Ready yet (its address may not be reported yet either); ready: its
# names resolve; gone: being deleted or finished, so its names resolve nowhere.
Phase = Literal["starting", "ready", "gone"]


@attrs.frozen
class PodEntry:
    ips: tuple[str, ...]
    names: tuple[str, ...]
    networks: frozenset[str]  # empty for a pod outside any network: it asks the upstream server
    phase: Phase


def normal_ip(text: str) -> str:
    """One spelling per address: IPv4-mapped IPv6 sources become IPv4."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def pod_entry(pod: Mapping[str, Any]) -> PodEntry:
    """A pod document as the view needs it."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    names = tuple(dict.fromkeys(
        str(value).lower().rstrip(".") for key, value in sorted(annotations.items(),
                                                                key=_annotation_order)
        if key.startswith(HOST_ALIAS_PREFIX) and value
    ))
    networks = frozenset(
        str(value) for key, value in annotations.items() if key.startswith(NETWORK_PREFIX)
    )
    status = pod.get("status") or {}
    ips = [item.get("ip") for item in status.get("podIPs") or ()] or [status.get("podIP")]
    if status.get("phase") in ("Succeeded", "Failed"):
        # The sandbox is gone and its address free for the next pod, though the status keeps it.
        return PodEntry((), names, networks, "gone")
    phase: Phase = "starting"
    if metadata.get("deletionTimestamp") is not None:
        phase = "gone"
    elif any(condition.get("type") == "Ready" and condition.get("status") == "True"
             for condition in status.get("conditions") or ()):
        phase = "ready"
    return PodEntry(tuple(normal_ip(ip) for ip in ips if ip), names, networks, phase)


def _annotation_order(item: tuple[str, Any]) -> tuple[str, int]:
    prefix, _, index = item[0].rpartition("/")
    return prefix, int(index) if index.isdigit() else 1 << 30


class View:
    def __init__(self, pods: Iterable[PodEntry], search: Iterable[str] = ()) -> None:
        self._search = tuple(f".{suffix.strip('.').lower()}" for suffix in search if suffix)
        self._networks_of: dict[str, frozenset[str]] = {}
        self._outside: set[str] = set()  # addresses of pods outside any network
        self._addresses: dict[tuple[str, str], list[str]] = {}
        self._names_of: dict[str, tuple[str, ...]] = {}
        self._owned: set[str] = set()
        self._pending: set[tuple[str, str]] = set()
        self._unaddressed = 0
        # A pod being deleted may still ask, but an address it shares with a live pod is the
        # live pod's: the old sandbox released it.
        for pod in sorted(pods, key=lambda entry: entry.phase == "gone"):
            self._owned.update(pod.names)
            for ip in pod.ips:
                if pod.phase != "gone" or not self.identifies(ip):
                    self._identify(ip, pod.networks)
            if pod.phase == "starting":
                self._unaddressed += not pod.ips and bool(pod.networks)
                self._pending.update((n, name) for n in pod.networks for name in pod.names)
            if pod.phase != "ready":
                continue
            for ip in pod.ips:
                self._names_of[ip] = pod.names
                for network in pod.networks:
                    for name in pod.names:
                        self._addresses.setdefault((network, name), []).append(ip)

    def _identify(self, ip: str, networks: frozenset[str]) -> None:
        if networks:
            self._networks_of[ip] = self._networks_of.get(ip, frozenset()) | networks
        else:
            self._outside.add(ip)

    def knows(self, source_ip: str) -> bool:
        """Whether ``source_ip`` is a pod of some network: one whose names are answered here."""
        return source_ip in self._networks_of

    def identifies(self, source_ip: str) -> bool:
        """Whether ``source_ip`` is any kubedock pod, in a network or not."""
        return source_ip in self._networks_of or source_ip in self._outside

    @property
    def unaddressed(self) -> int:
        """How many starting pods have no reported address yet: an asker not known may be one.

        The address is assigned before any container starts, but the kubelet reports it with
        the first status after the sandbox is up, which can be after `main` already runs.
        """
        return self._unaddressed

    def own_name(self, name: str) -> str | None:
        """The pod name ``name`` stands for (search suffixes removed), None if not ours."""
        if name in self._owned:
            return name
        for suffix in self._search:
            if name.endswith(suffix) and name[:-len(suffix)] in self._owned:
                return name[:-len(suffix)]
        return None

    def addresses(self, source_ip: str, name: str) -> list[str]:
        """Addresses of the Ready pods named ``name`` on the networks of ``source_ip``."""
        found: dict[str, None] = {}
        for network in sorted(self._networks_of.get(source_ip, ())):
            found.update(dict.fromkeys(self._addresses.get((network, name), ())))
        return list(found)

    def pending(self, source_ip: str, name: str) -> bool:
        """Whether a pod of ``source_ip``'s networks holds ``name`` but is not Ready yet."""
        return any((network, name) in self._pending
                   for network in self._networks_of.get(source_ip, ()))

    def names(self, source_ip: str, ip: str) -> tuple[str, ...]:
        """The names of the Ready pod at ``ip``, if it shares a network with ``source_ip``."""
        mine = self._networks_of.get(source_ip, frozenset())
        if not mine & self._networks_of.get(ip, frozenset()):
            return ()
        return self._names_of.get(ip, ())
