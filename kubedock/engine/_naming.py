"""Names and links: what a container's network peers resolve it by, and how changed names
reach the resolver (the pod's annotations, or a Service per name)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from .. import kube
from ._errors import EngineError, InvalidParameter, NoSuchContainer, Unsupported
from ._events import EventBus
from ._networks import NONE, PRIVATE_NONE, Network, NetworkStore, dns_name
from ._records import Container, ContainerConfig
from ._services import publish_services

# How containers find each other by name: kubedock's DNS role, a Service per name, or a resolver
# installed separately (kubedock-dns) that reads the pod annotations only.
NameMode = Literal["dns", "services", "external"]


class Naming:
    """The names and links of the containers in `containers`, published as `mode` says.

    `lookup` finds a container as a client names it; `spec` assembles a container's pod spec,
    whose annotations carry its names.
    """

    def __init__(self, cluster: kube.ClusterBoundary, settings: kube.PodSettings,
                 mode: NameMode, containers: dict[str, Container], networks: NetworkStore,
                 events: EventBus, lookup: Callable[[str], Container],
                 spec: Callable[[Container], kube.ContainerSpec]) -> None:
        self._cluster = cluster
        self._settings = settings
        self._mode = mode
        self._containers = containers
        self._networks = networks
        self._events = events
        self._lookup = lookup
        self._spec = spec

    def dns_names(self, container: Container) -> tuple[str, ...]:
        """What the container's network peers resolve it by: name, aliases, short id.

        Names that cannot be DNS names (``my_db``) are left out, as Docker's resolver does.
        """
        candidates = [container.name]
        for _network, endpoint in self._networks.of(container.id):
            candidates.extend(endpoint.aliases)
        candidates.extend(self._link_aliases(container))
        candidates.append(container.short_id)
        names = (dns_name(candidate) for candidate in candidates)
        return tuple(dict.fromkeys(name for name in names if name))

    # Links make the linked container known by the alias too: to every container it shares a
    # network with, not only to the one that links to it (kubedock's resolver answers by
    # network). Legacy links (HostConfig.Links) name a container that exists at create and runs
    # at start; a network's links name a container that may come later, as with Docker.

    def linked(self, ref: str) -> Container:
        try:
            return self._lookup(ref)
        except NoSuchContainer:
            raise InvalidParameter(
                f"could not get container for {ref}: No such container: {ref}") from None

    def _link_aliases(self, container: Container) -> list[str]:
        aliases = [alias for linker in self._containers.values()
                   for target_id, alias in linker.config.links if target_id == container.id]
        for network, _endpoint in self._networks.of(container.id):
            aliases.extend(alias for endpoint in network.endpoints.values()
                           for name, alias in endpoint.links
                           if name.removeprefix("/") == container.name)
        return aliases

    def link_targets(self, container: Container) -> list[Container]:
        targets = [self._containers[target_id] for target_id, _ in container.config.links
                   if target_id in self._containers]
        for network, endpoint in self._networks.of(container.id):
            for name, _alias in endpoint.links:
                targets.extend(self._containers[other] for other in network.endpoints
                               if self._containers[other].name == name.removeprefix("/"))
        return list(dict.fromkeys(targets))

    async def publish_links(self, container: Container) -> None:
        """Refuse a start whose legacy links name a container that does not run, as Docker
        does, and make the linked containers that run answer to their new aliases."""
        for target_id, alias in container.config.links:
            target = self._containers.get(target_id)
            if target is None or target.status != "running":
                name = target.name if target is not None else target_id
                raise EngineError(f"Cannot link to a non running container: /{name} AS "
                                  f"/{container.name}/{alias}")
        for target in self.link_targets(container):
            if target.status == "running":
                await self.republish(target)

    def legacy_links(self, container: Container) -> list[str]:
        """HostConfig.Links as Docker's inspect shows them: ``/db:/web/database``."""
        return [f"/{self._containers[target_id].name}:/{container.name}/{alias}"
                for target_id, alias in container.config.links
                if target_id in self._containers]

    def service_names(self, container: Container) -> tuple[str, ...]:
        hostname = container.config.hostname
        return (*([hostname] if hostname else ()), *self.dns_names(container))

    async def connect(self, network: Network, container: Container,
                      aliases: tuple[str, ...], links: tuple[tuple[str, str], ...] = ()) -> None:
        self._networks.connect(network, container.id, container.name, aliases, links)
        try:
            await self.republish(container)
            for target in self.link_targets(container):
                if target.status == "running":
                    await self.republish(target)
        except BaseException:
            self._networks.disconnect(network, container.id, container.name)
            raise
        self._events.publish("network", "connect", network.id,
                            {"name": network.name, "type": network.driver,
                             "container": container.id})

    async def disconnect(self, network: Network, container: Container) -> None:
        self._networks.disconnect(network, container.id, container.name)
        await self.republish(container)
        self._events.publish("network", "disconnect", network.id,
                            {"name": network.name, "type": network.driver,
                             "container": container.id})

    def requested_networks(
        self, config: ContainerConfig,
    ) -> list[tuple[Network, tuple[str, ...], tuple[tuple[str, str], ...]]]:
        joined: dict[str, tuple[Network, tuple[str, ...], tuple[tuple[str, str], ...]]] = {}
        for ref, aliases in (config.networks or {self._networks.bridge.name: ()}).items():
            network = self._networks.get(ref)
            if network.name == "host":
                raise Unsupported(
                    "network mode 'host' is not supported by kubedock: every pod has its own "
                    "network namespace on the cluster network"
                )
            _, previous, links = joined.get(network.id, (network, (), ()))
            joined[network.id] = (network, previous + aliases,
                                  links + tuple(config.network_links.get(ref, ())))
        if len(joined) > 1 and any(network.name == NONE for network, _, _ in joined.values()):
            raise InvalidParameter(PRIVATE_NONE)
        return list(joined.values())

    async def republish(self, container: Container) -> None:
        """Make a started container's changed names resolvable.

        The DNS role reads them from the pod's annotations. Services are added for new names
        (and stay until the pod goes). kubedock-dns (mode ``external``) refuses updates.
        """
        if container.pod_name is None or self._mode == "external":
            return
        if self._mode == "services":
            pod = await self._cluster.get_object(kube.PODS, container.pod_name)
            await publish_services(self._cluster, pod, self.service_names(container),
                                   container.config.ports_with_image)
            return
        # The whole map is replaced, so that the keys of a network left behind go away too.
        manifest = kube.pod_manifest(self._spec(container), self._settings)
        annotations = manifest["metadata"]["annotations"]
        await self._cluster.patch_pod(container.pod_name, {
            "metadata": {"annotations": {"$patch": "replace", **annotations}}
        })
