"""The DNS role: names of the containers of a Docker network, seen from that network only."""

from ._deploy import default_image, ensure_dns, pod_dns_config
from ._message import MalformedMessage, Query, Question, parse_query
from ._resolve import resolve, settled
from ._role import run as run_dns
from ._server import Views, serve_dns
from ._view import PodEntry, View, pod_entry

__all__ = [
    "MalformedMessage",
    "PodEntry",
    "Query",
    "Question",
    "View",
    "Views",
    "default_image",
    "ensure_dns",
    "parse_query",
    "pod_dns_config",
    "pod_entry",
    "resolve",
    "run_dns",
    "serve_dns",
    "settled",
]
