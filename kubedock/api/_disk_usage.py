"""GET /system/df: what kubedock knows of the space its objects take.

Images are the references kubedock recorded (their content lives on the nodes, unmeasured);
containers report what they wrote to their root filesystem while they run; volumes are the
engine's; kubedock builds nothing, so there is no build cache.
"""

from __future__ import annotations

from typing import Any

import trio
from quart import Blueprint, Response, jsonify, request

from ..engine import Container, VolumeUsage, parse_reference
from ._app import engine
from ._errors import bad_request
from ._images import summary as image_summary
from ._inspect import summary as container_summary

blueprint = Blueprint("disk_usage", __name__)

_TYPES = ("container", "image", "volume", "build-cache")


def _volume_document(volume: VolumeUsage) -> dict[str, Any]:
    return {
        "CreatedAt": volume.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Driver": "local",
        "Labels": dict(volume.labels) or None,
        "Mountpoint": volume.mountpoint,
        "Name": volume.name,
        "Options": None,
        "Scope": "local",
        "UsageData": {"RefCount": volume.ref_count, "Size": volume.size},
    }


async def _container_documents(containers: list[Container]) -> list[dict[str, Any]]:
    sizes = dict.fromkeys((c.id for c in containers), 0)

    async def measure(container: Container) -> None:
        sizes[container.id] = await engine().usage.writable_layer_bytes(container)

    async with trio.open_nursery() as nursery:
        for container in containers:
            if container.status == "running":
                nursery.start_soon(measure, container)
    # The image's own size is not known, so the root filesystem is only its writable layer.
    return [{**container_summary(c), "SizeRw": sizes[c.id], "SizeRootFs": sizes[c.id]}
            for c in containers]


@blueprint.route("/system/df", methods=["GET"])
async def disk_usage() -> Response:
    wanted = request.args.getlist("type") or list(_TYPES)
    for kind in wanted:
        if kind not in _TYPES:
            raise bad_request(f"unknown object type: {kind}")
    containers = engine().containers()
    document: dict[str, Any] = {"LayersSize": 0, "Images": None, "Containers": None,
                                "Volumes": None, "BuildCache": None}
    if "image" in wanted:
        document["Images"] = [
            {**image_summary(image), "Containers": sum(
                1 for c in containers
                if parse_reference(c.config.image).canonical == image.ref.canonical)}
            for image in engine().images.all()
        ]
    if "container" in wanted:
        document["Containers"] = await _container_documents(containers)
    if "volume" in wanted:
        document["Volumes"] = [_volume_document(v) for v in engine().volume_usage()]
    if "build-cache" in wanted:
        document["BuildCache"] = []
    return jsonify(document)
