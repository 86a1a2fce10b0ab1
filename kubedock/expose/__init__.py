"""Host ports for container ports (TCP and UDP): through the API server, or straight to the
pod IP."""

from ._portforward import serve_port_forward
from ._reverse_proxy import serve_reverse_proxy
from ._splice import splice
from ._udp import serve_udp_proxy, serve_udp_relay

__all__ = [
    "serve_port_forward",
    "serve_reverse_proxy",
    "serve_udp_proxy",
    "serve_udp_relay",
    "splice",
]
