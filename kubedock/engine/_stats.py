"""Resource usage of running containers, from the kubelet's Summary API.

Why the Summary API: it is the one source that has, per container, cumulative CPU time and the
current CPU rate, memory (usage, working set, RSS, page faults), the writable layer's size, and
per pod the network interfaces and the process count, at the cost of one request per node
(shared by every container on it) through the API server, with no agent in the pods. The
kubelet's resource metrics (``/metrics/resource``) come from the same sampler with only CPU and
working set; reading cgroups inside each pod would take an exec per container per second.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import AsyncGenerator, Mapping
from datetime import datetime
from typing import Any

import attrs
import trio

from .. import kube
from ._records import Container

log = logging.getLogger(__name__)

# Docker sends a stream's samples a second apart; a summary this fresh serves every container
# on its node (the kubelet's own samples are older than that anyway).
STREAM_INTERVAL = 1.0
_SUMMARY_MAX_AGE = 1.0
# A container that just started is in the kubelet's summary within a few seconds.
_FIRST_SAMPLE_SECONDS = 15.0


@attrs.frozen
class Sample:
    usage: kube.ContainerUsage
    cpus: int  # the node's: what Docker reports as online CPUs
    memory_limit: int  # the container's limit, else the node's memory


@attrs.frozen
class VolumeUsage:
    """A volume as disk usage reports it; `size` -1 where it cannot be measured."""

    name: str
    mountpoint: str
    created: datetime
    labels: Mapping[str, str]
    ref_count: int
    size: int = -1


@attrs.frozen
class _PodFacts:
    pod: str
    node: str
    memory_limit: int | None


class UsageReader:
    """Samples containers' usage; one summary per node and second, whoever asks."""

    def __init__(self, cluster: kube.ClusterBoundary, namespace: str) -> None:
        self._cluster = cluster
        self._namespace = namespace
        self._summaries: dict[str, tuple[float, dict[str, Any]]] = {}
        self._fetching: defaultdict[str, trio.Lock] = defaultdict(trio.Lock)
        self._nodes: dict[str, kube.NodeCapacity] = {}
        self._pods: dict[str, _PodFacts] = {}  # by container id

    async def sample(self, container: Container) -> Sample | None:
        """The latest sample of a running container; None until the kubelet has one."""
        pod = container.pod_name
        if pod is None or container.status != "running":
            return None
        facts = await self._pod_facts(container.id, pod)
        if facts is None:
            return None
        usage = kube.container_usage(await self._summary(facts.node), self._namespace, pod)
        if usage is None:
            return None
        capacity = await self._capacity(facts.node)
        return Sample(usage=usage, cpus=capacity.cpus,
                      memory_limit=facts.memory_limit or capacity.memory_bytes)

    async def first_sample(self, container: Container) -> Sample | None:
        """A sample as soon as the kubelet has one (a container that just started may not
        be sampled yet); None if the container is not running or none comes in time."""
        with trio.move_on_after(_FIRST_SAMPLE_SECONDS):
            while container.status == "running":
                sample = await self.sample(container)
                if sample is not None:
                    return sample
                await trio.sleep(STREAM_INTERVAL)
        return None

    async def writable_layer_bytes(self, container: Container) -> int:
        """What a running container wrote to its root filesystem, where the kubelet measures
        it; 0 otherwise (a stopped container's pod has no samples)."""
        try:
            sample = await self.sample(container)
        except kube.KubeError as error:
            log.info("no disk usage of container %s: %s", container.short_id, error)
            return 0
        return (sample.usage.writable_layer_bytes or 0) if sample is not None else 0

    def forget(self, container: Container) -> None:
        """The container is gone, or its pod's limits changed (a resize)."""
        self._pods.pop(container.id, None)

    async def _summary(self, node: str) -> dict[str, Any]:
        async with self._fetching[node]:
            fetched, summary = self._summaries.get(node, (-math.inf, {}))
            if trio.current_time() - fetched >= _SUMMARY_MAX_AGE:
                summary = await self._cluster.node_summary(node)
                self._summaries[node] = (trio.current_time(), summary)
            return summary

    async def _capacity(self, node: str) -> kube.NodeCapacity:
        if node not in self._nodes:
            self._nodes[node] = kube.node_capacity(await self._cluster.get_node(node))
        return self._nodes[node]

    async def _pod_facts(self, container_id: str, pod: str) -> _PodFacts | None:
        """Where the container's pod runs and the memory limit it got (a LimitRange may have
        set one); a pod keeps its node, so this is read once a pod."""
        known = self._pods.get(container_id)
        if known is None or known.pod != pod:
            try:
                document = await self._cluster.get_object(kube.PODS, pod)
            except kube.NotFound:
                return None
            spec = document.get("spec") or {}
            node = spec.get("nodeName")
            if not node:
                return None
            limit = None
            for item in spec.get("containers") or ():
                memory = ((item.get("resources") or {}).get("limits") or {}).get("memory")
                if item.get("name") == kube.MAIN and memory:
                    limit = int(kube.parse_quantity(str(memory)))
            self._pods[container_id] = _PodFacts(pod=pod, node=node, memory_limit=limit)
        return self._pods[container_id]


async def follow_usage(reader: UsageReader, container: Container
                       ) -> AsyncGenerator[Sample | None]:
    """A sample a second, as Docker streams them (None while the container is not running),
    until the container is removed."""
    while not container.removed:
        # A sample a second from when the last one was asked for, however long it took.
        due = trio.current_time() + STREAM_INTERVAL
        yield await reader.sample(container)
        with trio.move_on_at(due):
            while not container.removed:
                await container.changed.wait()
