"""Image pull secrets: what kubedock writes for the nodes, and reads for its registry client."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from engine_fake import FakeCluster

from kubedock import kube
from kubedock.engine import PullSecrets, parse_reference, pull_secret_configs
from kubedock.registry import (
    Credentials,
    credentials_from_config,
    docker_config_json,
    documents_lookup,
    first_credentials,
)

SETTINGS = kube.PodSettings(namespace="n", instance_id="abc", labels={"team": "x"},
                            image_pull_secrets=("flagged",))


def _secret(name: str, kind: str, key: str, document: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "type": kind,
            "data": {key: base64.b64encode(json.dumps(document).encode()).decode()}}


def test_a_docker_config_of_credentials_reads_back_as_they_were() -> None:
    credentials = Credentials("user", "p:w", "token")
    for host in ("127.0.0.1:5001", "docker.io"):
        document = json.loads(docker_config_json(host, credentials))
        assert credentials_from_config(document, host) == Credentials("user", "p:w", "token")
    assert list(json.loads(docker_config_json("docker.io", credentials))["auths"]) == [
        "https://index.docker.io/v1/"]


def test_the_pull_secret_is_labelled_as_the_instance_objects() -> None:
    name = kube.pull_secret_name(SETTINGS, "127.0.0.1:5001")
    assert name.startswith("kubedock-pull-abc-") and name != kube.pull_secret_name(
        SETTINGS, "docker.io")
    secret = kube.pull_secret_manifest(name, SETTINGS, b'{"auths":{}}')
    assert secret["metadata"]["labels"] == {"team": "x", "kubedock": "true", "kubedock.id": "abc"}
    assert kube.docker_config_of_secret(secret) == {"auths": {}}


def test_docker_configs_of_secrets() -> None:
    auths = {"r.test": {"auth": base64.b64encode(b"u:p").decode()}}
    assert kube.docker_config_of_secret(_secret(
        "a", "kubernetes.io/dockerconfigjson", ".dockerconfigjson", {"auths": auths})) == {
        "auths": auths}
    assert kube.docker_config_of_secret(_secret(
        "b", "kubernetes.io/dockercfg", ".dockercfg", auths)) == {"auths": auths}
    assert kube.docker_config_of_secret(_secret("c", "Opaque", ".dockerconfigjson", {})) is None
    assert kube.docker_config_of_secret({"type": "kubernetes.io/dockerconfigjson",
                                         "data": {".dockerconfigjson": "%%"}}) is None


def test_lookups_answer_with_the_first_that_knows() -> None:
    first = documents_lookup([{"auths": {"a.test": {"username": "1", "password": "x"}}}])
    second = documents_lookup([{"auths": {"a.test": {"username": "2", "password": "y"}}},
                               {"auths": {"b.test": {"username": "3", "password": "z"}}}])
    lookup = first_credentials(first, second)
    assert (lookup("a.test"), lookup("b.test"), lookup("c.test")) == (
        Credentials("1", "x"), Credentials("3", "z"), None)


async def test_the_registry_client_reads_the_flag_and_service_account_secrets() -> None:
    cluster = FakeCluster()
    config = {"auths": {"r.test": {"username": "u", "password": "p"}}}
    cluster.secrets["flagged"] = _secret("flagged", "kubernetes.io/dockerconfigjson",
                                         ".dockerconfigjson", config)
    cluster.secrets["of-account"] = _secret("of-account", "kubernetes.io/dockercfg",
                                            ".dockercfg", config["auths"])
    cluster.service_accounts["default"] = {"imagePullSecrets": [
        {"name": "of-account"}, {"name": "missing"}]}
    assert await pull_secret_configs(cluster, SETTINGS) == [config, config]
    assert await pull_secret_configs(FakeCluster(), SETTINGS) == []


async def test_credentials_of_a_pull_go_into_one_secret_per_registry() -> None:
    cluster = FakeCluster()
    secrets = PullSecrets(cluster, SETTINGS)
    first, second = parse_reference("r.test/a:1"), parse_reference("r.test/b:1")
    await secrets.remember(first, Credentials("u", "p"))
    await secrets.remember(first, Credentials("u", "p"))
    await secrets.remember(second, Credentials("u", "new"))
    [name] = cluster.secrets
    assert secrets.of("r.test/a:1") == secrets.of("r.test/b:1") == (name,)
    assert secrets.of("r.test/c:1") == secrets.of("0123456789ab") == ()
    assert [call for call, _ in cluster.calls] == ["create_object", "replace_object"]
    held = kube.docker_config_of_secret(cluster.secrets[name])
    assert credentials_from_config(held, "r.test") == Credentials("u", "new")


@pytest.mark.parametrize("extra", [(), ("own",)])
def test_pods_name_the_flag_secrets_then_the_image_secrets(extra: tuple[str, ...]) -> None:
    spec = kube.ContainerSpec(container_id="c" * 64, name="x", image="r.test/a:1",
                              pull_secrets=extra)
    pod = kube.pod_manifest(spec, SETTINGS)["spec"]
    assert pod["imagePullSecrets"] == [{"name": n} for n in ("flagged", *extra)]
