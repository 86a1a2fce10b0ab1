"""Pure reading of the kubelet's Summary API (``/stats/summary``) and of Node capacity.

The kubelet samples each container now and then (cadvisor's housekeeping: about every 1 to 15
seconds, longer while a container is idle); every number here is from its latest sample, and
`ContainerUsage.sampled` says when that was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from ._ownership import parse_time
from ._podspec import MAIN

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIXES: dict[str, Decimal | int] = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity (``250m``, ``64Mi``, ``1e3``, ``2``) as a number."""
    match = _QUANTITY.match(text.strip())
    if match is None or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]


@attrs.frozen
class NodeCapacity:
    cpus: int
    memory_bytes: int


def node_capacity(node: Mapping[str, Any]) -> NodeCapacity:
    """What a Node has in all (status.capacity), as a container without limits sees it."""
    capacity = (node.get("status") or {}).get("capacity") or {}
    return NodeCapacity(
        cpus=max(1, int(parse_quantity(str(capacity.get("cpu", "1"))))),
        memory_bytes=int(parse_quantity(str(capacity.get("memory", "0")))),
    )


@attrs.frozen
class InterfaceUsage:
    name: str
    rx_bytes: int
    rx_errors: int
    tx_bytes: int
    tx_errors: int


@attrs.frozen
class ContainerUsage:
    """One container's latest sample, with what its pod and node add to it."""

    sampled: datetime
    # Since when the node counts CPU time: CPU time available = elapsed time x CPUs.
    node_started: datetime
    cpu_nanoseconds: int  # CPU time used since the container started
    cpu_nano_cores: int  # the rate over the kubelet's last sampling interval
    memory_usage: int
    memory_working_set: int  # usage less inactive file cache: what the kernel cannot drop
    memory_rss: int
    page_faults: int
    major_page_faults: int
    # The pod's network interfaces (shared by its containers, as a pod has one network).
    networks: tuple[InterfaceUsage, ...]
    processes: int | None
    # Bytes written to the container's writable layer, where the runtime measures it.
    writable_layer_bytes: int | None


def container_usage(summary: Mapping[str, Any], namespace: str, pod: str,
                    container: str = MAIN) -> ContainerUsage | None:
    """`container` of `pod` in a Summary document; None until the kubelet has sampled it."""
    node = summary.get("node") or {}
    for pod_stats in summary.get("pods") or ():
        reference = pod_stats.get("podRef") or {}
        if reference.get("name") == pod and reference.get("namespace") == namespace:
            break
    else:
        return None
    for stats in pod_stats.get("containers") or ():
        if stats.get("name") == container:
            break
    else:
        return None
    cpu, memory = stats.get("cpu") or {}, stats.get("memory") or {}
    sampled = parse_time(cpu.get("time")) or parse_time(memory.get("time"))
    node_started = parse_time(node.get("startTime"))
    if sampled is None or node_started is None or "usageCoreNanoSeconds" not in cpu:
        return None
    network = pod_stats.get("network") or {}
    interfaces = network.get("interfaces") or ([network] if network.get("name") else [])
    rootfs = stats.get("rootfs") or {}
    processes = (pod_stats.get("process_stats") or {}).get("process_count")
    return ContainerUsage(
        sampled=sampled,
        node_started=node_started,
        cpu_nanoseconds=int(cpu["usageCoreNanoSeconds"]),
        cpu_nano_cores=int(cpu.get("usageNanoCores") or 0),
        memory_usage=int(memory.get("usageBytes") or 0),
        memory_working_set=int(memory.get("workingSetBytes") or 0),
        memory_rss=int(memory.get("rssBytes") or 0),
        page_faults=int(memory.get("pageFaults") or 0),
        major_page_faults=int(memory.get("majorPageFaults") or 0),
        networks=tuple(
            InterfaceUsage(name=str(i["name"]), rx_bytes=int(i.get("rxBytes") or 0),
                           rx_errors=int(i.get("rxErrors") or 0),
                           tx_bytes=int(i.get("txBytes") or 0),
                           tx_errors=int(i.get("txErrors") or 0))
            for i in interfaces if i.get("name")
        ),
        processes=int(processes) if processes is not None else None,
        writable_layer_bytes=(int(rootfs["usedBytes"]) if "usedBytes" in rootfs else None),
    )
