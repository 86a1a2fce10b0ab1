"""The Docker Engine API: routes, request parsing and Docker-shaped answers.

This layer never talks to the cluster; it calls the engine. The listeners and the front door
load without the routes (Quart, the engine), which are imported on first use: the server
listens first and loads the rest meanwhile.
"""

from typing import TYPE_CHECKING, Any

from ._front import API_VERSION, MIN_API_VERSION, StartGate, front_door
from ._hijack import ServerTLS
from ._hijack import serve as serve_http

if TYPE_CHECKING:
    from ._app import create_app, docker_routes, load_routes
    from ._mounts import BindPolicy

__all__ = ["API_VERSION", "MIN_API_VERSION", "BindPolicy", "ServerTLS", "StartGate", "create_app",
           "docker_routes", "front_door", "load_routes", "serve_http"]

_LOADED_ON_USE = {"create_app": "_app", "docker_routes": "_app", "load_routes": "_app",
                  "BindPolicy": "_mounts"}


def __getattr__(name: str) -> Any:
    if name not in _LOADED_ON_USE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_LOADED_ON_USE[name]}", __name__), name)
