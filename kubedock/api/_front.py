"""The front door of the Docker API: what the listeners serve from their first moment.

`/_ping` and `/version` need nothing of the cluster, so they are answered here, before the routes
behind (Quart, the engine, the cluster gateway) are imported or connected: clients probe the
server with them as soon as it is started. Every other request passes on to the routes; while
the server still starts, a `StartGate` holds it until they are there. This module imports
neither Quart nor anything of the engine, so that the server listens within a fraction of its
start.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from .. import __version__
from .._metrics import API_LATENCY, API_REQUESTS

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
# What kubedock reports as its "Docker version": high enough for clients that check a minimum.
ENGINE_VERSION = "27.0.0"
# Sent on every answer, as Docker does; clients read Api-Version to pick their API version.
DOCKER_HEADERS = (
    ("Api-Version", API_VERSION),
    ("Ostype", "linux"),
    ("Docker-Experimental", "false"),
    ("Server", f"Docker/{__version__} (linux) kubedock"),
)
ROUTE_KEY = "kubedock.route"
VERSION_KEY = "kubedock.api_version"
_VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(?=/)")
# One line per answered request; shown from verbosity 2 on.
access_log = logging.getLogger("kubedock.access")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def front_door(routes: ASGIApp) -> ASGIApp:
    """Serve `/_ping` and `/version` (also under `/v1.NN`) at once, everything else by `routes`;
    count and log every answer."""
    return _measured(_strip_version_prefix(_answering_probes(routes)))


class StartGate:
    """The routes of a server that is still starting: a request waits at most `limit` seconds
    for `open` to hand them over, then gets a 503 naming the `step` the start is at.

    Quart's lifespan does nothing for the routes (they use no serving hooks and no background
    tasks), so the gate answers the listeners' lifespan itself: the routes do not exist yet when
    listening starts.
    """

    def __init__(self, limit: float, step: str = "starting") -> None:
        self.step = step
        self._limit = limit
        self._routes: ASGIApp | None = None
        self._opened = trio.Event()

    def open(self, routes: ASGIApp) -> None:
        self._routes = routes
        self._opened.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _confirm_lifespan(receive, send)
            return
        with trio.move_on_after(self._limit):
            await self._opened.wait()
        if self._routes is not None:
            await self._routes(scope, receive, send)
        elif scope["type"] == "http":
            await send_json_error(send, 503, (
                f"kubedock is not ready after {self._limit:g}s: still {self.step}; "
                "see its log"))
        else:  # a websocket: 1013 is "try again later"
            await send({"type": "websocket.close", "code": 1013})


async def _confirm_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _answering_probes(routes: ASGIApp) -> ASGIApp:
    version = _json_body(_version())

    async def answering(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if path == "/_ping" and method in ("GET", "HEAD"):
                # As Docker: "OK" to a GET, and a HEAD's length is 0.
                await _send(scope, send, b"OK" if method == "GET" else b"", b"text/plain",
                            _PING_HEADERS)
                return
            if path == "/version" and method == "GET":
                await _send(scope, send, version, b"application/json", ())
                return
        await routes(scope, receive, send)

    return answering


_PING_HEADERS = (
    (b"Cache-Control", b"no-cache, no-store, must-revalidate"),
    (b"Pragma", b"no-cache"),
    (b"Builder-Version", b"1"),
    (b"Swarm", b"inactive"),
)


async def _send(scope: Scope, send: Send, body: bytes, content_type: bytes,
                headers: tuple[tuple[bytes, bytes], ...]) -> None:
    scope[ROUTE_KEY] = scope["path"]
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"Content-Type", content_type), (b"Content-Length", str(len(body)).encode()),
        *headers, *((name.encode(), value.encode()) for name, value in DOCKER_HEADERS)]})
    await send({"type": "http.response.body", "body": body})


def _version() -> dict[str, Any]:
    return {
        "Platform": {"Name": "kubedock"},
        "Components": [{
            "Name": "Engine", "Version": ENGINE_VERSION,
            "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                        "Os": "linux", "Arch": _arch(), "KubedockVersion": __version__},
        }],
        "Version": ENGINE_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "kubedock",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": _arch(),
        "KernelVersion": platform.release(),
        "BuildTime": "",
    }


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _json_body(document: dict[str, Any]) -> bytes:
    # As the routes' JSON answers: compact, in insertion order, one line.
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def parse_version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


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


def _route(scope: Scope) -> str:
    route: str = scope.get(ROUTE_KEY, "unmatched")
    return route


def _strip_version_prefix(app: ASGIApp) -> ASGIApp:
    """Serve every route also under ``/v1.NN``; refuse versions below the minimum."""
    minimum = parse_version(MIN_API_VERSION)

    async def versioned(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            match = _VERSION_PREFIX.match(scope["path"])
            if match:
                version = (int(match.group(1)), int(match.group(2)))
                if version < minimum and scope["type"] == "http":
                    await send_json_error(send, 400, (
                        f"client version {version[0]}.{version[1]} is too old. "
                        f"Minimum supported API version is {MIN_API_VERSION}, "
                        "please upgrade your client to a newer version"
                    ))
                    return
                scope[VERSION_KEY] = version
                prefix = match.group(0)
                # In place: the measuring wrapper outside reads what routing wrote into it.
                scope["path"] = scope["path"][len(prefix):]
                scope["raw_path"] = scope.get("raw_path", b"")[len(prefix):]
        await app(scope, receive, send)

    return versioned


async def send_json_error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"message": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"api-version", API_VERSION.encode()),
    ]})
    await send({"type": "http.response.body", "body": body})
