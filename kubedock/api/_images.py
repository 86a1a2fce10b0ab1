"""Image endpoints. Pulls are recorded, not performed: the node pulls when a pod starts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, Response, jsonify, request

from ..engine import Image, InvalidParameter, parse_reference
from ._app import engine
from ._errors import DockerError, bad_request
from ._parse import check_filters, parse_filters, prune_filter, query_bool

blueprint = Blueprint("images", __name__)


def _created(image: Image) -> str:
    return datetime.fromtimestamp(image.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _summary(image: Image) -> dict[str, Any]:
    return {
        "Id": image.ref.image_id,
        "ParentId": "",
        "RepoTags": [image.ref.familiar] if image.ref.tag else [],
        "RepoDigests": [f"{image.ref.familiar_repository}@{image.ref.digest}"]
        if image.ref.digest else [],
        "Created": int(image.created),
        "Size": 0,
        "SharedSize": -1,
        "VirtualSize": 0,
        "Labels": {},
        "Containers": -1,
    }


@blueprint.route("/images/create", methods=["POST"])
async def pull() -> Response:
    source = request.args.get("fromImage", "")
    if request.args.get("fromSrc"):
        raise DockerError(501, "importing images (fromSrc) is not supported by kubedock")
    if not source:
        raise bad_request("fromImage is required")
    tag = request.args.get("tag", "")
    reference = source
    if tag:
        reference += f"@{tag}" if ":" in tag and tag.split(":")[0].startswith("sha") else f":{tag}"
    try:
        image = engine().images.add(parse_reference(reference))
    except InvalidParameter as error:
        raise bad_request(error.message) from None
    lines = [
        {"status": f"Pulling from {image.ref.familiar_repository}", "id": image.ref.tag or ""},
        {"status": "Digest: " + (image.ref.digest or image.ref.image_id)},
        {"status": f"Status: Image is up to date for {image.ref.familiar}"},
    ]
    body = b"".join(json.dumps(line).encode() + b"\r\n" for line in lines)

    async def stream() -> Any:
        yield body

    engine().events.publish("image", "pull", image.ref.familiar, {"name": image.ref.familiar})
    return Response(stream(), content_type="application/json")


@blueprint.route("/images/json", methods=["GET"])
async def list_images() -> Response:
    filters = parse_filters(request.args.get("filters"))
    check_filters(filters, {"reference", "dangling", "label", "before", "since"})
    images = engine().images.all()
    if "reference" in filters:
        images = [i for i in images if any(_reference_matches(i, r) for r in filters["reference"])]
    if "label" in filters or filters.get("dangling") == ["true"]:
        images = []  # kubedock's images carry no labels and are never dangling
    return jsonify([_summary(image) for image in images])


def _reference_matches(image: Image, pattern: str) -> bool:
    import fnmatch

    names = (image.ref.familiar, image.ref.familiar_repository, image.ref.canonical)
    return any(fnmatch.fnmatchcase(name, pattern) for name in names)


@blueprint.route("/images/<path:name>/json", methods=["GET"])
async def inspect_image(name: str) -> Response:
    image = engine().images.get(name)
    return jsonify({
        **{k: v for k, v in _summary(image).items() if k not in ("Containers", "SharedSize")},
        "Created": _created(image),
        "Comment": "",
        "Author": "",
        "Architecture": "amd64",
        "Os": "linux",
        "Config": {"Env": [], "Cmd": None, "Entrypoint": None, "ExposedPorts": None,
                   "Labels": None, "Volumes": None, "WorkingDir": ""},
        "RootFS": {"Type": "layers", "Layers": []},
        "Metadata": {"LastTagTime": _created(image)},
    })


@blueprint.route("/images/<path:name>", methods=["DELETE"])
async def remove_image(name: str) -> Response:
    image = engine().images.get(name)
    in_use = [c for c in engine().containers()
              if parse_reference(c.config.image).canonical == image.ref.canonical]
    if in_use and not query_bool(request.args, "force"):
        raise DockerError(409, (
            f"conflict: unable to remove repository reference \"{image.ref.familiar}\" "
            f"(must force) - container {in_use[0].short_id} is using its referenced image "
            f"{image.ref.image_id[7:19]}"
        ))
    engine().images.remove(name)
    engine().events.publish("image", "delete", image.ref.image_id, {"name": image.ref.familiar})
    return jsonify([{"Untagged": image.ref.familiar}, {"Deleted": image.ref.image_id}])


@blueprint.route("/images/prune", methods=["POST"])
async def prune_images() -> Response:
    filters = parse_filters(request.args.get("filters"))
    selection = prune_filter(filters, datetime.now(UTC), accepted=frozenset({"dangling"}))
    deleted = []
    # Only all=false (dangling only) is Docker's default, and kubedock has no dangling images.
    if filters.get("dangling") == ["false"]:
        in_use = {parse_reference(c.config.image).canonical for c in engine().containers()}
        for image in engine().images.all():
            # kubedock's images carry no labels; they were created when first pulled.
            created = datetime.fromtimestamp(image.created, UTC)
            if image.ref.canonical not in in_use and selection.selects(created, {}):
                engine().images.remove(image.ref.canonical)
                deleted.append({"Untagged": image.ref.familiar})
    return jsonify({"ImagesDeleted": deleted or None, "SpaceReclaimed": 0})
