"""Server configuration: one frozen value, and the one declaration of every setting.

Each field of `Config` that a user can set is declared once, with `setting(...)`: its default,
flags, environment variable, parser, help text, and the component whose settings it fills
(`to`). The command line (`_cli`), the environment reading, `--help`, the README's reference
and the components' settings (`Config.settings_for`) are all derived from these declarations.
To add a setting, add a field here; if a component takes it, name the component in `to` and
give that component's settings a field of that name.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import attrs

from . import __version__
from ._logging import LOG_FORMATS, LogFormat

if TYPE_CHECKING:
    from .engine import OwnRegistry

ExposeMode = Literal["pod-ip", "port-forward", "reverse-proxy"]
# How containers resolve each other's names (see engine.NameMode).
NetworkNames = Literal["dns", "services", "external"]
NETWORK_NAMES = ("dns", "services", "external")

# Which containers are supervised (see engine._supervision).
KeepExitedFiles = Literal["auto", "always", "never"]
KEEP_EXITED_FILES = ("auto", "always", "never")

# Whether archives may go straight to the pods' addresses (see engine._served_archive).
PodNetworkMode = Literal["auto", "never"]
POD_NETWORK_MODES = ("auto", "never")

PULL_POLICIES = ("ifnotpresent", "notpresent", "default", "always", "allways", "never")

# The components whose settings are filled from `Config` (see `Config.settings_for`):
# `kube.PodSettings`, the keyword arguments of `engine.Engine`, `engine.ReaperSettings`.
Component = Literal["pods", "engine", "reaper"]

_SETTING = "kubedock.setting"
_NONE: Mapping[str, str] = MappingProxyType({})


@attrs.frozen
class Setting:
    """How a user sets one `Config` field.

    A field whose default is False is a switch (a flag without a value; its variable is read
    as Go's strconv.ParseBool reads it). With `repeat`, the flag may be given again and again,
    the variable holds comma-separated items, or, when it ends in ``<KEY>``, each variable with
    that prefix is one ``key=value`` item; into a mapping, flags win over the environment per
    key, otherwise given flags replace the environment's items. `moot`: an option of the Go
    kubedock that means nothing here, accepted and reported with this reason.
    """

    flags: tuple[str, ...]
    help: str = ""
    env: str = ""
    parse: Callable[[str], Any] = str
    to: tuple[str, ...] = ()  # "component" or "component.name", when the name differs there
    repeat: bool = False
    metavar: str | None = None
    moot: str = ""

    @property
    def env_prefix(self) -> str:
        return self.env.removesuffix("<KEY>") if self.env.endswith("<KEY>") else ""


def setting(default: Any, *flags: str, help: str = "", env: str = "",
            parse: Callable[[str], Any] = str, to: tuple[str, ...] | str = (),
            repeat: bool = False, metavar: str | None = None, moot: str = "") -> Any:
    """A `Config` field that users set; see `Setting`."""
    declared = Setting(flags, help, env, parse, (to,) if isinstance(to, str) else to, repeat,
                       metavar, moot)
    return attrs.field(default=default, metadata={_SETTING: declared})


def settings() -> list[tuple[attrs.Attribute[Any], Setting]]:
    """Every user setting of `Config`, in the order `--help` lists them."""
    return [(field, field.metadata[_SETTING]) for field in attrs.fields(Config)
            if _SETTING in field.metadata]


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _one_of(choices: tuple[str, ...], *, fold: bool = False) -> Callable[[str], str]:
    def choice(text: str) -> str:
        value = text.lower() if fold else text
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return choice


def parse_listen_addr(text: str) -> str:
    split_host_port(text)
    return text


def _file(text: str) -> str:
    if not os.path.isfile(text):
        raise ValueError("no such file")
    return text


def _kubedock_url(text: str) -> str:
    from .podside import parse_upstream

    parse_upstream(text)
    return text


def _access_mode(text: str) -> str:
    from .kube import ACCESS_MODES

    return _one_of(ACCESS_MODES)(text)


_QUANTITY = re.compile(r"^\d+(\.\d+)?([KMGTPE]i|[kMGTPE])?$")


def _quantity(text: str) -> str:
    if not _QUANTITY.match(text):
        raise ValueError("want a Kubernetes quantity such as 1Gi or 500Mi")
    return text


_BYTES = re.compile(r"^(\d+)([KMGT]i|[kMGT])?$")
_BYTE_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
               "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def byte_size(text: str) -> int:
    """A size in bytes written as a Kubernetes quantity (``500Mi``, ``2G``, ``1024``)."""
    match = _BYTES.match(text.strip())
    if match is None:
        raise ValueError("want a size such as 4Gi, 500Mi or a number of bytes")
    return int(match.group(1)) * _BYTE_UNITS[match.group(2) or ""]


def _registry_mirror(text: str) -> tuple[str, str]:
    registry, url = key_value(text.strip())
    if not url.startswith(("http://", "https://")):
        raise ValueError("want REGISTRY=http(s)://host[:port]")
    return registry, url


def _own_registry(text: str) -> OwnRegistry:
    from .engine import parse_own_registry

    return parse_own_registry(text)


def _names(text: str) -> tuple[str, ...]:
    return tuple(filter(None, (name.strip() for name in text.split(","))))


def _deadline(text: str) -> int | None:
    seconds = int(text)
    return None if seconds < 0 else seconds


_INSTANCE_ID = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _instance_id(text: str) -> str:
    if not _INSTANCE_ID.match(text):
        raise ValueError("want lower-case letters, digits and '-', at most 63")
    return text


def _absolute_path(text: str) -> str:
    return os.path.abspath(text.strip())


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError("want key=value")
    return key, value


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


_GO_POLLING = "container states come from a pod watch, not from rate-limited polling"


@attrs.frozen
class Config:
    # Loopback by default: the API has no authentication, and anyone who reaches it can run pods
    # with kubedock's service account, so exposing it is a decision the user makes explicitly.
    listen_addr: str | None = setting(
        "127.0.0.1:2475", "--listen-addr", env="SERVER_LISTEN_ADDR", parse=parse_listen_addr,
        help="TCP address of the Docker API (default 127.0.0.1:2475; an empty host means all "
        "addresses)")
    unix_socket: str | None = setting(
        None, "--unix-socket", help="also serve the Docker API on this unix socket")
    namespace: str | None = setting(
        None, "-n", "--namespace", env="NAMESPACE",
        help="namespace for every object (default: in-cluster namespace, else the kubeconfig "
        "context's, else 'default')")
    kubeconfig: str | None = setting(
        None, "--kubeconfig", env="KUBECONFIG",
        help="kubeconfig file (default: ~/.kube/config, else the in-cluster config)")
    timeout: float = setting(
        60.0, "-t", "--timeout", env="TIME_OUT", parse=parse_duration, to="engine.start_timeout",
        help="how long a container start may take, and a request may wait for kubedock's own "
        "start (Go duration, default 1m)")
    # How long a start may stay held up by what can clear by itself (a failing image pull, no
    # node for the pod) before it fails: short enough for CI, long enough for a rate-limited
    # registry or an autoscaler adding a node.
    fail_fast_after: float = setting(
        30.0, "--fail-fast-after", env="FAIL_FAST_AFTER", parse=parse_duration, to="engine",
        help="fail a start once its image pull has kept failing, or its pod has found no node, "
        "for this long (Go duration, default 30s; 0: at the first failure)")
    pull_policy: str | None = setting(
        "ifnotpresent", "--pull-policy", env="PULL_POLICY", to="pods",
        parse=_one_of(PULL_POLICIES, fold=True),
        help="image pull policy: " + ", ".join(PULL_POLICIES) + " (default ifnotpresent)")
    service_account: str | None = setting(
        None, "--service-account", env="SERVICE_ACCOUNT", to="pods",
        help="service account of the pods")
    image_pull_secrets: tuple[str, ...] = setting(
        (), "--image-pull-secrets", env="IMAGE_PULL_SECRETS", parse=_names, to="pods",
        help="comma-separated names of image pull secrets put on every pod (kubedock's "
             "registry client uses them too)")
    request_cpu: str | None = setting(
        None, "--request-cpu", env="K8S_REQUEST_CPU", to="pods",
        help="cpu request[,limit] of pods")
    request_memory: str | None = setting(
        None, "--request-memory", env="K8S_REQUEST_MEMORY", to="pods",
        help="memory request[,limit] of pods")
    request_ephemeral_storage: str | None = setting(
        None, "--request-ephemeral-storage", env="K8S_REQUEST_EPHEMERAL_STORAGE", to="pods",
        help="ephemeral storage request[,limit] of pods")
    node_selector: Mapping[str, str] = setting(
        _NONE, "--node-selector", env="K8S_NODE_SELECTOR", to="pods",
        parse=parse_key_values, help="node selector of pods, k1=v1[,k2=v2]")
    runas_user: str | None = setting(
        None, "--runas-user", env="K8S_RUNAS_USER", to="pods", help="uid the pods run as")
    active_deadline_seconds: int | None = setting(
        None, "--active-deadline-seconds", env="K8S_ACTIVE_DEADLINE_SECONDS", parse=_deadline,
        to="pods", help="activeDeadlineSeconds of pods (negative: none)")
    pod_template: str | None = setting(
        None, "--pod-template", env="POD_TEMPLATE",
        help="YAML or JSON file with a Pod used as the base of every pod")
    pod_name_prefix: str = setting(
        "kubedock", "--pod-name-prefix", env="POD_NAME_PREFIX", to="pods",
        help="prefix of pod names (default kubedock)")
    kube_api_qps: float | None = setting(
        None, "--kube-api-qps", env="K8S_QPS", parse=float,
        help="Kubernetes API requests per second")
    kube_api_burst: int | None = setting(
        None, "--kube-api-burst", env="K8S_BURST", parse=nonnegative_int,
        help="Kubernetes API request burst")
    # kubedock's DNS role by default: names resolve per network, so instances sharing a
    # namespace never see each other's containers, and no Service per alias is needed.
    network_names: NetworkNames = setting(
        "dns", "--network-names", env="NETWORK_NAMES", parse=_one_of(NETWORK_NAMES),
        to="engine.names",
        help="how containers resolve each other's names and aliases: 'dns' (kubedock's DNS, "
        "per network; default), 'services' (a Service per name, namespace-wide) or 'external' "
        "(pod annotations only, for an installed kubedock-dns)")
    dns_image: str | None = setting(
        None, "--dns-image", env="DNS_IMAGE",
        help="image of the DNS role (default kubedock/kubedock:<version>)")
    cluster_domain: str = setting(
        "cluster.local", "--cluster-domain", env="CLUSTER_DOMAIN",
        help="the cluster's DNS domain, for the pods' search list (default cluster.local)")
    verbosity: int = setting(
        1, "-v", "--verbosity", env="VERBOSITY", parse=nonnegative_int,
        help="log verbosity (default 1)")
    log_format: LogFormat = setting(
        "text", "--log-format", env="LOG_FORMAT", parse=_one_of(LOG_FORMATS),
        help="log lines as 'text' (default) or 'json' (one object a line)")
    metrics_addr: str | None = setting(
        None, "--metrics-addr", env="METRICS_ADDR", parse=parse_listen_addr,
        help="serve Prometheus metrics at http://ADDR/metrics (host:port; default: not served)")
    # Ownership and cleanup (all durations in seconds).
    shutdown_timeout: float = setting(
        30.0, "--shutdown-timeout", env="SHUTDOWN_TIMEOUT", parse=parse_duration,
        help="how long cleanup at exit may take (default 30s)")
    reapmax: float = setting(
        3600.0, "-r", "--reapmax", env="REAPER_REAPMAX", parse=parse_duration, to="reaper",
        help="remove this instance's containers older than this (default 60m; 0: never)")
    reaper_interval: float = setting(
        60.0, "--reaper-interval", env="REAPER_INTERVAL", parse=parse_duration,
        to="reaper.interval", help="how often the reaper runs (default 1m)")
    # leaseDurationSeconds of the instance's Lease, also the reaper's grace.
    heartbeat: float = setting(
        30.0, "--heartbeat", env="HEARTBEAT", parse=parse_duration, to="reaper.grace",
        help="lease duration of this instance's heartbeat; another instance's objects are "
        "deleted once its heartbeat has been expired this long again (default 30s)")
    instance_id: str | None = setting(
        None, "--instance-id", env="KUBEDOCK_INSTANCE_ID", parse=_instance_id,
        help="this instance's identity, the kubedock.id label of its objects; started again "
        "with the same one, kubedock takes its containers over once the heartbeat of the one "
        "before has expired (default: a new random one, whose objects the reaper removes)")
    init_image: str = setting(
        f"kubedock/kubedock:{__version__}", "--initimage", env="INIT_IMAGE", to="pods",
        help="image of the init container that copies files into pods, and of the Docker "
        "socket sidecar unless --dindimage; its entrypoint, at /kubedock, is kubedock "
        "(default: kubedock's own, kubedock/kubedock:<version>)")
    dind_image: str | None = setting(
        None, "--dindimage", env="DIND_IMAGE",
        help="image of the sidecar that gives containers binding /var/run/docker.sock a "
        "Docker API (default: --initimage)")
    kubedock_url: str | None = setting(
        None, "--kubedock-url", env="KUBEDOCK_URL", parse=_kubedock_url,
        help="http://host:port at which pods reach this API, for containers that bind "
        "/var/run/docker.sock (default: the --listen-addr address unless it is loopback; a "
        "wildcard address stands for the address this host's name resolves to; https with "
        "--tls-enable)")
    tls_cert_file: str | None = setting(
        None, "--tls-cert-file", env="SERVER_TLS_CERT_FILE", parse=_file,
        help="with --tls-enable: the server's certificate (PEM)")
    tls_key_file: str | None = setting(
        None, "--tls-key-file", env="SERVER_TLS_KEY_FILE", parse=_file,
        help="with --tls-enable: the server's private key (PEM)")
    tls_ca_file: str | None = setting(
        None, "--tls-ca-file", env="SERVER_TLS_CA_FILE", parse=_file,
        help="with --tls-enable: CA certificates (PEM) of clients; a client must present a "
        "certificate one of them signed (mutual TLS)")
    lock_timeout: float = setting(
        900.0, "--lock-timeout", env="LOCK_TIMEOUT", parse=parse_duration,
        help="with --lock: give up (exit 1) if the lock is not acquired in this time "
        "(default 15m)")
    port_forward: bool = setting(
        False, "--port-forward",
        help="reach exposed ports through Kubernetes port-forward streams on kubedock's host")
    reverse_proxy: bool = setting(
        False, "--reverse-proxy",
        help="reach exposed ports through TCP proxies to the pod IPs (kubedock in the cluster; "
        "with --port-forward, port-forward wins, as in the Go kubedock)")
    prune_start: bool = setting(
        False, "-P", "--prune-start",
        help="at start, delete the objects of kubedock instances that are gone")
    prune_start_all: bool = setting(
        False, "--prune-start-all",
        help="at start, delete every kubedock object in the namespace, live instances' too")
    # Read by the command line only: it implies --network-names external.
    disable_services: bool = setting(
        False, "--disable-services",
        help="create no Service per network alias (Go kubedock's flag; implies "
        "--network-names external unless that is given)")
    disable_dind: bool = setting(
        False, "--disable-dind", env="DISABLE_DIND",
        help="refuse binds of /var/run/docker.sock instead of serving kubedock's API in them "
        "through a sidecar")
    pre_pull: bool = setting(
        False, "--pre-pull", env="PRE_PULL",
        help="have a docker pull also pull the image onto the node the pods go to (a short-lived "
        "pod of the image, deleted once the node has it), answering when it does")
    ignore_container_memory: bool = setting(
        False, "--ignore-container-memory", to="pods",
        help="do not turn a container's memory limit (HostConfig.Memory) into a pod limit")
    # The Go kubedock's options that mean nothing here: accepted, so that its deployments keep
    # working, and reported at start (see `notes`).
    poll_rate: str | None = setting(None, "--poll-rate", env="POLL_RATE", moot=_GO_POLLING)
    poll_burst: str | None = setting(None, "--poll-burst", env="POLL_BURST", moot=_GO_POLLING)
    pre_archive: bool = setting(
        False, "--pre-archive",
        moot="archives copied into a container before its start are always kept and written "
        "into the pod by its init container, whatever their size or number of files")
    inspector: bool = setting(
        False, "-i", "--inspector",
        moot="image configurations always come from the registries")
    # TLS on the TCP listener (the unix socket stays plain: its file mode guards it); with a
    # client CA, only clients presenting a certificate it signed get past the handshake.
    tls_enable: bool = setting(
        False, "--tls-enable", env="SERVER_TLS_ENABLE",
        help="serve the TCP listener over TLS (the unix socket stays plain)")
    lock: bool = setting(
        False, "--lock", help="serve only while holding the namespace's Lease kubedock-lock")
    # Registry → base URL kubedock asks instead (docker.io=http://127.0.0.1:5000).
    registry_mirrors: Mapping[str, str] = setting(
        _NONE, "--registry-mirror", env="REGISTRY_MIRRORS", parse=_registry_mirror, repeat=True,
        metavar="REGISTRY=URL",
        help="ask URL for REGISTRY's images, e.g. docker.io=http://127.0.0.1:5000 (repeatable; "
        "comma-separated in the variable)")
    # Docker keeps what it builds and loads on its host; kubedock keeps it here, for the nodes.
    own_registry: OwnRegistry | None = setting(
        None, "--registry", env="REGISTRY", parse=_own_registry,
        metavar="[http://]HOST[:PORT][/PREFIX]",
        help="registry where kubedock keeps the images it builds and loads, under names of its "
        "own below PREFIX (clients see theirs), for the nodes to pull; http:// for plain http "
        "off loopback (default: none, they go to the registry their name says)")
    # How long one registry question (manifest, config) may take before a pull fails.
    registry_timeout: float = setting(
        30.0, "--registry-timeout", env="REGISTRY_TIMEOUT", parse=parse_duration,
        help="how long a pull may wait for the registry's answers (Go duration, default 30s)")
    # Bind sources must lie in one of these trees (none given: anywhere not off limits).
    bind_roots: tuple[str, ...] = setting(
        (), "--bind-root", env="BIND_ROOTS", parse=_absolute_path, repeat=True, metavar="DIR",
        help="bind sources must lie in this tree (repeatable; comma-separated in the variable; "
        "default: anywhere but the kernel's trees and kubedock's credentials)")
    labels: Mapping[str, str] = setting(
        _NONE, "--label", env="K8S_LABEL_<KEY>", parse=key_value, repeat=True,
        metavar="KEY=VALUE", to="pods", help="extra label on every object")
    annotations: Mapping[str, str] = setting(
        _NONE, "--annotation", env="K8S_ANNOTATION_<KEY>", parse=key_value,
        repeat=True, metavar="KEY=VALUE", to="pods", help="extra annotation on every object")
    # Named volumes are PersistentVolumeClaims of this class (None: the cluster's default),
    # access mode and size; ReadWriteOnce lets every pod of one node share a volume.
    volume_storage_class: str | None = setting(
        None, "--volume-storage-class", env="VOLUME_STORAGE_CLASS",
        help="storage class of the PersistentVolumeClaims of named volumes (default: the "
        "cluster's default class)")
    volume_access_mode: str = setting(
        "ReadWriteOnce", "--volume-access-mode", env="VOLUME_ACCESS_MODE",
        parse=_access_mode,
        help="access mode of named volumes' claims (default ReadWriteOnce: shared by the pods "
        "of one node; ReadWriteMany where pods spread over nodes and the storage class offers "
        "it)")
    volume_size: str = setting(
        "1Gi", "--volume-size", env="VOLUME_SIZE", parse=_quantity,
        help="storage each named volume's claim requests (default 1Gi)")
    build_cache_size: int = setting(
        4 * 2**30, "--build-cache-size", env="BUILD_CACHE_SIZE", parse=byte_size,
        help="most disk space docker build's layer cache keeps between builds, least recently "
        "used layers going first (default 4Gi)")
    # Which containers run under kubedock's supervisor, whose pod outlives the program so that
    # its files stay readable (docker cp) and its read-write binds are written back.
    keep_exited_files: KeepExitedFiles = setting(
        "always", "--keep-exited-files", env="KEEP_EXITED_FILES",
        parse=_one_of(KEEP_EXITED_FILES), to="engine",
        help="keep a container's files readable after its process ends, and write its "
        "read-write binds back to their sources: 'always' (default), 'auto' (containers "
        "with binds, copies before start or volumes of the request's own) or 'never'")
    pod_network: PodNetworkMode = setting(
        "auto", "--pod-network", env="POD_NETWORK", parse=_one_of(POD_NETWORK_MODES),
        to="engine",
        help="connect to kubedock's program in a pod at the pod's address to copy archives: "
        "'auto' (where it answers; a failure keeps kubedock to port-forwards for 10 "
        "minutes; default) or 'never' (port-forwards, else the exec session)")

    def __attrs_post_init__(self) -> None:
        if self.tls_enable and not (self.tls_cert_file and self.tls_key_file):
            raise ValueError("--tls-enable needs --tls-cert-file and --tls-key-file")
        if not self.tls_enable and (self.tls_cert_file or self.tls_key_file or self.tls_ca_file):
            raise ValueError("TLS files are given but TLS is off: add --tls-enable")

    def settings_for(self, component: Component) -> dict[str, Any]:
        """The keyword arguments of `component`'s settings that come from this configuration."""
        values = {}
        for field, declared in settings():
            for target in declared.to:
                name, _, alias = target.partition(".")
                if name == component:
                    values[alias or field.name] = getattr(self, field.name)
        return values

    @property
    def expose(self) -> ExposeMode:
        if self.port_forward:
            return "port-forward"
        return "reverse-proxy" if self.reverse_proxy else "pod-ip"

    @property
    def notes(self) -> tuple[str, ...]:
        """Why some given options change nothing; logged at start."""
        notes = []
        if self.port_forward and self.reverse_proxy:
            notes.append("--reverse-proxy is ignored: --port-forward is given too")
        notes += [f"{declared.flags[-1]} changes nothing: {declared.moot}"
                  for field, declared in settings()
                  if declared.moot and getattr(self, field.name) not in (None, False)]
        return tuple(notes)

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
