"""Image endpoints. A pull asks the registry what the reference names (manifest and config) and
records it; the layers are pulled by the node when a pod starts."""

from __future__ import annotations

import fnmatch
import json
import logging
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio
from quart import Blueprint, Response, jsonify, request

from .. import registry
from ..engine import (
    EngineError,
    Image,
    InvalidParameter,
    NoSuchImage,
    PrePull,
    RegistryUnreachable,
    parse_reference,
)
from ..kube import KubeError
from ..wire import PullFailure, PullProgress, failure_line, final_status_line, progress_line
from ._app import engine
from ._errors import DockerError, bad_request
from ._parse import check_filters, parse_filters, prune_filter, query_bool

blueprint = Blueprint("images", __name__)
log = logging.getLogger(__name__)


def _created(image: Image) -> datetime:
    """When the image was built (its config says), else when kubedock first knew of it."""
    if image.config and image.config.created:
        try:
            return datetime.fromisoformat(image.config.created.replace("Z", "+00:00"))
        except ValueError:
            pass
    return datetime.fromtimestamp(image.created, UTC)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _same_image(image: Image) -> list[Image]:
    """Every reference kubedock knows that names this image (same id), first known first."""
    return [other for other in engine().images.all() if other.id == image.id]


def _repo_tags(image: Image) -> list[str]:
    return list(dict.fromkeys(i.ref.familiar for i in _same_image(image)
                              if i.ref.tag and not i.ref.digest))


def _repo_digests(image: Image) -> list[str]:
    return list(dict.fromkeys(d for d in (i.repo_digest for i in _same_image(image)) if d))


def summary(image: Image) -> dict[str, Any]:
    labels = dict(image.config.labels) if image.config else {}
    return {
        "Id": image.id,
        "ParentId": "",
        "RepoTags": _repo_tags(image),
        "RepoDigests": _repo_digests(image),
        "Created": int(_created(image).timestamp()),
        "Size": image.size,
        "SharedSize": -1,
        "VirtualSize": image.size,
        "Labels": labels,
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
        ref = parse_reference(reference)
    except InvalidParameter as error:
        raise bad_request(error.message) from None
    credentials = registry.decode_registry_auth(request.headers.get("X-Registry-Auth", ""))
    lines = [PullProgress(f"Pulling from {ref.path}", ref.digest or ref.tag or "")]
    try:
        image, downloaded = await engine().images.pull(ref, credentials)
    except RegistryUnreachable as error:
        # The node may reach a registry kubedock cannot (a node-level mirror): it pulls at start.
        log.warning("%s; the node pulls the image when a container starts", error.message)
        image, downloaded = engine().images.add(ref), False
        lines.append(PullProgress(f"Registry unreachable from kubedock ({error.message}); "
                                  "the node pulls the image when a container starts"))
    if credentials is not None:
        try:
            await engine().pull_secrets.remember(ref, credentials)
        except KubeError as error:
            # The pull itself succeeded; the node may still have other means to pull.
            log.warning("cannot keep the credentials of %s for the nodes: %s", ref.familiar,
                        error)
            lines.append(PullProgress("The nodes get no pull secret for these credentials: "
                                      f"{error}"))
    if image.resolved:
        lines.append(PullProgress(f"Digest: {image.resolved.digest}"))
    pre_puller = engine().pre_puller
    pre_pull = pre_puller.start(ref.canonical, image.resolved.digest if image.resolved else None,
                                engine().pull_secrets.of(ref.canonical)) \
        if pre_puller is not None else None

    async def stream() -> AsyncIterator[bytes]:
        head = b"".join(map(progress_line, lines))
        final = final_status_line(ref.familiar, downloaded=downloaded)
        if pre_pull is None or (pre_pull.done.is_set() and pre_pull.failure is None):
            yield head + final  # one write: a cached pull stays a single round trip
            return
        yield head
        async for line in _until_pulled_by_the_node(pre_pull):
            yield line
        yield final if pre_pull.failure is None else failure_line(PullFailure(pre_pull.failure))

    engine().events.publish("image", "pull", ref.familiar, {"name": ref.familiar})
    return Response(stream(), content_type="application/json")


_PRE_PULL_HEARTBEAT_SECONDS = 10


async def _until_pulled_by_the_node(pull: PrePull) -> AsyncIterator[bytes]:
    """Progress lines while the node pulls (clients give up on a silent pull)."""
    waiting = PullProgress("Pulling onto the node", progress_detail={})
    yield progress_line(waiting)
    while not pull.done.is_set():
        with trio.move_on_after(_PRE_PULL_HEARTBEAT_SECONDS):
            await pull.done.wait()
        if not pull.done.is_set():
            yield progress_line(waiting)
    if pull.failure is None:
        yield progress_line(PullProgress("Pulled onto the node"))


@blueprint.route("/images/json", methods=["GET"])
async def list_images() -> Response:
    filters = parse_filters(request.args.get("filters"))
    check_filters(filters, {"reference", "dangling", "label", "before", "since"})
    images = list({image.id: image for image in engine().images.all()}.values())
    if "reference" in filters:
        images = [i for i in images if any(_reference_matches(other, r) for other in
                                           _same_image(i) for r in filters["reference"])]
    if "label" in filters:
        images = [i for i in images if all(_has_label(i, wanted) for wanted in filters["label"])]
    if filters.get("dangling") == ["true"]:
        images = []  # every image kubedock knows has a name
    return jsonify([summary(image) for image in images])


def _has_label(image: Image, wanted: str) -> bool:
    labels = image.config.labels if image.config else {}
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _reference_matches(image: Image, pattern: str) -> bool:
    names = (image.ref.familiar, image.ref.familiar_repository, image.ref.canonical)
    return any(fnmatch.fnmatchcase(name, pattern) for name in names)


_NODES = registry.host_platform_of_this_machine()
_NO_CONFIG = registry.parse_image_config(b"{}", "")


@blueprint.route("/images/<path:name>/json", methods=["GET"])
async def inspect_image(name: str) -> Response:
    image = engine().images.get(name)
    config = image.config
    document = {
        **{k: v for k, v in summary(image).items()
           if k not in ("Containers", "SharedSize", "Labels", "ParentId")},
        "Parent": "",
        "Comment": "",
        "Created": _timestamp(_created(image)),
        "Container": "",
        "DockerVersion": "",
        "Author": config.author if config else "",
        # Known by name only (no registry answered): what the nodes run, with no defaults.
        "Architecture": config.architecture if config else _NODES.architecture,
        "Os": config.os if config else _NODES.os,
        "Config": registry.inspect_config(config or _NO_CONFIG),
        "RootFS": {"Type": "layers", **({"Layers": list(config.diff_ids)}
                                        if config and config.diff_ids else {})},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }
    if config and config.variant:
        document["Variant"] = config.variant
    return jsonify(document)


@blueprint.route("/images/<path:name>/tag", methods=["POST"])
async def tag_image(name: str) -> tuple[str, int]:
    repo, tag = request.args.get("repo", ""), request.args.get("tag", "")
    try:
        ref = parse_reference(f"{repo}:{tag}" if tag else repo)
    except InvalidParameter as error:
        raise bad_request(error.message) from None
    if ref.digest:
        raise bad_request("refusing to create a tag with a digest reference")
    image = engine().images.tag(name, ref)
    engine().events.publish("image", "tag", image.id, {"name": ref.familiar})
    return "", 201


@blueprint.route("/images/<path:name>/push", methods=["POST"])
async def push_image(name: str) -> Response:
    tag = request.args.get("tag", "")
    try:
        ref = parse_reference(f"{name}:{tag}" if tag else name)
    except InvalidParameter as error:
        raise bad_request(error.message) from None
    try:
        engine().images.get(ref.familiar)
    except NoSuchImage:
        raise DockerError(404, "An image does not exist locally with the tag: "
                          f"{ref.familiar_repository}") from None
    credentials = registry.decode_registry_auth(request.headers.get("X-Registry-Auth", ""))
    image, size = await engine().images.push(ref, credentials)
    assert image.resolved is not None
    digest = image.resolved.digest
    lines = [
        progress_line(PullProgress(f"The push refers to repository [{ref.familiar_repository}]")),
        progress_line(PullProgress(f"{ref.tag}: digest: {digest} size: {size}")),
        json.dumps({"progressDetail": {}, "aux": {"Tag": ref.tag, "Digest": digest,
                                                  "Size": size}}).encode() + b"\n",
    ]

    async def stream() -> AsyncIterator[bytes]:
        yield b"".join(lines)

    engine().events.publish("image", "push", ref.familiar, {"name": ref.familiar})
    return Response(stream(), content_type="application/json")


@blueprint.route("/images/load", methods=["POST"])
async def load_images() -> Response:
    """The archive is spooled to a file (memory stays bounded), then pushed layer by layer."""
    with tempfile.TemporaryDirectory(prefix="kubedock-load-") as directory:
        archive = trio.Path(directory) / "archive.tar"
        async with await archive.open("wb") as file:
            async for chunk in request.body:
                await file.write(chunk)
        try:
            named, by_id = await engine().images.load(Path(archive))
        except EngineError as error:
            # Docker answers 200 and says what went wrong in the stream (docker-py raises
            # ImageLoadError from it).
            lines = failure_line(PullFailure(error.message))
        else:
            lines = b"".join(json.dumps({"stream": text}).encode() + b"\n" for text in [
                *(f"Loaded image: {image.ref.familiar}\n" for image in named),
                *(f"Loaded image ID: {image.id}\n" for image in by_id)])
            for image in named:
                engine().events.publish("image", "load", image.id, {"name": image.ref.familiar})

    async def stream() -> AsyncIterator[bytes]:
        yield lines

    return Response(stream(), content_type="application/json")


@blueprint.route("/images/<path:name>/get", methods=["GET"])
async def save_image(name: str) -> Response:
    return await _save([name])


@blueprint.route("/images/get", methods=["GET"])
async def save_images() -> Response:
    return await _save(request.args.getlist("names"))


async def _save(names: list[str]) -> Response:
    """The archive streams from the registry as it is written: a failure once it has begun
    cuts the answer short, which loaders reject as a truncated tar."""
    try:
        archive = await engine().images.save(names)
    except NoSuchImage:
        raise DockerError(404, "reference does not exist") from None

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for chunk in archive:
                yield chunk
        except (registry.ManifestError, registry.RegistryError, registry.Unreachable,
                registry.Silent) as error:
            log.warning("docker save of %s cut short: %s", ", ".join(names), error)
            raise

    for name in names:
        engine().events.publish("image", "save", name, {"name": name})
    return Response(stream(), content_type="application/x-tar")


@blueprint.route("/images/<path:name>", methods=["DELETE"])
async def remove_image(name: str) -> Response:
    image = engine().images.get(name)
    in_use = [c for c in engine().containers()
              if parse_reference(c.config.image).canonical == image.ref.canonical]
    if in_use and not query_bool(request.args, "force"):
        raise DockerError(409, (
            f"conflict: unable to remove repository reference \"{image.ref.familiar}\" "
            f"(must force) - container {in_use[0].short_id} is using its referenced image "
            f"{image.id[7:19]}"
        ))
    credentials = registry.decode_registry_auth(request.headers.get("X-Registry-Auth", ""))
    await engine().images.delete(name, credentials, force=query_bool(request.args, "force"))
    engine().events.publish("image", "delete", image.id, {"name": image.ref.familiar})
    deleted = [] if any(other.id == image.id for other in engine().images.all()) \
        else [{"Deleted": image.id}]
    return jsonify([{"Untagged": image.ref.familiar}, *deleted])


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
