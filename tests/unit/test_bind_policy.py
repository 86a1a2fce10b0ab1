"""Which of kubedock's paths a bind may read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubedock._cli import build_parser, config_from_args
from kubedock.api import BindPolicy
from kubedock.api._create_body import parse_create
from kubedock.api._errors import DockerError

POLICY = BindPolicy(
    guarded=(*BindPolicy().guarded, ("/home/ci/.kube/config", "kubedock's kubeconfig"),
             ("/etc/kubedock/tls/key.pem", "kubedock's TLS key")),
)


@pytest.mark.parametrize(("path", "reason"), [
    ("/", "it holds /proc (process and kernel state)"),
    ("/proc", "it is in /proc (process and kernel state)"),
    ("/proc/1/environ", "it is in /proc (process and kernel state)"),
    ("/sys/class", "it is in /sys (kernel state)"),
    ("/dev", "it is in /dev (devices)"),
    ("/var/run/secrets/kubernetes.io/serviceaccount",
     "it is in /var/run/secrets/kubernetes.io (service account tokens)"),
    ("/run/secrets", "it holds /run/secrets/kubernetes.io (service account tokens)"),
    ("/home/ci", "it holds /home/ci/.kube/config (kubedock's kubeconfig)"),
    ("/home/ci/.kube/config", "it is in /home/ci/.kube/config (kubedock's kubeconfig)"),
    ("/etc/kubedock", "it holds /etc/kubedock/tls/key.pem (kubedock's TLS key)"),
])
def test_kernel_trees_tokens_and_own_credentials_are_refused(path: str, reason: str) -> None:
    assert POLICY.refusal(path) == reason


@pytest.mark.parametrize("path", ["/home/ci/src", "/home/ci/.kube/cache", "/procfs", "/devel",
                                  "/run/secrets/app", "/etc/kubedock/config.yaml", "/tmp"])
def test_everything_else_is_allowed(path: str) -> None:
    assert POLICY.refusal(path) is None


def test_roots_restrict_sources_to_their_trees() -> None:
    policy = BindPolicy(roots=("/work", "/srv/data"))
    assert policy.refusal("/work") is None
    assert policy.refusal("/srv/data/x/y") is None
    assert policy.refusal("/srv") == "it is outside the bind roots (/work, /srv/data)"
    assert policy.refusal("/workshop") == "it is outside the bind roots (/work, /srv/data)"
    assert policy.refusal("/proc") == "it is in /proc (process and kernel state)"


def refused(body_binds: list[str], policy: BindPolicy) -> str:
    with pytest.raises(DockerError) as error:
        parse_create({"Image": "busybox", "HostConfig": {"Binds": body_binds}}, policy)
    assert error.value.status == 400
    return error.value.message


def test_sources_are_checked_after_resolving_links_and_dot_dots(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()
    policy = BindPolicy.on_this_host(roots=[str(tmp_path / "allowed")])
    allowed = tmp_path / "allowed"
    (allowed / "data").mkdir(parents=True)
    (allowed / "proc").symlink_to("/proc")
    (allowed / "out").symlink_to(tmp_path)
    config = parse_create({"Image": "busybox", "HostConfig": {
        "Binds": [f"{allowed}/data/../data:/data:ro"],
        "Mounts": [{"Type": "bind", "Source": f"{allowed}/data", "Target": "/m"}],
    }}, policy)
    assert [mount.source for mount in config.mounts] == [str(allowed / "data")] * 2
    message = refused([f"{allowed}/proc:/p"], policy)
    assert message == (f'invalid mount config for type "bind": kubedock does not bind '
                       f"{allowed}/proc (that is, /proc): it is in /proc (process and kernel "
                       "state)")
    assert f"(that is, {tmp_path}): it is outside the bind roots" in refused(
        [f"{allowed}/out:/o"], policy)
    assert "it is outside the bind roots" in refused([f"{allowed}/data/../..:/o"], policy)


def test_the_docker_socket_bind_reads_nothing_and_stays_allowed() -> None:
    policy = BindPolicy(roots=("/work",))
    config = parse_create({"Image": "busybox",
                           "HostConfig": {"Binds": ["/var/run/docker.sock:/var/run/docker.sock"]}},
                          policy)
    assert [mount.kind for mount in config.mounts] == ["docker-socket"]


def test_kubedocks_own_files_and_roots_come_from_its_flags(tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).touch()
    args = build_parser().parse_args([
        "server", "--kubeconfig", "/k/config", "--tls-enable", "--tls-cert-file",
        f"{tmp_path}/cert.pem", "--tls-key-file", f"{tmp_path}/key.pem", "--tls-ca-file",
        f"{tmp_path}/ca.pem", "--bind-root", "/work", "--bind-root", "rel",
    ])
    config = config_from_args(args, {"BIND_ROOTS": "/ignored"})
    assert config.bind_roots == ("/work", os.path.abspath("rel"))
    assert config.own_secrets == [
        ("/k/config", "kubedock's kubeconfig"), (f"{tmp_path}/key.pem", "kubedock's TLS key"),
        (f"{tmp_path}/cert.pem", "kubedock's TLS certificate"),
        (f"{tmp_path}/ca.pem", "kubedock's TLS client CA"),
    ]
    from_env = config_from_args(build_parser().parse_args(["server"]),
                                {"BIND_ROOTS": "/a, /b,", "KUBECONFIG": "/one:/two"})
    assert from_env.bind_roots == ("/a", "/b")
    assert [path for path, _ in from_env.own_secrets] == ["/one", "/two"]
    default = config_from_args(build_parser().parse_args(["server"]), {})
    assert default.own_secrets == [(os.path.expanduser("~/.kube/config"),
                                    "kubedock's kubeconfig")]
