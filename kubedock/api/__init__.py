"""The Docker Engine API: routes, request parsing and Docker-shaped answers.

This layer never talks to the cluster; it calls the engine.
"""

from ._app import API_VERSION, MIN_API_VERSION, create_app
from ._hijack import ServerTLS
from ._hijack import serve as serve_http
from ._mounts import BindPolicy

__all__ = ["API_VERSION", "MIN_API_VERSION", "BindPolicy", "ServerTLS", "create_app", "serve_http"]
