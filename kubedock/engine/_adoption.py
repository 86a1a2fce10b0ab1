"""Adoption: a kubedock restarted with the same identity takes over the containers of its
pods, rebuilt from what each pod keeps (see `_adopt`), and resumes them where they are."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .. import kube
from ._adopt import from_pod
from ._errors import StartFailed
from ._exposure import Exposure
from ._images import ImageStore, parse_reference
from ._networks import NetworkStore
from ._records import Container, PublishedPort, is_running

log = logging.getLogger(__name__)


class Adoption:
    """Adds adopted containers to the engine's records (`containers`, by id, and `by_pod`, by
    pod name), and resumes them: `observe` folds in their pod's state, `delete_pod` removes a
    pod whose start was cut short, `monitor_health` watches a running one, and `supervise`
    waits for the end of a supervised one's program.
    """

    def __init__(self, cluster: kube.ClusterBoundary, containers: dict[str, Container],
                 by_pod: dict[str, Container], images: ImageStore, networks: NetworkStore,
                 exposure: Exposure, observe: Callable[[kube.ContainerObservation], None],
                 delete_pod: Callable[[Container], Awaitable[None]],
                 monitor_health: Callable[[Container], None],
                 supervise: Callable[[Container], None]) -> None:
        self._cluster = cluster
        self._containers = containers
        self._by_pod = by_pod
        self._images = images
        self._networks = networks
        self._exposure = exposure
        self._observe = observe
        self._delete_pod = delete_pod
        self._monitor_health = monitor_health
        self._supervise = supervise

    async def adopt(self, selector: str) -> int:
        """Take over the containers of the pods that `selector` selects; return how many."""
        adopted = 0
        for pod in _next_runs_first(await self._cluster.list_objects(kube.PODS, selector)):
            metadata = pod.get("metadata") or {}
            try:
                adoptee = from_pod(pod)
            except ValueError as error:
                # Its own, so the reaper would never take it: it goes now.
                log.warning("deleting pod %s, which cannot be adopted: %s", metadata["name"],
                            error)
                await self._cluster.delete_pod(metadata["name"], grace_seconds=0)
                continue
            container = adoptee.container
            if metadata.get("deletionTimestamp"):
                continue
            if container.id in self._containers:
                log.info("deleting pod %s, which a restart of container %s replaced",
                         metadata["name"], container.short_id)
                await self._cluster.delete_pod(metadata["name"], grace_seconds=0)
                continue
            self._containers[container.id] = container
            self._by_pod[metadata["name"]] = container
            self._images.add(parse_reference(container.config.image))
            for network_id, name in adoptee.networks:
                network = self._networks.restore(network_id, name)
                config = container.config
                refs = [ref for ref in config.networks if ref in (name, network_id)
                        or network_id.startswith(ref)] or [name]
                self._networks.connect(network, container.id, container.name,
                                       config.networks.get(refs[0], ()),
                                       config.network_links.get(refs[0], ()))
            container.supervisor = kube.supervisor_of(pod)
            await self._resume(container, kube.observe(pod), adoptee.published)
            adopted += 1
        return adopted

    async def _resume(self, container: Container, observation: kube.ContainerObservation,
                      published: tuple[PublishedPort, ...]) -> None:
        container.pod_observed = True
        self._observe(observation)
        if container.status == "created":
            # Its start was cut short: as after a failed start, no pod is left without one.
            await self._delete_pod(container)
            return
        container.started_at = observation.started_at or container.started_at
        if not is_running(container):
            return
        try:
            await self._exposure.publish(container, published)
            await self._exposure.keep_published(container)
        except StartFailed as error:
            log.warning("ports of container %s are not published again: %s",
                        container.short_id, error.message)
        self._monitor_health(container)
        # A supervised program may have ended meanwhile: its record says so at once.
        self._supervise(container)


def _next_runs_first(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods, those of a container's next run before those of its last: a restart makes
    the next pod before the last goes (see `_replacement`), and a kubedock that ends in
    between leaves both. The last run's process has ended, or its pod is the older one."""
    newest_first = sorted(pods, key=lambda pod: (pod.get("metadata") or {}).get(
        "creationTimestamp") or "", reverse=True)
    return sorted(newest_first, key=lambda pod: kube.observe(pod).state == "terminated")
