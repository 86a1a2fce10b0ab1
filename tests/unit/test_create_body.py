from typing import Any

import pytest

from kubedock.api._create_body import parse_create
from kubedock.api._errors import DockerError
from kubedock.engine import HostBinding, RestartPolicy
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
        ({"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "bogus"}}}, 400,
         "invalid restart policy 'bogus'"),
        ({"Image": "busybox", "HostConfig": {"RestartPolicy": {
            "Name": "always", "MaximumRetryCount": 2}}}, 400, "maximum retry count cannot"),
        ({"Image": "busybox", "HostConfig": {"RestartPolicy": {
            "Name": "on-failure", "MaximumRetryCount": -1}}}, 400, "cannot be negative"),
        ({"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "always"},
                                             "AutoRemove": True}}, 400, "AutoRemove"),
        (
            {"Image": "busybox", "HostConfig": {"ExtraHosts": ["x:host-gateway"]}},
            501,
            "host-gateway",
        ),
        ({"Image": "busybox", "Healthcheck": {"Test": ["BOGUS"]}}, 400, "healthcheck"),
        ({"Image": "busybox", "Env": ["=x"]}, 400, "environment"),
        ({"Image": "busybox", "StopTimeout": 2**63}, 400, "StopTimeout of type int64"),
        ({"Image": "busybox", "HostConfig": {"Memory": 1e30}}, 400, "Memory of type int64"),
        # Digits Python's isdigit() takes and int() refuses; values of the wrong JSON type.
        ({"Image": "busybox", "ExposedPorts": {"²/tcp": {}}}, 400, "invalid port"),
        ({"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "²"}]}}},
         400, "invalid host port"),
        ({"Image": "busybox", "HostConfig": {"GroupAdd": ["²"]}}, 501, "GroupAdd"),
        ({"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": 5}}}, 400, "want a list"),
        ({"Image": "busybox", "HostConfig": {"Binds": 5}}, 400, "Binds"),
        ({"Image": "busybox", "HostConfig": {"Mounts": 5}}, 400, "Mounts"),
        ({"Image": "busybox", "HostConfig": {"Mounts": [{"Type": ["bind"], "Target": "/x"}]}},
         400, "HostConfig.Mounts.Type"),
        ({"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": ["always"]}}}, 400,
         "HostConfig.RestartPolicy.Name"),
        ({"Image": "busybox", "Healthcheck": {"Test": ["CMD", "true"], "Interval": -5}}, 400,
         "Interval in Healthcheck cannot be less than 1ms"),
        ({"Image": "busybox", "Healthcheck": {"Test": ["CMD", "true"], "Timeout": 999_999}},
         400, "Timeout in Healthcheck cannot be less than 1ms"),
        ({"Image": "busybox", "Healthcheck": {"Test": ["CMD", "true"], "Retries": -1}}, 400,
         "Retries in Healthcheck cannot be negative"),
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


def test_cpu_memory_groups_and_capabilities_are_kept() -> None:
    config = parse_create({"Image": "busybox", "HostConfig": {
        "CpuQuota": 50_000, "CpuPeriod": 100_000, "CpuShares": 512, "Memory": 64 << 20,
        "MemoryReservation": 32 << 20, "MemorySwap": 128 << 20, "GroupAdd": ["1000", "root"],
        "CapDrop": ["CAP_NET_RAW", "mknod", "NET_RAW"], "PidsLimit": -1, "MemorySwappiness": -1,
        "Runtime": "runc", "Isolation": "default", "ConsoleSize": [0, 0], "PublishAllPorts": True,
    }})
    assert config.nano_cpus == 500_000_000 and config.cpu_shares == 512
    assert config.memory == 64 << 20 and config.memory_reservation == 32 << 20
    assert config.group_add == (1000, 0)
    assert config.cap_drop == ("NET_RAW", "MKNOD")
    assert parse_create({"Image": "busybox", "HostConfig": {
        "CpuQuota": 150_000}}).nano_cpus == 1_500_000_000
    assert parse_create({"Image": "busybox", "HostConfig": {
        "CpuPeriod": 50_000, "CpuQuota": -1}}).nano_cpus is None


def test_the_docker_cli_defaults_ask_for_nothing() -> None:
    """What `docker create busybox true` sends (docker CLI 28), every option at its default."""
    host_config = {
        "AutoRemove": False, "Binds": None, "BlkioDeviceReadBps": [], "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteBps": [], "BlkioDeviceWriteIOps": [], "BlkioWeight": 0,
        "BlkioWeightDevice": [], "CapAdd": None, "CapDrop": None, "Cgroup": "",
        "CgroupParent": "", "CgroupnsMode": "", "ConsoleSize": [0, 0], "ContainerIDFile": "",
        "CpuCount": 0, "CpuPercent": 0, "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0, "CpuShares": 0, "CpusetCpus": "", "CpusetMems": "",
        "DeviceCgroupRules": None, "DeviceRequests": None, "Devices": [], "Dns": [],
        "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None,
        "IOMaximumBandwidth": 0, "IOMaximumIOps": 0, "IpcMode": "", "Isolation": "",
        "Links": None, "LogConfig": {"Config": {}, "Type": ""}, "MaskedPaths": None,
        "Memory": 0, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": -1,
        "NanoCpus": 0, "NetworkMode": "default", "OomKillDisable": False, "OomScoreAdj": 0,
        "PidMode": "", "PidsLimit": 0, "PortBindings": {}, "Privileged": False,
        "PublishAllPorts": False, "ReadonlyPaths": None, "ReadonlyRootfs": False,
        "RestartPolicy": {"MaximumRetryCount": 0, "Name": "no"}, "SecurityOpt": None,
        "ShmSize": 0, "UTSMode": "", "Ulimits": [], "UsernsMode": "", "VolumeDriver": "",
        "VolumesFrom": None,
    }
    endpoint = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
                "DriverOpts": None, "GwPriority": 0, "NetworkID": "", "EndpointID": "",
                "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}
    config = parse_create({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "Tty": False,
        "Env": None, "Cmd": ["true"], "Image": "busybox", "Volumes": {}, "WorkingDir": "",
        "Entrypoint": None, "OnBuild": None, "Labels": {}, "HostConfig": host_config,
        "NetworkingConfig": {"EndpointsConfig": {"default": endpoint}},
    })
    assert config.nano_cpus is None and config.cpu_shares is None and config.memory is None
    assert config.group_add == () and config.cap_drop == ()


@pytest.mark.parametrize(("host_config", "status", "text"), [
    ({"PidsLimit": 10}, 501, "HostConfig.PidsLimit"),
    ({"DeviceRequests": [{"Count": -1, "Capabilities": [["gpu"]]}]}, 501,
     "HostConfig.DeviceRequests"),
    ({"CpusetCpus": "0,1"}, 501, "HostConfig.CpusetCpus"),
    ({"OomKillDisable": True}, 501, "HostConfig.OomKillDisable"),
    ({"MemorySwappiness": 40}, 501, "HostConfig.MemorySwappiness"),
    ({"BlkioWeight": 300}, 501, "HostConfig.BlkioWeight"),
    ({"CpuRealtimeRuntime": 500}, 501, "HostConfig.CpuRealtimeRuntime"),
    ({"Runtime": "kata"}, 501, "HostConfig.Runtime"),
    ({"CgroupnsMode": "host"}, 501, "HostConfig.CgroupnsMode"),
    ({"MaskedPaths": []}, 501, "HostConfig.MaskedPaths"),
    ({"CapAdd": ["NET_ADMIN"]}, 501, "HostConfig.CapAdd"),
    ({"GroupAdd": ["audio"]}, 501, "HostConfig.GroupAdd 'audio'"),
    ({"CapDrop": ["bogus"]}, 400, 'invalid CapDrop: unknown capability: "CAP_BOGUS"'),
    ({"NanoCpus": 10**9, "CpuQuota": 50_000}, 400, "Nano CPUs and CPU Quota"),
    ({"NanoCpus": 10**9, "CpuPeriod": 50_000}, 400, "Nano CPUs and CPU Period"),
    ({"CpuQuota": 500}, 400, "CPU cfs quota"),
    ({"Memory": 1024}, 400, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 64 << 20, "MemoryReservation": 128 << 20}, 400, "memory reservation"),
    ({"MemorySwap": 64 << 20}, 400, "always set the Memory limit"),
    ({"NanoCpus": -1}, 400, "NanoCpus"),
    ({"LogConfig": {"Type": "asdf"}}, 400,
     'error looking up logging plugin asdf: plugin "asdf" not found'),
    ({"LogConfig": {"Type": "syslog"}}, 400, "log driver 'syslog' is not supported"),
    ({"LogConfig": {"Type": "json-file", "Config": {"bogus": "1"}}}, 400,
     "unknown log opt 'bogus' for json-file log driver"),
    ({"ConsoleSize": [24]}, 400, "ConsoleSize"),
])
def test_host_options_refused_by_name(host_config: dict[str, Any], status: int,
                                      text: str) -> None:
    with pytest.raises(DockerError) as caught:
        parse_create({"Image": "busybox", "HostConfig": host_config})
    assert caught.value.status == status
    assert text in caught.value.message


@pytest.mark.parametrize(("body", "text"), [
    ({"MacAddress": "02:42:ac:11:00:02"}, "MacAddress"),
    ({"NetworkingConfig": {"EndpointsConfig": {"app": {"IPAMConfig": {
        "IPv4Address": "172.20.0.5"}}}}}, "EndpointsConfig.app.IPAMConfig"),
])
def test_network_settings_refused_by_name(body: dict[str, Any], text: str) -> None:
    with pytest.raises(DockerError) as caught:
        parse_create({"Image": "busybox", **body})
    assert caught.value.status == 501
    assert text in caught.value.message


def test_disabled_networking_is_the_none_network() -> None:
    assert parse_create({"Image": "busybox", "NetworkDisabled": True}).networks == {"none": ()}
    assert parse_create({"Image": "busybox", "HostConfig": {"NetworkMode": "none"}}
                        ).networks == {"none": ()}


def test_restart_policies_and_links() -> None:
    config = parse_create({"Image": "busybox", "HostConfig": {
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
        "Links": ["/db:/web/database", "cache"]}})
    assert config.restart_policy == RestartPolicy("on-failure", 2)
    assert config.links == (("db", "database"), ("cache", "cache"))
    assert config.network_links == {}
    assert parse_create({"Image": "busybox"}).restart_policy == RestartPolicy("no", 0)
    # On a user network, HostConfig.Links are that network's links, as with Docker.
    on_network = parse_create({"Image": "busybox", "HostConfig": {
        "NetworkMode": "app", "Links": ["db:database"]}, "NetworkingConfig": {
            "EndpointsConfig": {"app": {"Links": ["queue:q"]}}}})
    assert on_network.links == ()
    assert on_network.network_links == {"app": (("queue", "q"), ("db", "database"))}
