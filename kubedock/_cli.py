"""Command line: flags and environment variables → :class:`Config`; subcommands.

Flag and variable names follow the Go kubedock so that existing deployments keep working.
A flag given on the command line wins over its environment variable, which wins over the default.

The roles that run inside pods start kubedock for every copy, exec or signal, so this module
imports the server's configuration (attrs, logging, the settings) only for the commands that
use it: every command but `server` parses its arguments without building the server's options.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import Config, Setting


def _dns_upstream(text: str) -> tuple[str, int]:
    from ._config import split_host_port

    if text.count(":") == 1 or text.startswith("["):
        return split_host_port(text)
    return text, 53  # a name, an IPv4 address or a bare IPv6 address


def _argparse_type(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def checked(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None

    checked.__name__ = convert.__name__.lstrip("_")
    return checked


def _add_setting(parser: argparse.ArgumentParser, name: str, default: Any,
                 declared: Setting) -> None:
    """A flag of `kubedock server`; absent from the parsed arguments unless given."""
    text = (f"accepted for the Go kubedock's deployments, changes nothing: {declared.moot}"
            if declared.moot else declared.help)
    if declared.env:
        text += f" [{declared.env}]"
    options: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": text}
    if default is False:
        options["action"] = "store_true"
    else:
        options["type"] = _argparse_type(declared.parse)
        options["action"] = "append" if declared.repeat else "store"
        if declared.metavar:
            options["metavar"] = declared.metavar
    parser.add_argument(*declared.flags, **options)


def _from_environment(declared: Setting, is_switch: bool,
                      environ: Mapping[str, str]) -> Any:
    """The value the environment gives a setting: None when it gives none."""
    if declared.env_prefix:
        items = [(key[len(declared.env_prefix):].lower(), value)
                 for key, value in sorted(environ.items())
                 if key.startswith(declared.env_prefix) and len(key) > len(declared.env_prefix)]
        return items or None
    text = environ.get(declared.env, "") if declared.env else ""
    if not text:
        return None
    try:
        if is_switch:
            return _true(text)
        if declared.repeat:
            return [declared.parse(item) for item in text.split(",") if item.strip()]
        return declared.parse(text)
    except ValueError as error:
        raise SystemExit(f"kubedock: invalid {declared.env}={text!r}: {error}") from None


def _listen_addr(text: str) -> str:
    from ._config import parse_listen_addr

    return parse_listen_addr(text)


def build_parser(*, server_options: bool = True) -> argparse.ArgumentParser:
    """kubedock's command line; without `server_options`, `kubedock server` takes no flags."""
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
    if server_options:
        from ._config import settings

        for field, declared in settings():
            _add_setting(server, field.name, field.default, declared)
    commands.add_parser("version", help="print the version, commit and build date")
    dns = commands.add_parser(
        "dns", help="(inside a pod) resolve container names per Docker network",
        description="DNS server answering each pod with the names of its networks' pods.",
    )
    dns.add_argument("--listen-addr", default="0.0.0.0:1053",
                     type=_argparse_type(_listen_addr),
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
    commands.add_parser(
        "offline", help="(inside pods) take the pod off the network, as Docker's --network none")
    archive = commands.add_parser(
        "archive", help="(inside pods) stat, tar or untar a path of the container"
    )
    archive.add_argument("action", choices=("stat", "get", "put"))
    archive.add_argument("path")
    archive.add_argument("--no-overwrite-dir-non-dir", action="store_true",
                         help="put: fail rather than replace a directory by a file or the reverse")
    archive.add_argument("--serve", action="store_true",
                         help="carry the tar over one connection to a port it announces")
    archive.add_argument("--pod-network", action="store_true",
                         help="with --serve: listen on every address of the pod, not only on "
                         "its loopback")
    archive.add_argument("--with-stat", action="store_true",
                         help="get with --serve: say the path's stat line before the port")
    toolbox = commands.add_parser(
        "toolbox", help="(inside pods) copy, exec as a user, signal and list processes for "
        "the container this ephemeral container targets",
    )
    toolbox.add_argument("words", nargs=argparse.REMAINDER,
                         help="idle|archive|exec|signal|ps|udp-relay|echo ...")
    buildstep = commands.add_parser(
        "buildstep", help="(inside build sandbox pods) serve a build's requests on stdin: "
        "apply layers, run build steps, snapshot their changes")
    buildstep.add_argument("words", nargs=argparse.REMAINDER, help="STATE serve")
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
    """The configuration the given flags (see `build_parser`) and environment describe."""
    from ._config import Config, settings

    given = vars(args)
    values: dict[str, Any] = {}
    for field, declared in settings():
        from_flags = given.get(field.name)
        from_env = _from_environment(declared, field.default is False, environ)
        if declared.repeat and isinstance(field.default, Mapping):  # flags win per key
            values[field.name] = {**dict(from_env or ()), **dict(from_flags or ())}
        elif field.name in given or from_env is not None:
            value = from_flags if field.name in given else from_env
            values[field.name] = tuple(value or ()) if declared.repeat else value
    if values.get("disable_services"):
        if values.get("network_names") == "services":
            raise SystemExit("kubedock: --disable-services contradicts --network-names services")
        values.setdefault("network_names", "external")
    try:
        return Config(**values)
    except ValueError as error:
        raise SystemExit(f"kubedock: {error}") from None


def _true(text: str) -> bool:
    """A boolean environment variable, read as Go's strconv.ParseBool reads it."""
    return text.strip().lower() in ("1", "t", "true")


def main(argv: Sequence[str] | None = None) -> None:
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(server_options=words[:1] == ["server"]).parse_args(words)
    if args.command == "init":
        from .podside import run_init

        sys.exit(run_init(args.target, tools=args.tools))
    if args.command == "offline":
        from .podside import run_offline

        sys.exit(run_offline())
    if args.command == "archive":
        from .podside import run_archive

        sys.exit(run_archive([args.action, args.path],
                             no_overwrite_dir_non_dir=args.no_overwrite_dir_non_dir,
                             serve=args.serve, pod_network=args.pod_network,
                             with_stat=args.with_stat))
    if args.command == "toolbox":
        from .podside import run_toolbox

        sys.exit(run_toolbox(args.words))
    if args.command == "buildstep":
        from .podside import run_buildstep

        sys.exit(run_buildstep(args.words))
    if args.command == "dind":
        from .podside import run_dind

        sys.exit(run_dind(args.unix_socket, args.kubedock_url, wait=args.wait,
                          tls_dir=args.tls_dir))
    if args.command == "dns":
        from ._config import split_host_port
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
