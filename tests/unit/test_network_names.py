"""Pure parts of Docker networks on Kubernetes: pod annotations and dnsConfig, Services, flags."""

from __future__ import annotations

import pytest

from kubedock import kube
from kubedock._cli import build_parser, config_from_args
from kubedock.dns import pod_dns_config
from kubedock.dns._deploy import manifests
from kubedock.dns._role import read_resolv_conf
from kubedock.engine import NetworkStore, dns_name
from kubedock.engine._services import service_manifest, service_names

SETTINGS = kube.PodSettings(namespace="tests", instance_id="a1b2c3d4e5f6")
SPEC = kube.ContainerSpec(container_id="3fa9c1d2b4e5" + "0" * 52, name="db", image="redis:7",
                          dns_names=("db", "cache", "3fa9c1d2b4e5"), network_ids=("n1", "n2"))


def test_pod_carries_kubedock_dns_annotations() -> None:
    annotations = kube.pod_manifest(SPEC, SETTINGS)["metadata"]["annotations"]
    assert annotations == {
        "kubedock.containername": "db",
        # hostalias/0: the hostname, else the pod name (Go kubedock's order), then the names.
        "kubedock.hostalias/0": "kubedock-db-3fa9c1d2b4e5",
        "kubedock.hostalias/1": "db",
        "kubedock.hostalias/2": "cache",
        "kubedock.hostalias/3": "3fa9c1d2b4e5",
        "kubedock.network/0": "n1",
        "kubedock.network/1": "n2",
    }


def test_dns_mode_sets_dns_policy_none() -> None:
    config = pod_dns_config("10.96.0.53", "tests", "cluster.local")
    settings = kube.PodSettings(namespace="tests", instance_id="x", dns_config=config)
    spec = kube.pod_manifest(SPEC, settings)["spec"]
    assert spec["dnsPolicy"] == "None"
    assert spec["dnsConfig"] == {
        "nameservers": ["10.96.0.53"],
        "searches": ["tests.svc.cluster.local", "svc.cluster.local", "cluster.local"],
        "options": [{"name": "ndots", "value": "5"}],
    }
    assert "dnsPolicy" not in kube.pod_manifest(SPEC, SETTINGS)["spec"]


def test_dns_names() -> None:
    assert dns_name("My-DB.") == "my-db"
    assert dns_name("my_db") is None
    assert dns_name("-x") is None


def test_predefined_network_ids_differ_per_store() -> None:
    first, second = NetworkStore(), NetworkStore()
    assert [n.name for n in first.all()] == ["bridge", "host", "none"]
    assert first.bridge.id != second.bridge.id


def test_service_per_name_owned_by_the_pod() -> None:
    pod = kube.pod_manifest(SPEC, SETTINGS)
    pod["metadata"]["uid"] = "uid-1"
    assert service_names(["Cache", "db", "3fa9c1d2b4e5", "my_db", "cache"]) == ["cache", "db"]
    service = service_manifest("cache", pod, [kube.PortSpec(6379, "tcp")])
    assert service["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"], "uid": "uid-1"}]
    assert service["spec"]["selector"] == {"kubedock.containerid": "3fa9c1d2b4e5"}
    assert service["spec"]["ports"] == [
        {"name": "tcp-6379", "port": 6379, "targetPort": 6379, "protocol": "TCP"}]


def test_dns_role_objects() -> None:
    kinds = [(kind.plural, manifest["metadata"]["name"])
             for kind, manifest in manifests("tests", "kubedock/kubedock:9")]
    assert kinds == [("serviceaccounts", "kubedock-dns"), ("roles", "kubedock-dns"),
                     ("rolebindings", "kubedock-dns"), ("pods", "kubedock-dns"),
                     ("services", "kubedock-dns")]
    for _kind, manifest in manifests("tests", "i"):
        assert "kubedock" not in manifest["metadata"]["labels"]  # no instance reaps it


def test_resolv_conf() -> None:
    resolv = read_resolv_conf("search ns.svc.cluster.local svc.cluster.local cluster.local\n"
                              "nameserver 10.96.0.10 # kube-dns\noptions ndots:5\n")
    assert resolv.nameservers == ("10.96.0.10",)
    assert resolv.search == ("ns.svc.cluster.local", "svc.cluster.local", "cluster.local")


@pytest.mark.parametrize(("argv", "mode"), [
    ([], "dns"),
    (["--disable-services"], "external"),
    (["--network-names", "services"], "services"),
    (["--disable-services", "--network-names", "dns"], "dns"),
])
def test_network_names_flags(argv: list[str], mode: str) -> None:
    args = build_parser().parse_args(["server", *argv])
    assert config_from_args(args, {}).network_names == mode


def test_disable_services_contradicts_services_mode() -> None:
    args = build_parser().parse_args(["server", "--disable-services", "--network-names",
                                      "services"])
    with pytest.raises(SystemExit):
        config_from_args(args, {})
