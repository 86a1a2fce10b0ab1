"""Docker networks: records, the three predefined ones, and which container is on which.

A network has no Kubernetes object behind it. Every pod shares the cluster's flat network; what a
Docker network decides is which names a container can resolve (the DNS role reads the network ids
and names from each pod's annotations, or the Services mode publishes the names namespace-wide).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from ._errors import Conflict, Forbidden, InvalidParameter, NoSuchNetwork, Unsupported

BRIDGE = "bridge"
NONE = "none"
PREDEFINED = (BRIDGE, "host", NONE)
# Docker's refusal to put a container of `--network none` on another network too.
PRIVATE_NONE = ("container cannot be connected to multiple networks with one of the networks in "
                "private (none) mode")
# Names a DNS server can answer for: RFC 1123 host names, as kubedock-dns validates them.
_HOST_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@attrs.frozen
class Endpoint:
    """One container's membership of one network."""

    container_id: str
    aliases: tuple[str, ...] = ()
    # (container name, alias): the named container is also known by the alias here.
    links: tuple[tuple[str, str], ...] = ()


@attrs.define(eq=False)
class Network:
    id: str
    name: str
    created: datetime
    driver: str = "bridge"
    labels: Mapping[str, str] = attrs.field(factory=dict)
    options: Mapping[str, str] = attrs.field(factory=dict)
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    ipam: Mapping[str, Any] | None = None
    endpoints: dict[str, Endpoint] = attrs.field(factory=dict)

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def scope(self) -> str:
        return "local"


def dns_name(text: str) -> str | None:
    """``text`` as a name a DNS server can hold, or None when it cannot be one."""
    name = text.lower().rstrip(".")
    return name if len(name) <= 253 and _HOST_NAME.match(name) else None


def _new_network_id() -> str:
    return secrets.token_hex(32)


class NetworkStore:
    """Networks by id; predefined ``bridge``, ``host`` and ``none`` always exist.

    The predefined ids are random per store, so two kubedock instances in one namespace never
    share a network, not even ``bridge``.
    """

    def __init__(self) -> None:
        now = datetime.now(UTC)
        self._networks: dict[str, Network] = {}
        for name, driver in ((BRIDGE, "bridge"), ("host", "host"), ("none", "null")):
            network = Network(id=_new_network_id(), name=name, created=now, driver=driver)
            self._networks[network.id] = network

    def all(self) -> list[Network]:
        return sorted(self._networks.values(), key=lambda n: (n.created, n.name))

    @property
    def bridge(self) -> Network:
        return self.get(BRIDGE)

    def get(self, ref: str) -> Network:
        """By full id, exact name, or unique id prefix (Docker's order)."""
        if ref in self._networks:
            return self._networks[ref]
        for network in self._networks.values():
            if network.name == ref:
                return network
        matches = [n for n in self._networks.values() if ref and n.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(matches)} matches found)")
        raise NoSuchNetwork(ref)

    def create(
        self,
        name: str,
        *,
        driver: str = "bridge",
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        internal: bool = False,
        attachable: bool = False,
        enable_ipv6: bool = False,
        ipam: Mapping[str, Any] | None = None,
    ) -> Network:
        if not name:
            raise InvalidParameter("network name must not be empty")
        if driver != "bridge":
            raise Unsupported(
                f"network driver {driver!r} is not supported by kubedock: pods share the "
                "cluster network, which kubedock presents as a bridge network"
            )
        if any(network.name == name for network in self._networks.values()):
            raise Conflict(f"network with name {name} already exists")
        network = Network(
            id=_new_network_id(), name=name, created=datetime.now(UTC), driver=driver,
            labels=dict(labels or {}), options=dict(options or {}), internal=internal,
            attachable=attachable, enable_ipv6=enable_ipv6, ipam=ipam,
        )
        self._networks[network.id] = network
        return network

    def restore(self, network_id: str, name: str) -> Network:
        """A network a re-adopted container was on, with the id it had: found by id, else the
        predefined one of that name takes the id back, else it is made again (its labels and
        options are not kept)."""
        if network_id in self._networks:
            return self._networks[network_id]
        network = next((n for n in self._networks.values() if n.name == name), None)
        if network is not None and (network.endpoints or not network.predefined):
            return network  # taken meanwhile: the container joins it as it is
        if network is None:
            network = Network(id=network_id, name=name, created=datetime.now(UTC))
        else:
            del self._networks[network.id]
            network.id = network_id
        self._networks[network_id] = network
        return network

    def remove(self, network: Network) -> None:
        if network.predefined:
            raise Forbidden(
                f"{network.name} is a pre-defined network and cannot be removed"
            )
        if network.endpoints:
            raise Forbidden(
                f"error while removing network: network {network.name} id {network.id} "
                "has active endpoints"
            )
        del self._networks[network.id]

    def prune(self, keep: Callable[[Network], bool]) -> list[Network]:
        pruned = [n for n in self.all() if not n.predefined and not n.endpoints and not keep(n)]
        for network in pruned:
            del self._networks[network.id]
        return pruned

    # -- endpoints ---------------------------------------------------------------------------

    def connect(self, network: Network, container_id: str, container_name: str,
                aliases: Iterable[str] = (),
                links: Iterable[tuple[str, str]] = ()) -> Endpoint:
        if network.name == "host":
            raise Unsupported(
                "network 'host' is not supported by kubedock: every pod has its own network "
                "namespace on the cluster network"
            )
        joined = [other.name for other, _ in self.of(container_id) if other is not network]
        if joined and NONE in (network.name, *joined):
            raise InvalidParameter(PRIVATE_NONE)
        if container_id in network.endpoints:
            raise Forbidden(
                f"endpoint with name {container_name} already exists in network {network.name}"
            )
        endpoint = Endpoint(container_id, tuple(dict.fromkeys(aliases)),
                            tuple(dict.fromkeys(links)))
        network.endpoints[container_id] = endpoint
        return endpoint

    def disconnect(self, network: Network, container_id: str, container_name: str) -> None:
        if network.endpoints.pop(container_id, None) is None:
            raise Forbidden(
                f"container {container_name} is not connected to network {network.name}"
            )

    def of(self, container_id: str) -> list[tuple[Network, Endpoint]]:
        """The networks a container is on, oldest network first."""
        return [
            (network, network.endpoints[container_id])
            for network in self.all() if container_id in network.endpoints
        ]

    def forget(self, container_id: str) -> None:
        for network in self._networks.values():
            network.endpoints.pop(container_id, None)
