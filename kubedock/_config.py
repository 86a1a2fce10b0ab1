"""Server configuration: one frozen value, the single source of defaults."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from typing import Literal

import attrs

from . import __version__
from ._logging import LogFormat

ExposeMode = Literal["pod-ip", "port-forward", "reverse-proxy"]
# How containers resolve each other's names (see engine.NameMode).
NetworkNames = Literal["dns", "services", "external"]
NETWORK_NAMES = ("dns", "services", "external")

PULL_POLICIES = ("ifnotpresent", "notpresent", "default", "always", "allways", "never")


@attrs.frozen
class Config:
    # Loopback by default: the API has no authentication, and anyone who reaches it can run pods
    # with kubedock's service account, so exposing it is a decision the user makes explicitly.
    listen_addr: str | None = "127.0.0.1:2475"
    unix_socket: str | None = None
    namespace: str | None = None
    kubeconfig: str | None = None
    timeout: float = 60.0
    # How long a start may stay held up by what can clear by itself (a failing image pull, no
    # node for the pod) before it fails: short enough for CI, long enough for a rate-limited
    # registry or an autoscaler adding a node.
    fail_fast_after: float = 30.0
    expose: ExposeMode = "pod-ip"
    pull_policy: str | None = "ifnotpresent"
    service_account: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    request_cpu: str | None = None
    request_memory: str | None = None
    request_ephemeral_storage: str | None = None
    node_selector: Mapping[str, str] = attrs.field(factory=dict)
    runas_user: str | None = None
    active_deadline_seconds: int | None = None
    pod_template: str | None = None
    pod_name_prefix: str = "kubedock"
    labels: Mapping[str, str] = attrs.field(factory=dict)
    annotations: Mapping[str, str] = attrs.field(factory=dict)
    kube_api_qps: float | None = None
    kube_api_burst: int | None = None
    verbosity: int = 1
    log_format: LogFormat = "text"
    metrics_addr: str | None = None  # host:port of /metrics; none by default
    # kubedock's DNS role by default: names resolve per network, so instances sharing a
    # namespace never see each other's containers, and no Service per alias is needed.
    network_names: NetworkNames = "dns"
    dns_image: str | None = None  # default: kubedock/kubedock:<this version>
    cluster_domain: str = "cluster.local"
    # Ownership and cleanup (all durations in seconds).
    shutdown_timeout: float = 30.0
    reapmax: float = 3600.0  # 0 disables removing this instance's old containers
    reaper_interval: float = 60.0
    heartbeat: float = 30.0  # leaseDurationSeconds of the instance's Lease, also the grace
    prune_start: bool = False
    prune_start_all: bool = False
    lock: bool = False
    lock_timeout: float = 900.0
    init_image: str = f"kubedock/kubedock:{__version__}"
    dind_image: str | None = None  # default: init_image
    disable_dind: bool = False
    ignore_container_memory: bool = False
    kubedock_url: str | None = None
    # Why some given options change nothing (the Go kubedock's moot flags); logged at start.
    notes: tuple[str, ...] = ()
    # TLS on the TCP listener (the unix socket stays plain: its file mode guards it); with a
    # client CA, only clients presenting a certificate it signed get past the handshake.
    tls_enable: bool = False
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_ca_file: str | None = None
    # Registry → base URL kubedock asks instead (docker.io=http://127.0.0.1:5000).
    registry_mirrors: Mapping[str, str] = attrs.field(factory=dict)
    # How long one registry question (manifest, config) may take before a pull fails.
    registry_timeout: float = 30.0
    # Bind sources must lie in one of these trees (none given: anywhere not off limits).
    bind_roots: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.tls_enable and not (self.tls_cert_file and self.tls_key_file):
            raise ValueError("--tls-enable needs --tls-cert-file and --tls-key-file")
        if not self.tls_enable and (self.tls_cert_file or self.tls_key_file or self.tls_ca_file):
            raise ValueError("TLS files are given but TLS is off: add --tls-enable")

    @property
    def binds(self) -> list[str]:
        """The listener addresses in hypercorn's bind syntax."""
        binds = []
        if self.listen_addr:
            host, port = split_host_port(self.listen_addr)
            binds.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        if self.unix_socket:
            binds.append(f"unix:{self.unix_socket}")
        return binds

    @property
    def own_secrets(self) -> list[tuple[str, str]]:
        """kubedock's own credentials on its filesystem, with what they are: never bound."""
        kubeconfigs = (self.kubeconfig or "~/.kube/config").split(os.pathsep)
        files = [(os.path.expanduser(path), "kubedock's kubeconfig") for path in kubeconfigs]
        files += [(path, f"kubedock's TLS {what}") for path, what in [
            (self.tls_key_file, "key"), (self.tls_cert_file, "certificate"),
            (self.tls_ca_file, "client CA"),
        ] if path]
        return files

    def url_for_pods(self, resolve_own_name: Callable[[], str]) -> str | None:
        """Where pods reach this API: `kubedock_url`, else the TCP listener unless it is loopback;
        an https URL when the API serves TLS.

        A wildcard listener stands for the address `resolve_own_name` gives (in a pod, the
        hostname resolves to the pod IP). None when no such address is known.
        """
        scheme = "https" if self.tls_enable else "http"
        if self.kubedock_url:
            return f"{scheme}://{self.kubedock_url.partition('://')[2] or self.kubedock_url}"
        if not self.listen_addr:
            return None
        host, port = split_host_port(self.listen_addr)
        if port == 0:
            return None
        wildcard = _ip(host)
        if wildcard is not None and wildcard.is_unspecified:
            try:
                host = resolve_own_name()
            except OSError:
                return None
        address = _ip(host)
        if host == "localhost" or (address is not None and address.is_loopback):
            return None
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    @property
    def expose_host(self) -> str:
        """Where exposed container ports listen on kubedock's side: the API's own host."""
        if not self.listen_addr:
            return "127.0.0.1"
        return split_host_port(self.listen_addr)[0]


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def split_host_port(address: str) -> tuple[str, int]:
    """Split ``host:port`` the way Go does: an empty host means every IPv4 address."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"invalid listen address {address!r}: want host:port")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float:
    """Parse a Go-style duration (``90s``, ``1m``, ``1h30m``) or plain seconds, into seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}: want e.g. 90s, 1m or 1h30m")
    return total


def parse_key_values(text: str) -> dict[str, str]:
    """Parse ``k1=v1,k2=v2`` (node selectors)."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"invalid key=value pair {item!r}")
        pairs[key] = value
    return pairs
