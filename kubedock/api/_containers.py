"""Container endpoints: create, inspect, list, lifecycle, wait, logs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import attrs
from quart import Blueprint, Response, jsonify, request

from .. import wire
from ..engine import (
    Conflict,
    LogRequest,
    Mount,
    NoSuchContainer,
    NotFound,
    WaitCondition,
    container_top,
    with_anonymous_volumes,
)
from ._app import bind_policy, engine, request_body
from ._create_body import log_config, parse_create, unsupported, with_image_defaults
from ._errors import DockerError, bad_request, docker_error
from ._hijack import Hijack
from ._inspect import inspect_document, select_containers, summary
from ._mounts import with_volumes_from
from ._parse import (
    json_object,
    parse_filters,
    prune_filter,
    query_bool,
    query_float,
    query_int,
    string_list,
)
from ._streams import read_ahead

blueprint = Blueprint("containers", __name__)


# -- create ---------------------------------------------------------------------------------

@blueprint.route("/containers/create", methods=["POST"])
async def create() -> tuple[Response, int]:
    config = parse_create(json_object(await request_body()), bind_policy())
    image = await engine().images.of_container(config.image)
    if image is not None and image.config is not None:
        config = with_image_defaults(config, image.config)
        if config.image in image.id:
            config = attrs.evolve(config, image=image.ref.familiar)
        # A name no registry has (a tag made here only, an image kept in kubedock's registry):
        # the node pulls the image by one that has it; clients keep seeing theirs.
        if pulled_as := engine().images.node_reference(image):
            config = attrs.evolve(config, pulled_as=pulled_as)
    if config.stop_signal:
        from ..engine import signal_name

        signal_name(config.stop_signal)
    name = request.args.get("name") or None
    volumes_from = string_list(config.raw_host_config, "VolumesFrom", "HostConfig") or ()
    if volumes_from:
        config = attrs.evolve(config, mounts=with_volumes_from(
            config.mounts, volumes_from, _mounts_of))
    config = attrs.evolve(config, mounts=with_anonymous_volumes(
        config.mounts, config.image_config.volumes if config.image_config else ()))
    await engine().volumes.ensure(config.mounts, announce=True)
    container = engine().create(name, config)
    if config.console_size:
        height, width = config.console_size
        container.terminal.request(width, height)
    response = jsonify({"Id": container.id, "Warnings": []})
    return response, 201


def _mounts_of(ref: str) -> tuple[Mount, ...] | None:
    try:
        return engine().get(ref).config.mounts
    except NoSuchContainer:
        return None


# -- inspect and list -----------------------------------------------------------------------

@blueprint.route("/containers/<ref>/json", methods=["GET"])
async def inspect(ref: str) -> Response:
    return jsonify(inspect_document(engine().get(ref)))


@blueprint.route("/containers/json", methods=["GET"])
async def list_containers() -> Response:
    filters = parse_filters(request.args.get("filters"))
    show_all = query_bool(request.args, "all")
    limit = query_int(request.args, "limit", -1) or -1
    containers = engine().containers()
    if not show_all and limit <= 0 and "status" not in filters and "exited" not in filters:
        containers = [c for c in containers if c.status == "running" or c.restarting]
    containers = select_containers(containers, filters)
    if limit > 0:
        containers = containers[:limit]
    return jsonify([summary(c) for c in containers])


# -- lifecycle ------------------------------------------------------------------------------

def _no_content() -> Response:
    return Response(b"", status=204)


@blueprint.route("/containers/<ref>/start", methods=["POST"])
async def start(ref: str) -> Response:
    container = engine().get(ref)
    await engine().start(container)
    return _no_content()


def _stop_seconds() -> int | None:
    return query_int(request.args, "t") if "t" in request.args else query_int(
        request.args, "timeout")


@blueprint.route("/containers/<ref>/stop", methods=["POST"])
async def stop(ref: str) -> Response:
    container = engine().get(ref)
    await engine().stop(container, _stop_seconds())
    return _no_content()


@blueprint.route("/containers/<ref>/restart", methods=["POST"])
async def restart(ref: str) -> Response:
    container = engine().get(ref)
    await engine().restart(container, _stop_seconds())
    return _no_content()


@blueprint.route("/containers/<ref>/kill", methods=["POST"])
async def kill(ref: str) -> Response:
    container = engine().get(ref)
    await engine().kill(container, request.args.get("signal", ""))
    return _no_content()


@blueprint.route("/containers/<ref>/top", methods=["GET"])
async def top(ref: str) -> Response:
    titles, processes = await container_top(engine(), engine().get(ref),
                                            request.args.get("ps_args", ""))
    return jsonify({"Processes": processes, "Titles": titles})


@blueprint.route("/containers/<ref>/rename", methods=["POST"])
async def rename(ref: str) -> Response:
    name = request.args.get("name", "")
    if not name:
        raise bad_request("name is required")
    engine().rename(engine().get(ref), name)
    return _no_content()


@blueprint.route("/containers/<ref>", methods=["DELETE"])
async def remove(ref: str) -> Response:
    if query_bool(request.args, "link"):
        raise unsupported("removing links", "a link lasts as long as the linking container")
    container = engine().get(ref)
    await engine().remove(container, force=query_bool(request.args, "force"),
                          volumes=query_bool(request.args, "v"))
    return _no_content()


@blueprint.route("/containers/prune", methods=["POST"])
async def prune() -> Response:
    selection = prune_filter(parse_filters(request.args.get("filters")), datetime.now(UTC))
    deleted = []
    for container in engine().containers():
        if container.status not in ("created", "exited"):
            continue
        if not selection.selects(container.created, container.config.labels):
            continue
        try:
            await engine().remove(container, force=False)
        except (Conflict, NotFound):
            continue  # started, or removed, meanwhile: not for pruning, as with Docker
        deleted.append(container.id)
    return jsonify({"ContainersDeleted": deleted or None, "SpaceReclaimed": 0})


_WAIT_CONDITIONS: tuple[WaitCondition, ...] = ("not-running", "next-exit", "removed")


@blueprint.route("/containers/<ref>/wait", methods=["POST"])
async def wait(ref: str) -> Response:
    container = engine().get(ref)
    wanted = request.args.get("condition") or "not-running"
    for condition in _WAIT_CONDITIONS:
        if condition == wanted:
            break
    else:
        raise bad_request(f"invalid condition: {wanted!r}")

    containers = engine()  # the app context does not reach into the streamed body

    async def body() -> AsyncIterator[bytes]:
        # The 200 goes out at once: the docker CLI waits for it before it starts the container.
        yield b""
        try:
            await containers.wait(container, condition)
        except Exception as failure:
            message = docker_error(failure).message
            yield json.dumps({"StatusCode": -1, "Error": {"Message": message}}).encode()
            return
        error = {"Message": container.error} if container.error else None
        yield json.dumps({"StatusCode": container.exit_code, "Error": error}).encode() + b"\n"

    return Response(body(), content_type="application/json")


# -- logs -----------------------------------------------------------------------------------

@blueprint.route("/containers/<ref>/logs", methods=["GET"])
async def logs(ref: str) -> Response:
    container = engine().get(ref)
    if log_config(container.config.raw_host_config)[0] == "none":
        raise DockerError(501, "configured logging driver does not support reading")
    args = request.args
    stdout, stderr = query_bool(args, "stdout"), query_bool(args, "stderr")
    if not (stdout or stderr):
        raise bad_request("You must choose at least one stream")
    tail_text = args.get("tail", "all").strip().lower()
    if tail_text in ("", "all"):
        tail = None
    else:
        try:
            tail = int(tail_text)
        except ValueError:
            raise bad_request(f"invalid value for tail: {tail_text!r}") from None
        tail = None if tail < 0 else tail
    log_request = LogRequest(
        stdout=stdout, stderr=stderr,
        follow=query_bool(args, "follow") and container.status == "running",
        timestamps=query_bool(args, "timestamps"),
        since=query_float(args, "since") or None,
        until=query_float(args, "until") or None,
        tail=tail,
    )
    tty = container.config.tty

    containers = engine()  # the app context does not reach into the streamed body

    async def frames() -> AsyncIterator[bytes]:
        async for stream, data in containers.logs(container, log_request):
            yield data if tty else wire.frame(wire.Stream(stream), data)

    async def followed() -> AsyncIterator[bytes]:
        yield b""  # the head at once, as Docker's, before the container writes anything
        async for chunk in frames():
            yield chunk

    if log_request.follow:
        body = followed()
    else:
        body = await read_ahead(frames())
        if hijack := Hijack.offered(request.scope):
            hijack.write_head_with_body()

    content_type = ("application/vnd.docker.raw-stream" if tty
                    else "application/vnd.docker.multiplexed-stream")
    return Response(body, content_type=content_type)
