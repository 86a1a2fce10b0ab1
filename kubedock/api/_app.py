"""The Quart application: routing, API version prefixes, headers and error bodies."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

import trio
from quart import Response, current_app, has_request_context, jsonify, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .. import __version__
from .._metrics import API_LATENCY, API_REQUESTS
from ..build import LayerCache
from ..engine import Engine, EngineError
from ..kube import KubeError
from ._body import BoundedHTTPConnection, BoundedRequest
from ._errors import DockerError, docker_error
from ._mounts import BindPolicy
from ._unimplemented import unimplemented

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
# Sent on every answer, as Docker does; clients read Api-Version to pick their API version.
DOCKER_HEADERS = (
    ("Api-Version", API_VERSION),
    ("Ostype", "linux"),
    ("Docker-Experimental", "false"),
    ("Server", f"Docker/{__version__} (linux) kubedock"),
)
_VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(?=/)")
_ROUTE_KEY = "kubedock.route"
_VERSION_KEY = "kubedock.api_version"
# One line per answered request; shown from verbosity 2 on.
access_log = logging.getLogger("kubedock.access")
log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def engine() -> Engine:
    result: Engine = current_app.config["KUBEDOCK_ENGINE"]
    return result


def api_version() -> tuple[int, int]:
    """The API version the request's path names; unversioned paths get the newest, as with
    Docker."""
    version = cast(Scope, request.scope).get(_VERSION_KEY)
    return version if isinstance(version, tuple) else _parse_version(API_VERSION)


def _parse_version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


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
    return _measured(_ending_broken_streams(
        _strip_version_prefix(cast(ASGIApp, routes_app(engine, binds, build_cache)))))


def routes_app(engine: Engine, binds: BindPolicy | None = None,
               build_cache: LayerCache | None = None) -> QuartTrio:
    """The Quart application under `create_app`'s wrappers: its `url_map` lists every route."""
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
    for blueprint in (system, images, containers, execs, networks, volumes, archive, stats,
                      update, disk_usage, build):
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
            cast(Scope, request.scope)[_ROUTE_KEY] = request.url_rule.rule

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


def _measured(app: ASGIApp) -> ASGIApp:
    """Count every answer by route and status, time it to its head, and log it (access log)."""

    async def measured(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.monotonic()
        path = scope["path"]
        status = 500  # what the server answers when the app fails before its head

        async def send_and_note(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                API_LATENCY.observe(time.monotonic() - started, scope["method"], _route(scope))
            await send(message)

        try:
            await app(scope, receive, send_and_note)
        finally:
            route = _route(scope)
            API_REQUESTS.inc(scope["method"], route, str(status))
            access_log.info("%s %s %d %.3fs", scope["method"], path, status,
                            time.monotonic() - started, extra={"route": route})

    return measured


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


def _route(scope: Scope) -> str:
    route: str = scope.get(_ROUTE_KEY, "unmatched")
    return route


def _strip_version_prefix(app: ASGIApp) -> ASGIApp:
    """Serve every route also under ``/v1.NN``; refuse versions below the minimum."""
    minimum = _parse_version(MIN_API_VERSION)

    async def versioned(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            match = _VERSION_PREFIX.match(scope["path"])
            if match:
                version = (int(match.group(1)), int(match.group(2)))
                if version < minimum and scope["type"] == "http":
                    await _send_json_error(send, 400, (
                        f"client version {version[0]}.{version[1]} is too old. "
                        f"Minimum supported API version is {MIN_API_VERSION}, "
                        "please upgrade your client to a newer version"
                    ))
                    return
                scope[_VERSION_KEY] = version
                prefix = match.group(0)
                # In place: the measuring wrapper outside reads what routing wrote into it.
                scope["path"] = scope["path"][len(prefix):]
                scope["raw_path"] = scope.get("raw_path", b"")[len(prefix):]
        await app(scope, receive, send)

    return versioned


async def _send_json_error(send: Send, status: int, message: str) -> None:
    import json

    body = json.dumps({"message": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"api-version", API_VERSION.encode()),
    ]})
    await send({"type": "http.response.body", "body": body})
