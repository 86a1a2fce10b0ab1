from typing import Any

import pytest

from kubedock.api._containers import parse_create
from kubedock.api._errors import DockerError
from kubedock.engine import HostBinding
from kubedock.kube import PortSpec


def test_null_means_absent_as_docker_java_sends_it() -> None:
    body: dict[str, Any] = {
        "Image": "redis:7",
        "Cmd": None,
        "Entrypoint": None,
        "Env": None,
        "Labels": None,
        "Tty": None,
        "ExposedPorts": None,
        "HostConfig": {"PortBindings": None, "Binds": None, "Privileged": None},
        "Healthcheck": None,
        "WorkingDir": None,
    }
    config = parse_create(body)
    assert config.cmd is None and config.entrypoint is None and config.env == ()
    assert config.labels == {} and not config.tty and config.ports == ()


def test_full_body() -> None:
    config = parse_create(
        {
            "Image": "nginx:1.27",
            "Entrypoint": ["/docker-entrypoint.sh"],
            "Cmd": ["nginx"],
            "Env": ["A=1", "B"],
            "WorkingDir": "/srv",
            "User": "1000:1000",
            "Labels": {"org.testcontainers": "true"},
            "Tty": True,
            "OpenStdin": True,
            "ExposedPorts": {"80/tcp": {}},
            "StopSignal": "SIGQUIT",
            "StopTimeout": 3,
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000, "Retries": 2},
            "HostConfig": {
                "PortBindings": {
                    "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                    "53/udp": [{"HostPort": ""}],
                },
                "Memory": 64 * 1024 * 1024,
                "NanoCpus": 500_000_000,
                "AutoRemove": True,
                "ExtraHosts": ["db:10.0.0.5"],
                "NetworkMode": "bridge",
            },
        }
    )
    assert config.ports == (PortSpec(80, "tcp"), PortSpec(53, "udp"))
    assert config.port_bindings[PortSpec(80, "tcp")] == (HostBinding("", 8080),)
    assert config.healthcheck is not None and config.healthcheck.interval == 1.0
    assert config.healthcheck.retries == 2 and config.healthcheck.timeout == 30.0
    assert config.extra_hosts == (("db", "10.0.0.5"),)
    assert config.memory == 64 * 1024 * 1024 and config.auto_remove


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({}, 400, "Config cannot be empty"),
        ({"Image": "Bad Image"}, 400, "invalid reference format"),
        ({"Image": "busybox", "Cmd": 5}, 400, "Cmd"),
        ({"Image": "busybox", "Tty": "yes"}, 400, "Tty"),
        ({"Image": "busybox", "ExposedPorts": {"http/tcp": {}}}, 400, "invalid port"),
        ({"Image": "busybox", "HostConfig": {"Binds": ["/var/run/docker.sock:/s"]}}, 501,
         "below /"),
        ({"Image": "busybox", "HostConfig": {"Privileged": True}}, 501, "Privileged"),
        ({"Image": "busybox", "HostConfig": {"NetworkMode": "host"}}, 501, "network mode"),
        ({"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "always"}}}, 501, "restart"),
        (
            {"Image": "busybox", "HostConfig": {"ExtraHosts": ["x:host-gateway"]}},
            501,
            "host-gateway",
        ),
        ({"Image": "busybox", "Healthcheck": {"Test": ["BOGUS"]}}, 400, "healthcheck"),
        ({"Image": "busybox", "Env": ["=x"]}, 400, "environment"),
    ],
)
def test_refusals_name_the_option(body: dict[str, Any], status: int, text: str) -> None:
    with pytest.raises(DockerError) as caught:
        parse_create(body)
    assert caught.value.status == status
    assert text in caught.value.message


def test_a_bind_of_the_docker_socket_asks_for_kubedocks_api() -> None:
    config = parse_create({"Image": "busybox", "HostConfig": {
        "Binds": ["/var/run/docker.sock:/var/run/docker.sock:rw"],
        "Mounts": [{"Type": "bind", "Source": "/run/docker.sock", "Target": "/sock/docker.sock"}],
    }})
    assert [(mount.kind, mount.target, mount.source) for mount in config.mounts] == [
        ("docker-socket", "/var/run/docker.sock", ""),
        ("docker-socket", "/sock/docker.sock", ""),
    ]
