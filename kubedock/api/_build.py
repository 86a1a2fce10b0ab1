"""`POST /build`: Docker's classic builder protocol. The context tar is spooled to a file, the
Dockerfile interpreted by kubedock's builder, the result pushed under each tag; progress and
errors go out as Docker's build JSON. A client that goes away cancels the build, and whatever
it made in the cluster goes with it."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Mapping
from functools import partial
from typing import Any, BinaryIO

import trio
from quart import Blueprint, Response, current_app, jsonify, request

from .. import registry
from ..build import (
    BuildContext,
    Builder,
    BuildFailed,
    BuildOptions,
    DockerfileError,
    LayerCache,
    RegistryImages,
    SandboxFactory,
    build_credentials,
    open_sandbox,
    parse_dockerfile,
)
from ..engine import ImageRef, InvalidParameter, RegistrySource, parse_reference
from ._app import engine
from ._errors import DockerError, bad_request, docker_error
from ._parse import query_bool

blueprint = Blueprint("build", __name__)
log = logging.getLogger(__name__)

# Options kubedock's builder does not do, with the values that ask for nothing (as clients send
# them when not set): any other value is refused by name.
_NEUTRAL: Mapping[str, tuple[str, ...]] = {
    "remote": ("",), "squash": ("", "0", "false"),
    "memory": ("", "0"), "memswap": ("", "0", "-1"),
    "cpushares": ("", "0"), "cpusetcpus": ("",), "cpusetmems": ("",), "cpuperiod": ("", "0"),
    "cpuquota": ("", "0"), "shmsize": ("", "0"), "cgroupparent": ("",),
    "networkmode": ("", "default", "bridge"), "ulimits": ("", "null", "[]"),
    "outputs": ("", "[]", "null"), "isolation": ("", "default"), "session": ("",),
    "buildid": ("",), "version": ("", "1"),
}
_HANDLED = frozenset({"dockerfile", "t", "q", "nocache", "rm", "forcerm", "pull", "buildargs",
                      "labels", "target", "platform", "cachefrom", "extrahosts"})
_NODES = registry.host_platform_of_this_machine()
_CACHE_KEY = "KUBEDOCK_BUILD_CACHE"
UNTAGGED_REPOSITORY = "kubedock/untagged"


def _json_object(name: str) -> dict[str, Any]:
    text = request.args.get(name, "")
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise bad_request(f"invalid {name}: {text!r} is not JSON") from None
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(v, str) or v is None for v in value.values()):
        raise bad_request(f"invalid {name}: want a JSON object of strings")
    return value


def _json_names(name: str) -> tuple[str, ...]:
    text = request.args.get(name, "")
    try:
        value = json.loads(text) if text else None
    except ValueError:
        raise bad_request(f"invalid {name}: {text!r} is not JSON") from None
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise bad_request(f"invalid {name}: want a JSON array of strings")
    return tuple(value)


def _extra_hosts() -> tuple[tuple[str, str], ...]:
    """`--add-host name:ip`, as Docker reads them (the name ends at the first colon)."""
    hosts = []
    for entry in request.args.getlist("extrahosts"):
        if not entry:
            continue
        name, _, address = entry.partition(":")
        if address == "host-gateway":
            raise DockerError(501, "build option extrahosts=name:host-gateway is not supported "
                              "by kubedock's builder: a build step runs in a pod")
        try:
            ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            raise bad_request(f'invalid IP address in add-host: "{address}"') from None
        if not name:
            raise bad_request(f"bad format for add-host: {entry!r}")
        hosts.append((name, address.strip("[]")))
    return tuple(hosts)


def _options() -> BuildOptions:
    for name, value in request.args.items(multi=True):
        if name in _HANDLED:
            continue
        if name == "version" and value == "2":
            raise DockerError(501, "BuildKit (version=2) is not supported by kubedock: it "
                              "builds with Docker's classic builder")
        if value not in _NEUTRAL.get(name, ("",)):
            raise DockerError(501, f"build option {name}={value} is not supported by "
                              "kubedock's builder")
    platform = request.args.get("platform", "")
    if platform:
        os, _, rest = platform.partition("/")
        architecture, _, variant = rest.partition("/")
        if registry.normalise_platform(os, architecture or _NODES.architecture,
                                       variant) != _NODES:
            raise DockerError(501, f"build option platform={platform} is not supported: "
                              f"kubedock builds for the nodes' platform {_NODES}")
    return BuildOptions(
        dockerfile=request.args.get("dockerfile") or "Dockerfile",
        build_args=_json_object("buildargs"),
        labels={k: v or "" for k, v in _json_object("labels").items()},
        target=request.args.get("target", ""),
        no_cache=query_bool(request.args, "nocache"),
        cache_from=_json_names("cachefrom"),
        extra_hosts=_extra_hosts(),
        pull=query_bool(request.args, "pull"),
        remove=query_bool(request.args, "rm", default=True),
        force_remove=query_bool(request.args, "forcerm"),
    )


def _pushed_as(tags: list[ImageRef], image_id: str, *, own_registry: bool) -> list[ImageRef]:
    """The names a build is pushed under: its tags (all of them into kubedock's own registry,
    when it has one; else less those on `localhost`, a name Docker keeps local and
    Testcontainers gives the images it builds: no node could pull it), else a name of its own
    (nodes pull an image run by its id, or by a local name, by that)."""
    kept = tags if own_registry else [tag for tag in tags if tag.registry != "localhost"]
    return kept or [parse_reference(f"{UNTAGGED_REPOSITORY}:{image_id[7:19]}")]


def _line(**document: Any) -> bytes:
    return json.dumps(document).encode() + b"\n"


@blueprint.route("/build", methods=["POST"])
async def build() -> Response:
    options = _options()
    try:
        tags = [parse_reference(tag) for tag in request.args.getlist("t")]
    except InvalidParameter as error:
        raise bad_request(error.message) from None
    events = engine().events
    image_store = engine().images
    source = image_store.source
    if not isinstance(source, RegistrySource):
        raise DockerError(501, "docker build needs a registry kubedock can push to")
    images = RegistryImages(image_store, source.client, build_credentials(
        request.headers.get("X-Registry-Config", "")))
    cache: LayerCache = current_app.config[_CACHE_KEY]
    sandboxes: SandboxFactory = partial(open_sandbox, engine().cluster, engine().settings)
    # The spooled context and its reader live until the build's answer ends.
    resources = contextlib.ExitStack()
    try:
        spool = resources.enter_context(
            tempfile.TemporaryFile(prefix="kubedock-context-"))  # noqa: SIM115 (it is one)
        await _receive_context(spool)
        context = await trio.to_thread.run_sync(_open_context, spool)
        resources.callback(context.close)
        text = context.read_text(options.dockerfile)
        if text is None:
            raise bad_request(f"Cannot locate specified Dockerfile: {options.dockerfile}")
        context.use_dockerignore()
        send, receive = trio.open_memory_channel[bytes](64)
        quiet = query_bool(request.args, "q")
        # What -q holds back: Docker sends it after all when the build fails.
        held: list[bytes] = []

        async def out(line: bytes) -> None:
            if quiet:
                held.append(line)
            else:
                await send.send(line)

        async def emit(text: str) -> None:
            await out(_line(stream=text))

        async def emit_id(image_id: str) -> None:
            await out(_line(aux={"ID": image_id}))

        builder = Builder(parse_dockerfile(text), context, options, images, sandboxes, cache,
                          emit, emit_id=emit_id)
        builder.check()
    except (DockerfileError, BuildFailed) as error:
        resources.close()
        raise bad_request(str(error)) from None
    except BaseException:
        resources.close()
        raise

    async def fail(message: str, code: int | None) -> None:
        for line in held:
            await send.send(line)
        # Docker gives a code only for a RUN that exited non-zero.
        detail = {"message": message} if code is None else {"code": code, "message": message}
        await send.send(_line(errorDetail=detail, error=message))

    async def run() -> None:
        async with send:
            try:
                with cache.hold():  # the layers stay until pushed
                    built = await builder.build()
                    pushed = _pushed_as(tags, built.id,
                                        own_registry=image_store.own_registry is not None)
                    await images.store(built, pushed)
                for tag in tags:
                    if tag not in pushed:
                        image_store.tag(pushed[0].familiar, tag)
            except BuildFailed as error:
                await fail(error.message, error.code)
                return
            except Exception as error:
                log.exception("build failed")
                await fail(docker_error(error).message, None)
                return
            if quiet:
                await send.send(_line(stream=f"{built.id}\n"))
            await emit(f"Successfully built {built.id[7:19]}\n")
            for tag in tags:
                events.publish("image", "tag", built.id, {"name": tag.familiar})
                await emit(f"Successfully tagged {tag.familiar}\n")

    async def body() -> AsyncIterator[bytes]:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run)
                async with receive:
                    async for line in receive:
                        yield line
        finally:
            resources.close()

    return Response(body(), content_type="application/json")


async def _receive_context(spool: BinaryIO) -> None:
    async for chunk in request.body:
        await trio.to_thread.run_sync(spool.write, chunk)


def _open_context(spool: BinaryIO) -> BuildContext:
    spool.seek(0)
    try:
        return BuildContext(spool)
    except Exception as error:  # tarfile's errors, for a body that is no tar
        raise bad_request(f"the build context is not a tar archive: {error}") from None


@blueprint.route("/build/prune", methods=["POST"])
async def prune() -> Response:
    cache: LayerCache = current_app.config[_CACHE_KEY]
    freed = await trio.to_thread.run_sync(cache.clear)
    return jsonify({"CachesDeleted": None, "SpaceReclaimed": freed})
