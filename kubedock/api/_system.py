"""System endpoints: info, events (`/_ping` and `/version` are answered by `_front`)."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import AsyncIterator, Callable

import trio
from quart import Blueprint, Response, jsonify, request

from ..engine import Event
from ._app import engine
from ._front import ENGINE_VERSION
from ._parse import check_filters, parse_filters, query_float

blueprint = Blueprint("system", __name__)

def _mem_total() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


@blueprint.route("/info", methods=["GET"])
async def info() -> Response:
    containers = engine().containers()
    count = {s: sum(c.status == s for c in containers) for s in ("running", "created", "exited")}
    settings = engine().settings
    return jsonify({
        "ID": f"kubedock-{settings.instance_id}",
        "Name": "kubedock",
        "Containers": len(containers),
        "ContainersRunning": count["running"],
        "ContainersPaused": 0,
        "ContainersStopped": count["exited"] + count["created"],
        "Images": len({image.id for image in engine().images.all()}),
        "Driver": "kubernetes",
        "DriverStatus": [["Namespace", settings.namespace]],
        "MemoryLimit": True,
        "SwapLimit": False,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "Debug": False,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "NEventsListener": 0,
        "KernelVersion": platform.release(),
        "OperatingSystem": "kubedock on Kubernetes",
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "NCPU": os.cpu_count() or 1,
        "MemTotal": _mem_total(),
        "DockerRootDir": "/var/lib/docker",
        "Labels": [f"{k}={v}" for k, v in settings.labels.items()],
        "ExperimentalBuild": False,
        "ServerVersion": ENGINE_VERSION,
        "Runtimes": {"runc": {"path": "runc"}},
        "DefaultRuntime": "runc",
        "Swarm": {"LocalNodeState": "inactive"},
        "LiveRestoreEnabled": False,
        "Isolation": "",
        "SecurityOptions": [],
        "Warnings": [],
    })


_EVENT_FILTERS = {"type", "event", "container", "image", "label"}


def _matches(event: Event, filters: dict[str, list[str]]) -> bool:
    attributes = event.attributes
    checks: dict[str, Callable[[str], bool]] = {
        "type": lambda v: event.type == v,
        "event": lambda v: event.action == v,
        "container": lambda v: event.type == "container"
        and (event.actor_id.startswith(v) or attributes.get("name") == v),
        "image": lambda v: attributes.get("image") == v,
    }
    for key, values in filters.items():
        if key == "label":
            for wanted in values:
                name, sep, value = wanted.partition("=")
                if attributes.get(name) is None or (sep and attributes.get(name) != value):
                    return False
        elif not any(checks[key](value) for value in values):
            return False
    return True


@blueprint.route("/events", methods=["GET"])
async def events() -> Response:
    since = query_float(request.args, "since")
    until = query_float(request.args, "until")
    filters = parse_filters(request.args.get("filters"))
    check_filters(filters, _EVENT_FILTERS)
    bus = engine().events

    def wanted(event: Event) -> bool:
        at = event.time_nano / 1e9
        return (since is None or at >= since) and (until is None or at <= until) and _matches(
            event, filters)

    async def stream() -> AsyncIterator[bytes]:
        with bus.subscribe() as live:
            past = bus.history() if since is not None else []
            # An empty first chunk commits the 200 so clients see the stream open at once.
            yield b""
            if past:
                for event in past:
                    if wanted(event):
                        yield json.dumps(event.to_json()).encode() + b"\n"
            deadline = until - time.time() if until is not None else float("inf")
            with trio.move_on_after(max(deadline, 0)):
                async for event in live:
                    if wanted(event):
                        yield json.dumps(event.to_json()).encode() + b"\n"

    return Response(stream(), content_type="application/json")
