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

from ._config import PULL_POLICIES, Config, parse_duration, parse_key_values, split_host_port


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _pull_policy(text: str) -> str:
    if text.lower() not in PULL_POLICIES:
        raise ValueError(f"must be one of {', '.join(PULL_POLICIES)}")
    return text.lower()


def _listen_addr(text: str) -> str:
    split_host_port(text)
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
    (("-v", "--verbosity"), "verbosity", "VERBOSITY", _nonnegative_int,
     "log verbosity (default 1)"),
]


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
    exposure = server.add_mutually_exclusive_group()
    exposure.add_argument(
        "--port-forward", action="store_true",
        help="reach exposed ports through Kubernetes port-forward streams on kubedock's host",
    )
    exposure.add_argument(
        "--reverse-proxy", action="store_true",
        help="reach exposed ports through TCP proxies to the pod IPs (kubedock in the cluster)",
    )
    server.add_argument(
        "--label", action="append", default=[], type=_argparse_type(_key_value_flag),
        metavar="KEY=VALUE", help="extra label on every object [K8S_LABEL_<KEY>]",
    )
    server.add_argument(
        "--annotation", action="append", default=[], type=_argparse_type(_key_value_flag),
        metavar="KEY=VALUE", help="extra annotation on every object [K8S_ANNOTATION_<KEY>]",
    )
    commands.add_parser("version", help="print the version, commit and build date")
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
    if args.port_forward:
        values["expose"] = "port-forward"
    elif args.reverse_proxy:
        values["expose"] = "reverse-proxy"
    values["labels"] = {**_prefixed_env(environ, "K8S_LABEL_"), **dict(args.label)}
    values["annotations"] = {**_prefixed_env(environ, "K8S_ANNOTATION_"), **dict(args.annotation)}
    return Config(**values)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        from ._build_info import current

        print(current().describe())
        return
    config = config_from_args(args, os.environ)
    # Imported here so that `version` and the roles that run inside pods stay light to start.
    from ._server import run

    sys.exit(run(config))
