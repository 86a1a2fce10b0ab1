"""kubedock with its own registry (``--registry``, the local cluster's, under a prefix of the
test's own): builds and loads are kept there and run from there, a tag runs, `docker rmi`
deletes there, an explicit push goes where it says; clients see their names, as the reference
engine shows them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubedock_server import Kubedock, docker_cli, docker_ok, start_kubedock, stop_kubedock

from kubedock.registry._manifest import ACCEPTED

pytestmark = pytest.mark.cluster

DOCKERFILE = 'FROM busybox:1.36\nCOPY hello.txt /\nCMD ["cat", "/hello.txt"]\n'


@pytest.fixture(scope="module")
def prefix(namespace: str) -> str:
    return namespace


@pytest.fixture(scope="module")
def kubedock(cluster: Any, namespace: str, rbac_kubeconfig: Path, current_images: None,
             prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubedock]:
    process, server = start_kubedock(
        cluster, namespace, tmp_path_factory.mktemp("own-registry"), "--port-forward",
        "--kubeconfig", str(rbac_kubeconfig), "--registry", f"{cluster.registry}/{prefix}")
    yield server
    assert stop_kubedock(process) == 128 + 15, server.log.read_text()[-4000:]


@pytest.fixture(scope="module")
def oracle(docker_oracle: str, kubedock: Kubedock) -> Kubedock:
    return Kubedock(docker_oracle, 0, "", "", kubedock.log, reference=True)


def _has_tag(cluster: Any, repository: str, tag: str) -> bool:
    request = urllib.request.Request(f"http://{cluster.registry}/v2/{repository}/manifests/{tag}",
                                     method="HEAD", headers={"Accept": ACCEPTED})
    try:
        with urllib.request.urlopen(request, timeout=10):
            return True
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise


def _shown(server: Kubedock, image: str) -> dict[str, Any]:
    """What clients read of an image and of a container made from it."""
    [document] = json.loads(docker_ok(server, "image", "inspect", image))
    container = docker_ok(server, "create", image).strip()
    try:
        [created] = json.loads(docker_ok(server, "container", "inspect", container))
    finally:
        docker_ok(server, "rm", container)
    return {"RepoTags": document["RepoTags"], "RepoDigests": document["RepoDigests"],
            "Config.Image": created["Config"]["Image"]}


def test_a_build_is_kept_there_runs_and_rmi_deletes_it(
        cluster: Any, kubedock: Kubedock, oracle: Kubedock, prefix: str, tmp_path: Path) -> None:
    tmp_path.joinpath("Dockerfile").write_text(DOCKERFILE)
    tmp_path.joinpath("hello.txt").write_text("built\n")
    tags = ("kdreg-built:1", "localhost/kdreg/built:1")
    for server in (kubedock, oracle):
        docker_ok(server, "build", *(f"-t{tag}" for tag in tags), str(tmp_path))
    for tag in tags:
        assert _shown(kubedock, tag) == _shown(oracle, tag)
        assert docker_ok(kubedock, "run", "--rm", tag) == "built\n"
    assert _has_tag(cluster, f"{prefix}/docker.io/library/kdreg-built", "1")
    assert _has_tag(cluster, f"{prefix}/localhost/kdreg/built", "1")
    assert not _has_tag(cluster, "library/kdreg-built", "1")  # Docker Hub's name: not pushed
    # The node pulls it from there, by digest (a tag there may be built anew).
    running = docker_ok(kubedock, "run", "-d", "localhost/kdreg/built:1", "sleep", "60").strip()
    images = cluster.kubectl("-n", kubedock.namespace, "get", "pods", "-o",
                             "jsonpath={.items[*].spec.containers[*].image}").stdout.split()
    docker_ok(kubedock, "rm", "-f", running)
    assert any(image.startswith(f"{cluster.registry}/{prefix}/localhost/kdreg/built@sha256:")
               for image in images), images
    for tag in tags:
        docker_ok(kubedock, "rmi", tag)
        docker_ok(oracle, "rmi", tag)
    assert not _has_tag(cluster, f"{prefix}/docker.io/library/kdreg-built", "1")
    assert not _has_tag(cluster, f"{prefix}/localhost/kdreg/built", "1")


def test_a_load_is_kept_there_and_runs(cluster: Any, kubedock: Kubedock, prefix: str,
                                       tmp_path: Path) -> None:
    archive = tmp_path / "saved.tar"
    docker_ok(kubedock, "pull", "busybox:1.36")
    docker_ok(kubedock, "tag", "busybox:1.36", "kdreg-loaded:1")
    docker_ok(kubedock, "save", "-o", str(archive), "kdreg-loaded:1")
    docker_ok(kubedock, "rmi", "kdreg-loaded:1")
    assert docker_ok(kubedock, "load", "-i", str(archive)) == "Loaded image: kdreg-loaded:1\n"
    assert _has_tag(cluster, f"{prefix}/docker.io/library/kdreg-loaded", "1")
    assert docker_ok(kubedock, "run", "--rm", "kdreg-loaded:1", "echo", "loaded") == "loaded\n"
    shown = _shown(kubedock, "kdreg-loaded:1")
    assert "kdreg-loaded:1" in shown["RepoTags"] and shown["Config.Image"] == "kdreg-loaded:1"
    assert not [digest for digest in shown["RepoDigests"] if "kdreg" in digest]
    docker_ok(kubedock, "rmi", "kdreg-loaded:1")
    assert not _has_tag(cluster, f"{prefix}/docker.io/library/kdreg-loaded", "1")


def test_a_tag_runs_and_shows_its_name(cluster: Any, kubedock: Kubedock, oracle: Kubedock
                                       ) -> None:
    # The reference engine pulls the same image by the registry's address.
    for server, source in [(kubedock, "busybox:1.36"),
                           (oracle, f"{cluster.registry}/library/busybox:1.36")]:
        docker_ok(server, "pull", source)
        docker_ok(server, "tag", source, "localhost/kdreg-tag:1")
    shown, expected = _shown(kubedock, "localhost/kdreg-tag:1"), \
        _shown(oracle, "localhost/kdreg-tag:1")
    assert shown["Config.Image"] == expected["Config.Image"] == "localhost/kdreg-tag:1"
    assert "localhost/kdreg-tag:1" in shown["RepoTags"]
    assert docker_ok(kubedock, "run", "--rm", "localhost/kdreg-tag:1", "echo", "tagged") \
        == "tagged\n"
    for server in (kubedock, oracle):
        docker_ok(server, "rmi", "localhost/kdreg-tag:1")


def test_a_push_to_a_named_registry_goes_there(cluster: Any, kubedock: Kubedock, prefix: str,
                                               tmp_path: Path) -> None:
    tmp_path.joinpath("Dockerfile").write_text(DOCKERFILE)
    tmp_path.joinpath("hello.txt").write_text("pushed\n")
    docker_ok(kubedock, "build", "-t", "kdreg-push:1", str(tmp_path))
    target = f"{cluster.registry}/{prefix}-pushed/app:1"
    docker_ok(kubedock, "tag", "kdreg-push:1", target)
    pushed = docker_cli(kubedock, "push", target)
    assert pushed.returncode == 0, pushed.stderr
    assert _has_tag(cluster, f"{prefix}-pushed/app", "1")
    assert docker_ok(kubedock, "run", "--rm", target) == "pushed\n"
    for name in (target, "kdreg-push:1"):
        docker_ok(kubedock, "rmi", name)
    assert not _has_tag(cluster, f"{prefix}-pushed/app", "1")
