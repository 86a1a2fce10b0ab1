"""Docker's update of a running container's resources, as an in-place resize of its pod."""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import trio

from .. import kube
from ._errors import InvalidParameter, Unsupported
from ._records import Container, ContainerConfig
from ._stats import UsageReader

# How long an update waits for the kubelet to take a pod's resize, and how often it looks.
_RESIZE_SECONDS = 10.0
_RESIZE_POLL_SECONDS = 0.25


class Resizer:
    """Resizes pods in place; `usage` forgets what it measured against the old limits."""

    def __init__(self, cluster: kube.ClusterBoundary, settings: kube.PodSettings,
                 usage: UsageReader) -> None:
        self._cluster = cluster
        self._settings = settings
        self._usage = usage

    async def update(self, container: Container, pod: str, spec: kube.ContainerSpec,
                     config: ContainerConfig, resource_fields: tuple[str, ...]) -> None:
        """Give the running container's pod (`spec` as it runs) the resources of `config`,
        if they differ; `resource_fields` name what asked for it."""
        resized = attrs.evolve(spec, memory_bytes=config.memory,
                               nano_cpus=config.nano_cpus, cpu_shares=config.cpu_shares,
                               memory_reservation=config.memory_reservation)
        resources = kube.main_resources(kube.pod_manifest(resized, self._settings))
        previous = kube.main_resources(kube.pod_manifest(spec, self._settings))
        if resources != previous:
            await self._resize(container, pod, resources, previous, resource_fields)

    async def _resize(self, container: Container, pod: str,
                      resources: Mapping[str, Mapping[str, str]],
                      previous: Mapping[str, Mapping[str, str]], fields: tuple[str, ...]
                      ) -> None:
        """Resize the pod and wait (a while) for the kubelet to take it, as Docker's update
        returns once the cgroup has changed; a resize the node cannot fit is undone."""
        refused = f"Cannot update container {container.id}: {', '.join(fields) or 'resources'}"
        try:
            await self._cluster.resize_pod(pod, kube.resize_patch(resources))
        except kube.Unsupported as error:
            raise Unsupported(f"{refused}: {error.message}") from None
        except kube.KubeError as error:
            if error.status not in (400, 422):
                raise
            raise InvalidParameter(f"{refused}: the pod cannot be resized so: "
                                   f"{error.message}") from None
        self._usage.forget(container)
        # The pod watch does not carry resize conditions; the kubelet decides within seconds.
        with trio.move_on_after(_RESIZE_SECONDS):
            while True:
                document = await self._cluster.get_object(kube.PODS, pod)
                refusal = kube.resize_refusal(document)
                if refusal is not None:
                    await self._cluster.resize_pod(pod, kube.resize_patch(previous))
                    raise InvalidParameter(f"{refused}: the node cannot resize the pod so: "
                                           f"{refusal}")
                if kube.resize_seen(document):
                    return
                await trio.sleep(_RESIZE_POLL_SECONDS)
