"""The Quart application: routing, API version prefixes, headers and error bodies."""

from __future__ import annotations

import logging
from typing import cast

import trio
from quart import Blueprint, Response, current_app, has_request_context, jsonify, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ..build import LayerCache
from ..engine import Engine, EngineError
from ..kube import KubeError
from ._body import BoundedHTTPConnection, BoundedRequest
from ._errors import DockerError, docker_error
from ._front import (
    API_VERSION,
    DOCKER_HEADERS,
    ROUTE_KEY,
    VERSION_KEY,
    ASGIApp,
    Receive,
    Scope,
    Send,
    front_door,
    parse_version,
)
from ._mounts import BindPolicy
from ._unimplemented import unimplemented

log = logging.getLogger(__name__)


def engine() -> Engine:
    result: Engine = current_app.config["KUBEDOCK_ENGINE"]
    return result


def api_version() -> tuple[int, int]:
    """The API version the request's path names; unversioned paths get the newest, as with
    Docker."""
    version = cast(Scope, request.scope).get(VERSION_KEY)
    return version if isinstance(version, tuple) else parse_version(API_VERSION)


def bind_policy() -> BindPolicy:
    result: BindPolicy = current_app.config["KUBEDOCK_BIND_POLICY"]
    return result


JSON_BODY_LIMIT = 4 * 1024 * 1024
# A body no route read is read before the answer goes out, as Go's net/http does (up to 256 KiB),
# so that the connection can carry the client's next request: hypercorn closes a connection
# whose request was not read to its end, under a client that pools it (docker-py, Go).
UNREAD_BODY_DRAINED = 256 * 1024
UNREAD_BODY_SECONDS = 1.0


async def request_body(limit: int = JSON_BODY_LIMIT) -> bytes:
    """The whole request body, for JSON requests; archives are streamed instead.

    A body beyond `limit` is refused (413) as soon as that is known: by its Content-Length
    before any of it is read, or, when chunked, once the bytes counted pass the limit. The rest
    is never read, so the answer closes the connection.
    """
    if (request.content_length or 0) > limit:
        raise _too_large(limit)
    data = bytearray()
    async for chunk in request.body:
        data += chunk
        if len(data) > limit:
            raise _too_large(limit)
    return bytes(data)


def _too_large(limit: int) -> DockerError:
    return DockerError(413, f"request body too large: more than {limit} bytes")


def error_response(error: DockerError) -> Response:
    if error.status == 304:
        return Response(b"", status=304)
    response = jsonify({"message": error.message})
    response.status_code = error.status
    if error.status == 413:
        # The body was left unread: this connection cannot carry another request.
        response.headers["Connection"] = "close"
    return response


def create_app(engine: Engine, binds: BindPolicy | None = None, *,
               build_cache: LayerCache | None = None) -> ASGIApp:
    """The Docker API as an ASGI application serving ``engine``; bind sources are checked
    against ``binds`` (default: the off-limits trees of this host); ``docker build`` keeps its
    layers in ``build_cache`` (default: one without a size cap)."""
    return front_door(docker_routes(engine, binds, build_cache=build_cache))


def docker_routes(engine: Engine, binds: BindPolicy | None = None, *,
                  build_cache: LayerCache | None = None) -> ASGIApp:
    """The routes behind the front door (`front_door`, or a `StartGate` behind it)."""
    return _ending_broken_streams(cast(ASGIApp, routes_app(engine, binds, build_cache)))


def load_routes() -> None:
    """Import every module the routes use, ahead of `routes_app` (e.g. in a worker thread, as
    the server does while its listeners answer)."""
    _blueprints()


def routes_app(engine: Engine, binds: BindPolicy | None = None,
               build_cache: LayerCache | None = None) -> QuartTrio:
    """The Quart application under `create_app`'s wrappers: its `url_map` lists every route."""
    app = QuartTrio("kubedock", static_folder=None)
    # Bodies (archives) are read as they arrive, no faster than a route consumes them.
    app.asgi_http_class = BoundedHTTPConnection
    app.request_class = BoundedRequest
    app.config.update(
        KUBEDOCK_ENGINE=engine,
        KUBEDOCK_BIND_POLICY=binds or BindPolicy.on_this_host(),
        KUBEDOCK_BUILD_CACHE=build_cache or LayerCache(),
        # Streams (logs, events, pulls) and long uploads end when they end, not on a timer.
        RESPONSE_TIMEOUT=None,
        BODY_TIMEOUT=None,
        MAX_CONTENT_LENGTH=None,
        PROVIDE_AUTOMATIC_OPTIONS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    for blueprint in _blueprints():
        app.register_blueprint(blueprint)

    @app.errorhandler(DockerError)
    async def on_docker_error(error: DockerError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    async def on_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        # A route may take the path for another method (DELETE /images/{name} takes
        # /images/x/history), so a 405 can be a Docker endpoint kubedock lacks as well.
        # attach/ws arrives as a websocket, which has no `request`.
        method, path = ((request.method, request.path) if has_request_context()
                        else ("GET", websocket.path))
        missing = unimplemented(method, path) if status in (404, 405) else None
        if missing:
            return error_response(DockerError(501, missing))
        if status in (404, 405):  # Docker has no 405: a path without that method is unknown
            return error_response(DockerError(404, "page not found"))
        message = error.description or error.name
        return error_response(DockerError(status, message))

    @app.errorhandler(Exception)
    async def on_error(error: Exception) -> Response:
        return error_response(docker_error(error))

    @app.before_request
    async def name_the_route() -> None:
        # For metrics and the access log, which see the request after routing is done.
        if request.url_rule is not None:
            cast(Scope, request.scope)[ROUTE_KEY] = request.url_rule.rule

    @app.after_request
    async def read_unread_body(response: Response) -> Response:
        if 0 < (request.content_length or 0) <= UNREAD_BODY_DRAINED:
            with trio.move_on_after(UNREAD_BODY_SECONDS):
                await request.body
        return response

    @app.after_request
    async def add_docker_headers(response: Response) -> Response:
        for name, value in DOCKER_HEADERS:
            response.headers[name] = value
        return response

    return app


def _blueprints() -> tuple[Blueprint, ...]:
    # Imported here: the blueprints import this module.
    from ._archive import blueprint as archive
    from ._build import blueprint as build
    from ._containers import blueprint as containers
    from ._disk_usage import blueprint as disk_usage
    from ._exec import blueprint as execs
    from ._images import blueprint as images
    from ._networks import blueprint as networks
    from ._stats import blueprint as stats
    from ._system import blueprint as system
    from ._update import blueprint as update
    from ._volumes import blueprint as volumes

    return (system, images, containers, execs, networks, volumes, archive, stats, update,
            disk_usage, build)


def _ending_broken_streams(app: ASGIApp) -> ASGIApp:
    """A streamed answer that breaks off (a copy out whose exec session the API server cut)
    ends its connection without the body's last chunk, so the client sees a failed transfer
    rather than a short one that looks whole. Only this request is affected; the reason is
    logged, as the status is long gone."""

    async def ending(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except* (EngineError, KubeError) as broken:
            reason: BaseException = broken
            while isinstance(reason, BaseExceptionGroup):
                reason = reason.exceptions[0]
            log.warning("%s %s broke off: %s", scope.get("method"), scope.get("path"), reason)

    return ending
