"""POST /containers/{id}/update: restart policy, and CPU and memory by resizing the pod."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from quart import Blueprint, Response, jsonify

from ..engine import ContainerConfig, RestartPolicy
from ._app import engine, request_body
from ._create_body import (
    REFUSED_HOST_OPTIONS,
    asks_for_something,
    cpu_limit,
    memory_limits,
    parse_restart_policy,
    resource,
    unsupported,
)
from ._errors import DockerError
from ._parse import field, json_object

blueprint = Blueprint("update", __name__)

# What an update can change: the pod's CPU and memory (resized in place while it runs) and the
# restart policy. Zero, empty and null leave a setting as it is, as Docker takes them.
RESOURCE_FIELDS = ("Memory", "MemoryReservation", "MemorySwap", "NanoCpus", "CpuShares",
                   "CpuQuota", "CpuPeriod")
# The rest of Docker's update body: each one refused by name when it asks for something.
_OTHER_FIELDS = ("BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps",
                 "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps",
                 "CgroupParent", "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus",
                 "CpusetMems", "Devices", "DeviceCgroupRules", "DeviceRequests", "KernelMemory",
                 "KernelMemoryTCP", "MemorySwappiness", "OomKillDisable", "PidsLimit", "Ulimits",
                 "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth")
_CANNOT_CHANGE = "a running pod cannot change it"


def updated_config(config: ContainerConfig, body: Mapping[str, Any], container_id: str
                   ) -> tuple[ContainerConfig, tuple[str, ...]]:
    """The configuration an update body asks for, checked as Docker checks it, and the
    resource fields it changes."""
    for name in _OTHER_FIELDS:
        if asks_for_something(name, body.get(name)):
            raise unsupported(name, REFUSED_HOST_OPTIONS.get(name, _CANNOT_CHANGE))
    changes = {name: body[name] for name in RESOURCE_FIELDS
               if field(body, name, int) not in (None, 0)}
    host_config = {**config.raw_host_config, **changes}
    memory, reservation = memory_limits(host_config)
    changed = attrs.evolve(
        config,
        memory=memory,
        memory_reservation=reservation,
        nano_cpus=cpu_limit(host_config),
        cpu_shares=resource(host_config, "CpuShares") or None,
    )
    policy = field(body, "RestartPolicy", dict) or {}
    if field(policy, "Name", str, "RestartPolicy."):
        if config.auto_remove and policy["Name"] != "no":
            raise DockerError(409, f"Cannot update container {container_id}: Restart policy "
                                   "cannot be updated because AutoRemove is enabled for the "
                                   "container")
        restart_policy: RestartPolicy = parse_restart_policy({"RestartPolicy": policy})
        host_config["RestartPolicy"] = {"Name": restart_policy.name,
                                        "MaximumRetryCount": restart_policy.maximum_retries}
        changed = attrs.evolve(changed, restart_policy=restart_policy)
    return attrs.evolve(changed, raw_host_config=host_config), tuple(changes)


@blueprint.route("/containers/<ref>/update", methods=["POST"])
async def update(ref: str) -> Response:
    containers = engine()
    container = containers.get(ref)
    body = json_object(await request_body())
    config, resource_fields = updated_config(container.config, body, container.id)
    await containers.update(container, config, resource_fields)
    return jsonify({"Warnings": None})
