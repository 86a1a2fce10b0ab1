"""Command line: flags and environment variables → :class:`Config`; subcommands.

Flag and variable names follow the Go kubedock so that existing deployments keep working.
A flag given on the command line wins over its environment variable, which wins over the default.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._config import (
    NETWORK_NAMES,
    PULL_POLICIES,
    Config,
    parse_duration,
    parse_key_values,
    split_host_port,
)
from ._logging import LOG_FORMATS


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _pull_policy(text: str) -> str:
    if text.lower() not in PULL_POLICIES:
        raise ValueError(f"must be one of {', '.join(PULL_POLICIES)}")
    return text.lower()


def _network_names(text: str) -> str:
    if text not in NETWORK_NAMES:
        raise ValueError(f"must be one of {', '.join(NETWORK_NAMES)}")
    return text


def _log_format(text: str) -> str:
    if text not in LOG_FORMATS:
        raise ValueError(f"must be one of {', '.join(LOG_FORMATS)}")
    return text


def _dns_upstream(text: str) -> tuple[str, int]:
    if text.count(":") == 1 or text.startswith("["):
        return split_host_port(text)
    return text, 53  # a name, an IPv4 address or a bare IPv6 address


def _listen_addr(text: str) -> str:
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


def _argparse_type(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def checked(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None

    checked.__name__ = convert.__name__.lstrip("_")
    return checked


# (flags, config field, environment variable, converter, help)
_SERVER_OPTIONS: list[tuple[tuple[str, ...], str, str | None, Callable[[str], Any], str]] = [
    (("--listen-addr",), "listen_addr", "SERVER_LISTEN_ADDR", _listen_addr,
     "TCP address of the Docker API (default 127.0.0.1:2475; an empty host means all addresses)"),
    (("--unix-socket",), "unix_socket", None, str,
     "also serve the Docker API on this unix socket"),
    (("-n", "--namespace"), "namespace", "NAMESPACE", str,
     "namespace for every object (default: in-cluster namespace, else the kubeconfig "
     "context's, else 'default')"),
    (("--kubeconfig",), "kubeconfig", "KUBECONFIG", str,
     "kubeconfig file (default: ~/.kube/config, else the in-cluster config)"),
    (("-t", "--timeout"), "timeout", "TIME_OUT", parse_duration,
     "how long a container start may take (Go duration, default 1m)"),
    (("--fail-fast-after",), "fail_fast_after", "FAIL_FAST_AFTER", parse_duration,
     "fail a start once its image pull has kept failing, or its pod has found no node, for "
     "this long (Go duration, default 30s; 0: at the first failure)"),
    (("--registry-timeout",), "registry_timeout", "REGISTRY_TIMEOUT", parse_duration,
     "how long a pull may wait for the registry's answers (Go duration, default 30s)"),
    (("--pull-policy",), "pull_policy", "PULL_POLICY", _pull_policy,
     "image pull policy: " + ", ".join(PULL_POLICIES) + " (default ifnotpresent)"),
    (("--service-account",), "service_account", "SERVICE_ACCOUNT", str,
     "service account of the pods"),
    (("--image-pull-secrets",), "image_pull_secrets", "IMAGE_PULL_SECRETS",
     lambda text: tuple(filter(None, (s.strip() for s in text.split(",")))),
     "comma-separated image pull secret names"),
    (("--request-cpu",), "request_cpu", "K8S_REQUEST_CPU", str, "cpu request[,limit] of pods"),
    (("--request-memory",), "request_memory", "K8S_REQUEST_MEMORY", str,
     "memory request[,limit] of pods"),
    (("--request-ephemeral-storage",), "request_ephemeral_storage",
     "K8S_REQUEST_EPHEMERAL_STORAGE", str, "ephemeral storage request[,limit] of pods"),
    (("--node-selector",), "node_selector", "K8S_NODE_SELECTOR", parse_key_values,
     "node selector of pods, k1=v1[,k2=v2]"),
    (("--runas-user",), "runas_user", "K8S_RUNAS_USER", str, "uid the pods run as"),
    (("--active-deadline-seconds",), "active_deadline_seconds", "K8S_ACTIVE_DEADLINE_SECONDS",
     int, "activeDeadlineSeconds of pods (negative: none)"),
    (("--pod-template",), "pod_template", "POD_TEMPLATE", str,
     "YAML or JSON file with a Pod used as the base of every pod"),
    (("--pod-name-prefix",), "pod_name_prefix", "POD_NAME_PREFIX", str,
     "prefix of pod names (default kubedock)"),
    (("--kube-api-qps",), "kube_api_qps", "K8S_QPS", float, "Kubernetes API requests per second"),
    (("--kube-api-burst",), "kube_api_burst", "K8S_BURST", _nonnegative_int,
     "Kubernetes API request burst"),
    (("--network-names",), "network_names", "NETWORK_NAMES", _network_names,
     "how containers resolve each other's names and aliases: 'dns' (kubedock's DNS, per "
     "network; default), 'services' (a Service per name, namespace-wide) or 'external' "
     "(pod annotations only, for an installed kubedock-dns)"),
    (("--dns-image",), "dns_image", "DNS_IMAGE", str,
     "image of the DNS role (default kubedock/kubedock:<version>)"),
    (("--cluster-domain",), "cluster_domain", "CLUSTER_DOMAIN", str,
     "the cluster's DNS domain, for the pods' search list (default cluster.local)"),
    (("-v", "--verbosity"), "verbosity", "VERBOSITY", _nonnegative_int,
     "log verbosity (default 1)"),
    (("--log-format",), "log_format", "LOG_FORMAT", _log_format,
     "log lines as 'text' (default) or 'json' (one object a line)"),
    (("--metrics-addr",), "metrics_addr", "METRICS_ADDR", _listen_addr,
     "serve Prometheus metrics at http://ADDR/metrics (host:port; default: not served)"),
    (("--shutdown-timeout",), "shutdown_timeout", "SHUTDOWN_TIMEOUT", parse_duration,
     "how long cleanup at exit may take (default 30s)"),
    (("-r", "--reapmax"), "reapmax", "REAPER_REAPMAX", parse_duration,
     "remove this instance's containers older than this (default 60m; 0: never)"),
    (("--reaper-interval",), "reaper_interval", "REAPER_INTERVAL", parse_duration,
     "how often the reaper runs (default 1m)"),
    (("--heartbeat",), "heartbeat", "HEARTBEAT", parse_duration,
     "lease duration of this instance's heartbeat; another instance's objects are deleted "
     "once its heartbeat has been expired this long again (default 30s)"),
    (("--initimage",), "init_image", "INIT_IMAGE", str,
     "image of the init container that copies files into pods, and of the Docker socket "
     "sidecar unless --dindimage; its entrypoint, at /kubedock, is kubedock (default: "
     "kubedock's own, kubedock/kubedock:<version>)"),
    (("--dindimage",), "dind_image", "DIND_IMAGE", str,
     "image of the sidecar that gives containers binding /var/run/docker.sock a Docker API "
     "(default: --initimage)"),
    (("--kubedock-url",), "kubedock_url", "KUBEDOCK_URL", _kubedock_url,
     "http://host:port at which pods reach this API, for containers that bind "
     "/var/run/docker.sock (default: the --listen-addr address unless it is loopback; a "
     "wildcard address stands for the address this host's name resolves to; https with "
     "--tls-enable)"),
    (("--tls-cert-file",), "tls_cert_file", "SERVER_TLS_CERT_FILE", _file,
     "with --tls-enable: the server's certificate (PEM)"),
    (("--tls-key-file",), "tls_key_file", "SERVER_TLS_KEY_FILE", _file,
     "with --tls-enable: the server's private key (PEM)"),
    (("--tls-ca-file",), "tls_ca_file", "SERVER_TLS_CA_FILE", _file,
     "with --tls-enable: CA certificates (PEM) of clients; a client must present a "
     "certificate one of them signed (mutual TLS)"),
    (("--lock-timeout",), "lock_timeout", "LOCK_TIMEOUT", parse_duration,
     "with --lock: give up (exit 1) if the lock is not acquired in this time (default 15m)"),
]

# The Go kubedock's options that mean nothing here: accepted, so that its deployments keep
# working, and logged at start with the reason. (flags, environment variable, takes a value, why)
_MOOT_OPTIONS: list[tuple[tuple[str, ...], str | None, bool, str]] = [
    (("--poll-rate",), "POLL_RATE", True,
     "container states come from a pod watch, not from rate-limited polling"),
    (("--poll-burst",), "POLL_BURST", True,
     "container states come from a pod watch, not from rate-limited polling"),
    (("--pre-archive",), None, False,
     "archives copied into a container before its start are always kept and written into "
     "the pod by its init container, whatever their size or number of files"),
    (("-i", "--inspector"), None, False,
     "image configurations always come from the registries"),
]


def _moot_dest(flags: tuple[str, ...]) -> str:
    return "moot_" + flags[-1].lstrip("-").replace("-", "_")


def _prefixed_env(environ: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {
        key[len(prefix):].lower(): value
        for key, value in sorted(environ.items())
        if key.startswith(prefix) and len(key) > len(prefix)
    }


def _key_value_flag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError("want key=value")
    return key, value


def _registry_mirror(text: str) -> tuple[str, str]:
    registry, url = _key_value_flag(text.strip())
    if not url.startswith(("http://", "https://")):
        raise ValueError("want REGISTRY=http(s)://host[:port]")
    return registry, url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubedock",
        description="A Docker Engine API server that runs every container as a Kubernetes pod.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    server = commands.add_parser(
        "server",
        help="serve the Docker API",
        description="Serve the Docker Engine API; every container becomes a pod.",
        epilog="Environment variables named in brackets set an option that is not given as a flag.",
    )
    for flags, field, env, convert, text in _SERVER_OPTIONS:
        suffix = f" [{env}]" if env else ""
        server.add_argument(*flags, dest=field, type=_argparse_type(convert), help=text + suffix)
    server.add_argument(
        "--port-forward", action="store_true",
        help="reach exposed ports through Kubernetes port-forward streams on kubedock's host",
    )
    server.add_argument(
        "--reverse-proxy", action="store_true",
        help="reach exposed ports through TCP proxies to the pod IPs (kubedock in the cluster; "
        "with --port-forward, port-forward wins, as in the Go kubedock)",
    )
    server.add_argument(
        "-P", "--prune-start", action="store_true",
        help="at start, delete the objects of kubedock instances that are gone",
    )
    server.add_argument(
        "--prune-start-all", action="store_true",
        help="at start, delete every kubedock object in the namespace, live instances' too",
    )
    server.add_argument(
        "--disable-services", action="store_true",
        help="create no Service per network alias (Go kubedock's flag; implies "
        "--network-names external unless that is given)",
    )
    server.add_argument(
        "--disable-dind", action="store_true",
        help="refuse binds of /var/run/docker.sock instead of serving kubedock's API in them "
        "through a sidecar [DISABLE_DIND]",
    )
    server.add_argument(
        "--ignore-container-memory", action="store_true",
        help="do not turn a container's memory limit (HostConfig.Memory) into a pod limit",
    )
    for flags, env, takes_value, why in _MOOT_OPTIONS:
        suffix = f" [{env}]" if env else ""
        server.add_argument(
            *flags, dest=_moot_dest(flags), action="store" if takes_value else "store_true",
            help=f"accepted for the Go kubedock's deployments, changes nothing: {why}{suffix}",
        )
    server.add_argument(
        "--tls-enable", action="store_true",
        help="serve the TCP listener over TLS (the unix socket stays plain) [SERVER_TLS_ENABLE]",
    )
    server.add_argument(
        "--lock", action="store_true",
        help="serve only while holding the namespace's Lease kubedock-lock",
    )
    server.add_argument(
        "--bind-root", action="append", default=[], dest="bind_roots", metavar="DIR",
        help="bind sources must lie in this tree (repeatable; comma-separated in the variable; "
        "default: anywhere but the kernel's trees and kubedock's credentials) [BIND_ROOTS]",
    )
    server.add_argument(
        "--label", action="append", default=[], type=_argparse_type(_key_value_flag),
        metavar="KEY=VALUE", help="extra label on every object [K8S_LABEL_<KEY>]",
    )
    server.add_argument(
        "--registry-mirror", action="append", default=[],
        type=_argparse_type(_registry_mirror), metavar="REGISTRY=URL",
        help="ask URL for REGISTRY's images, e.g. docker.io=http://127.0.0.1:5000 (repeatable; "
        "comma-separated in the variable) [REGISTRY_MIRRORS]",
    )
    server.add_argument(
        "--annotation", action="append", default=[], type=_argparse_type(_key_value_flag),
        metavar="KEY=VALUE", help="extra annotation on every object [K8S_ANNOTATION_<KEY>]",
    )
    commands.add_parser("version", help="print the version, commit and build date")
    dns = commands.add_parser(
        "dns", help="(inside a pod) resolve container names per Docker network",
        description="DNS server answering each pod with the names of its networks' pods.",
    )
    dns.add_argument("--listen-addr", default="0.0.0.0:1053", type=_argparse_type(_listen_addr),
                     help="UDP and TCP address (default 0.0.0.0:1053)")
    dns.add_argument("--dns-upstream", type=_argparse_type(_dns_upstream), metavar="HOST[:PORT]",
                     help="server for every other name (default: resolv.conf's first)")
    dns.add_argument("--search", type=lambda text: tuple(filter(None, text.split(","))),
                     help="comma-separated suffixes stripped from names (default: resolv.conf's)")
    dns.add_argument("-n", "--namespace", help="namespace to watch (default: the pod's own)")
    dns.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster)")
    init = commands.add_parser(
        "init", help="(inside pods) write the tar streamed on stdin into a volume, then exit"
    )
    init.add_argument("target", nargs="?", help="directory to write into (default /.kubedock/data)")
    init.add_argument("--tools", metavar="DIR",
                      help="also copy this program (and its C library) into DIR, for archive")
    archive = commands.add_parser(
        "archive", help="(inside pods) stat, tar or untar a path of the container"
    )
    archive.add_argument("action", choices=("stat", "get", "put"))
    archive.add_argument("path")
    archive.add_argument("--no-overwrite-dir-non-dir", action="store_true",
                         help="put: fail rather than replace a directory by a file or the reverse")
    dind = commands.add_parser(
        "dind", help="(inside pods) relay a unix socket to kubedock's Docker API",
        description="The sidecar of containers that bind the Docker socket.",
    )
    dind.add_argument("--unix-socket", default="/var/run/docker.sock",
                      help="socket to listen on (default /var/run/docker.sock)")
    dind.add_argument("--kubedock-url", metavar="URL",
                      help="kubedock's API, http://host:port (https:// with --tls-dir)")
    dind.add_argument("--tls-dir", metavar="DIR",
                      help="reach kubedock over TLS: DIR holds this sidecar's cert.pem and key.pem "
                      "and kubedock's certificate, server.pem")
    dind.add_argument("--wait", type=float, metavar="SECONDS",
                      help="instead: exit 0 once the socket accepts connections, 1 on timeout")
    return parser


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    values: dict[str, Any] = {}
    for _flags, field, env, convert, _text in _SERVER_OPTIONS:
        given = getattr(args, field)
        if given is not None:
            values[field] = given
        elif env and environ.get(env):
            try:
                values[field] = convert(environ[env])
            except ValueError as error:
                raise SystemExit(f"kubedock: invalid {env}={environ[env]!r}: {error}") from None
    if values.get("active_deadline_seconds", 0) < 0:
        values["active_deadline_seconds"] = None
    notes: list[str] = []
    if args.port_forward:
        values["expose"] = "port-forward"
        if args.reverse_proxy:
            notes.append("--reverse-proxy is ignored: --port-forward is given too")
    elif args.reverse_proxy:
        values["expose"] = "reverse-proxy"
    values["disable_dind"] = args.disable_dind or _true(environ.get("DISABLE_DIND", ""))
    values["ignore_container_memory"] = args.ignore_container_memory
    for flags, env, _takes_value, why in _MOOT_OPTIONS:
        if getattr(args, _moot_dest(flags)) or (env and environ.get(env)):
            notes.append(f"{flags[-1]} changes nothing: {why}")
    values["notes"] = tuple(notes)
    values["prune_start"] = args.prune_start
    values["prune_start_all"] = args.prune_start_all
    values["lock"] = args.lock
    roots = args.bind_roots or filter(None, environ.get("BIND_ROOTS", "").split(","))
    values["bind_roots"] = tuple(os.path.abspath(root.strip()) for root in roots)
    values["tls_enable"] = args.tls_enable or _true(environ.get("SERVER_TLS_ENABLE", ""))
    if args.disable_services:
        if values.get("network_names") == "services":
            raise SystemExit("kubedock: --disable-services contradicts --network-names services")
        values.setdefault("network_names", "external")
    values["labels"] = {**_prefixed_env(environ, "K8S_LABEL_"), **dict(args.label)}
    try:
        mirrors = args.registry_mirror or [
            _registry_mirror(item) for item in environ.get("REGISTRY_MIRRORS", "").split(",")
            if item.strip()]
    except ValueError as error:
        raise SystemExit(f"kubedock: invalid REGISTRY_MIRRORS: {error}") from None
    values["registry_mirrors"] = dict(mirrors)
    values["annotations"] = {**_prefixed_env(environ, "K8S_ANNOTATION_"), **dict(args.annotation)}
    try:
        return Config(**values)
    except ValueError as error:
        raise SystemExit(f"kubedock: {error}") from None


def _true(text: str) -> bool:
    """A boolean environment variable, read as Go's strconv.ParseBool reads it."""
    return text.strip().lower() in ("1", "t", "true")


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "init":
        from .podside import run_init

        sys.exit(run_init(args.target, tools=args.tools))
    if args.command == "archive":
        from .podside import run_archive

        sys.exit(run_archive([args.action, args.path],
                             no_overwrite_dir_non_dir=args.no_overwrite_dir_non_dir))
    if args.command == "dind":
        from .podside import run_dind

        sys.exit(run_dind(args.unix_socket, args.kubedock_url, wait=args.wait,
                          tls_dir=args.tls_dir))
    if args.command == "dns":
        from .dns import run_dns

        host, port = split_host_port(args.listen_addr)
        sys.exit(run_dns(kubeconfig=args.kubeconfig, namespace=args.namespace, host=host,
                         port=port, upstream=args.dns_upstream, search=args.search))
    if args.command == "version":
        from ._build_info import current

        print(current().describe())
        return
    config = config_from_args(args, os.environ)
    # Imported here so that `version` and the roles that run inside pods stay light to start.
    from ._server import run

    sys.exit(run(config))
