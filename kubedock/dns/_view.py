"""Who may resolve which name: a snapshot of the pods and their networks, rebuilt on change.

A pod sees the names of the Ready pods that share a network with it. The view is immutable, so
the server answers from whichever snapshot was current when a query arrived, without locks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ..kube import HOST_ALIAS_PREFIX, NETWORK_PREFIX


@attrs.frozen
class PodEntry:
    ips: tuple[str, ...]
    names: tuple[str, ...]
    networks: frozenset[str]
    ready: bool


def normal_ip(text: str) -> str:
    """One spelling per address: IPv4-mapped IPv6 sources become IPv4."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def pod_entry(pod: Mapping[str, Any]) -> PodEntry | None:
    """A pod document as the view needs it; None for pods outside any network."""
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
    if not networks:
        return None
    status = pod.get("status") or {}
    ips = [item.get("ip") for item in status.get("podIPs") or ()] or [status.get("podIP")]
    ready = metadata.get("deletionTimestamp") is None and any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in status.get("conditions") or ()
    )
    return PodEntry(tuple(normal_ip(ip) for ip in ips if ip), names, networks, ready)


def _annotation_order(item: tuple[str, Any]) -> tuple[str, int]:
    prefix, _, index = item[0].rpartition("/")
    return prefix, int(index) if index.isdigit() else 1 << 30


class View:
    def __init__(self, pods: Iterable[PodEntry], search: Iterable[str] = ()) -> None:
        self._search = tuple(f".{suffix.strip('.').lower()}" for suffix in search if suffix)
        self._networks_of: dict[str, frozenset[str]] = {}
        self._addresses: dict[tuple[str, str], list[str]] = {}
        self._names_of: dict[str, tuple[str, ...]] = {}
        self._owned: set[str] = set()
        self._pending: set[tuple[str, str]] = set()
        for pod in pods:
            self._owned.update(pod.names)
            for ip in pod.ips:
                self._networks_of[ip] = self._networks_of.get(ip, frozenset()) | pod.networks
            if not pod.ready:
                self._pending.update((n, name) for n in pod.networks for name in pod.names)
                continue
            for ip in pod.ips:
                self._names_of[ip] = pod.names
                for network in pod.networks:
                    for name in pod.names:
                        self._addresses.setdefault((network, name), []).append(ip)

    def knows(self, source_ip: str) -> bool:
        return source_ip in self._networks_of

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
