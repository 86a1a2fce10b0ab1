"""Images through the cluster's registry: real pulls, the image config, and what containers
take from it, compared with the reference engine where Docker is the spec."""

from __future__ import annotations

import functools
import io
import json
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from typing import Any

import docker
import docker.errors
import httpx
import pytest
import trio
from kubedock_server import Kubedock, docker_cli, start_kubedock, stop_kubedock, until_logged

from kubedock.registry import (
    DOCKER_HUB,
    RegistryClient,
    Repository,
    host_platform_of_this_machine,
)
from kubedock.registry._manifest import ACCEPTED, OCI_MANIFEST, digest_of, parse_json

pytestmark = pytest.mark.cluster


def _registry_digest(cluster: Any, path: str, tag: str) -> str:
    request = urllib.request.Request(f"http://{cluster.registry}/v2/{path}/manifests/{tag}",
                                     method="HEAD", headers={"Accept": ACCEPTED})
    with urllib.request.urlopen(request, timeout=10) as response:
        digest: str = response.headers["Docker-Content-Digest"]
        return digest


def test_pull_gives_the_digest_the_registry_serves(cluster: Any, kubedock: Kubedock) -> None:
    pulled = docker_cli(kubedock, "pull", "busybox:1.36")
    assert pulled.returncode == 0, pulled.stderr
    digest = _registry_digest(cluster, "library/busybox", "1.36")
    assert f"Digest: {digest}" in pulled.stdout.decode()
    shown = docker_cli(kubedock, "image", "inspect", "busybox:1.36",
                       "--format", "{{json .RepoDigests}}")
    assert json.loads(shown.stdout) == [f"busybox@{digest}"]


@pytest.mark.parametrize("image", ["busybox:1.36", "nginx:1.27", "redis:7"])
def test_inspect_tells_the_config_the_reference_engine_tells(
        kubedock: Kubedock, docker_oracle: str, image: str) -> None:
    oracle = Kubedock(docker_oracle, 0, "", "", kubedock.log, reference=True)
    assert docker_cli(kubedock, "pull", image).returncode == 0

    def shown(server: Kubedock) -> dict[str, Any]:
        done = docker_cli(server, "image", "inspect", image)
        assert done.returncode == 0, done.stderr
        [document] = json.loads(done.stdout)
        return {key: document[key] for key in ("Id", "Config", "Architecture", "Os", "RootFS")}

    assert shown(kubedock) == shown(oracle)


def test_pull_of_a_missing_tag_fails_as_docker_does(
        cluster: Any, kubedock: Kubedock, docker_oracle: str) -> None:
    # The reference engine asks the same registry by its address: only the name differs.
    oracle = Kubedock(docker_oracle, 0, "", "", kubedock.log, reference=True)
    expected = docker_cli(oracle, "pull", f"{cluster.registry}/library/busybox:nope")
    got = docker_cli(kubedock, "pull", "busybox:nope")
    assert (got.returncode, expected.returncode) == (1, 1)
    assert got.stderr.decode() == expected.stderr.decode().replace(
        f"{cluster.registry}/library/busybox", "busybox")


def test_pull_of_a_missing_repository_fails_as_docker_hub_does(kubedock: Kubedock) -> None:
    # The reference engine cannot reach Docker Hub; this is Docker's text for Hub's refusal.
    got = docker_cli(kubedock, "pull", "nosuch:1")
    assert got.returncode == 1
    assert got.stderr.decode() == (
        "Error response from daemon: pull access denied for nosuch, repository does not exist "
        "or may require 'docker login': denied: requested access to the resource is denied\n")


def test_run_of_a_missing_image_fails_at_the_pull(client: docker.DockerClient) -> None:
    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.run("nosuch:1", ["true"])
    assert not client.containers.list(all=True, filters={"ancestor": "nosuch:1"})


async def _push_busybox_with(registry: str, name: str, defaults: dict[str, Any]) -> str:
    """busybox:1.36 with more image `defaults` (its layers), as <registry>/<name>:1.

    Named by the registry's address, which the node's containerd reaches as a loopback
    registry (plain http) whether or not it reads the mirror configuration for docker.io."""
    async with httpx.AsyncClient(timeout=30) as http:
        client = RegistryClient(http, mirrors={DOCKER_HUB: f"http://{registry}"})
        source, target = Repository(DOCKER_HUB, "library/busybox"), Repository(registry, name)
        resolved = await client.resolve(source, "1.36", host_platform_of_this_machine())
        config = parse_json(await client.blob(source, resolved.manifest.config.digest), "config")
        config["config"].update(defaults)
        config_data = json.dumps(config).encode()

        async def once(data: bytes) -> Any:
            yield data

        for layer in resolved.manifest.layers:
            if not await client.has_blob(target, layer.digest):
                await client.push_blob(target, layer.digest, layer.size, once(
                    await client.blob(source, layer.digest)))
        await client.push_blob(target, digest_of(config_data), len(config_data),
                               once(config_data))
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": digest_of(config_data), "size": len(config_data)},
                    "layers": [{"mediaType": layer.media_type, "digest": layer.digest,
                                "size": layer.size} for layer in resolved.manifest.layers]}
        await client.push_manifest(target, "1", json.dumps(manifest).encode(), OCI_MANIFEST)
    return f"{registry}/{name}:1"


def test_the_image_healthcheck_runs(cluster: Any, client: docker.DockerClient) -> None:
    image = trio.run(_push_busybox_with, cluster.registry, "kubedock/healthy", {
        "Healthcheck": {"Test": ["CMD-SHELL", "test -f /tmp/ready"], "Interval": 1_000_000_000,
                        "Retries": 2}})
    container = client.containers.run(
        image,
        ["sh", "-c", "sleep 2; touch /tmp/ready; sleep 300"], detach=True)
    try:
        deadline = time.monotonic() + 60
        status = ""
        while time.monotonic() < deadline and status != "healthy":
            time.sleep(0.5)
            status = client.api.inspect_container(container.id)["State"]["Health"]["Status"]
        assert status == "healthy"
        assert client.api.inspect_container(container.id)["Config"]["Healthcheck"]["Test"] == \
            ["CMD-SHELL", "test -f /tmp/ready"]
    finally:
        container.remove(force=True)


def test_stop_delivers_the_image_stop_signal_as_docker_does(
        cluster: Any, kubedock: Kubedock, docker_oracle: str) -> None:
    image = trio.run(_push_busybox_with, cluster.registry, "kubedock/stop-usr1",
                     {"StopSignal": "SIGUSR1"})
    script = 'trap "echo got usr1; exit 5" USR1; echo ready; while true; do sleep 0.1; done'
    for server in (kubedock, Kubedock(docker_oracle, 0, "", "", kubedock.log, reference=True)):
        started = docker_cli(server, "run", "-d", image, "sh", "-c", script)
        assert started.returncode == 0, started.stderr
        container = started.stdout.decode().strip()
        try:
            until_logged(server, container, b"ready\n")  # the trap is set
            assert docker_cli(server, "stop", container).returncode == 0
            [document] = json.loads(docker_cli(server, "inspect", container).stdout)
            assert (document["Config"]["StopSignal"], document["State"]["ExitCode"]) == \
                ("SIGUSR1", 5)
            assert docker_cli(server, "logs", container).stdout == b"ready\ngot usr1\n"
        finally:
            docker_cli(server, "rm", "-f", container)


def test_publish_all_publishes_the_image_ports(client: docker.DockerClient) -> None:
    container = client.containers.run("nginx:1.27", detach=True, publish_all_ports=True)
    try:
        ports = client.api.inspect_container(container.id)["NetworkSettings"]["Ports"]
        [binding, *_] = ports["80/tcp"]
        url = f"http://127.0.0.1:{binding['HostPort']}/"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        container.remove(force=True)


def test_container_inspect_shows_the_image_defaults(client: docker.DockerClient) -> None:
    container = client.containers.create("redis:7")
    try:
        config = client.api.inspect_container(container.id)["Config"]
        image = client.api.inspect_image("redis:7")["Config"]
        assert config["Env"] == image["Env"]
        assert (config["WorkingDir"], config["User"]) == (image["WorkingDir"], image["User"])
        assert config["Entrypoint"] == image["Entrypoint"]
        assert config["Cmd"] == image["Cmd"]
    finally:
        container.remove(force=True)


def test_tag_push_and_run_the_pushed_tag(cluster: Any, kubedock: Kubedock) -> None:
    target = f"{cluster.registry}/kd-pushed/busybox:{int(time.time() * 1000)}"
    assert docker_cli(kubedock, "pull", "busybox:1.36").returncode == 0
    tagged = docker_cli(kubedock, "tag", "busybox:1.36", target)
    assert tagged.returncode == 0, tagged.stderr
    pushed = docker_cli(kubedock, "push", target)
    assert pushed.returncode == 0, pushed.stderr
    repository, _, tag = target.rpartition(":")
    digest = _registry_digest(cluster, repository.partition("/")[2], tag)
    assert f"{tag}: digest: {digest}" in pushed.stdout.decode()
    ran = docker_cli(kubedock, "run", "--rm", target, "echo", "pushed and pulled")
    assert (ran.returncode, ran.stdout) == (0, b"pushed and pulled\n"), ran.stderr
    removed = docker_cli(kubedock, "rmi", target)
    assert removed.returncode == 0, removed.stderr
    with pytest.raises(urllib.error.HTTPError) as gone:
        _registry_digest(cluster, repository.partition("/")[2], tag)
    gone.value.close()
    assert gone.value.code == 404  # a pushed tag is deleted in its registry
    assert _registry_digest(cluster, "library/busybox", "1.36") == digest


def test_save_from_docker_then_load_and_run(cluster: Any, kubedock: Kubedock,
                                            docker_oracle: str) -> None:
    oracle = Kubedock(docker_oracle, 0, "", "", kubedock.log, reference=True)
    name = f"{cluster.registry}/kd-loaded/busybox:{int(time.time() * 1000)}"
    assert docker_cli(oracle, "tag", "busybox:1.36", name).returncode == 0
    try:
        saved = docker_cli(oracle, "save", name)
        assert saved.returncode == 0, saved.stderr
    finally:
        docker_cli(oracle, "rmi", name)
    loaded = docker_cli(kubedock, "load", input=saved.stdout)
    assert (loaded.returncode, loaded.stdout) == (0, f"Loaded image: {name}\n".encode()), \
        loaded.stderr
    ran = docker_cli(kubedock, "run", "--rm", name, "echo", "loaded")
    assert (ran.returncode, ran.stdout) == (0, b"loaded\n"), ran.stderr


def _archive(data: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
                for m in tar.getmembers()}


def _shape(members: dict[str, bytes | None]) -> dict[str, Any]:
    """What a loader reads of an archive, with layer directories named by position."""
    manifest = json.loads(members["manifest.json"] or b"")
    directories = {layer.split("/")[0]: f"layer{index}" for entry in manifest
                   for index, layer in enumerate(entry["Layers"])}
    return {
        "names": sorted(functools.reduce(lambda name, item: name.replace(*item),
                                         directories.items(), name) for name in members),
        "manifest": [{**entry, "Layers": [digest_of(members[layer] or b"")
                                          for layer in entry["Layers"]]} for entry in manifest],
        "configs": {entry["Config"]: members[entry["Config"]] for entry in manifest},
        "repositories": {repository: {tag: directories[top] for tag, top in tags.items()}
                         for repository, tags in json.loads(members["repositories"] or b"")
                         .items()},
    }


def test_save_writes_what_the_reference_engine_writes(kubedock: Kubedock,
                                                      docker_oracle: str) -> None:
    oracle = Kubedock(docker_oracle, 0, "", "", kubedock.log, reference=True)
    assert docker_cli(kubedock, "pull", "busybox:1.36").returncode == 0
    saved = {server: docker_cli(server, "save", "busybox:1.36") for server in (kubedock, oracle)}
    for done in saved.values():
        assert done.returncode == 0, done.stderr
    assert _shape(_archive(saved[kubedock].stdout)) == _shape(_archive(saved[oracle].stdout))


def test_save_then_load_round_trips(cluster: Any, kubedock: Kubedock, docker_oracle: str) -> None:
    oracle = Kubedock(docker_oracle, 0, "", "", kubedock.log, reference=True)
    name = f"{cluster.registry}/kd-saved/busybox:{int(time.time() * 1000)}"
    assert docker_cli(kubedock, "pull", "busybox:1.36").returncode == 0
    assert docker_cli(kubedock, "tag", "busybox:1.36", name).returncode == 0
    saved = docker_cli(kubedock, "save", name)
    assert saved.returncode == 0, saved.stderr
    assert docker_cli(kubedock, "rmi", name).returncode == 0
    for server in (kubedock, oracle):
        loaded = docker_cli(server, "load", input=saved.stdout)
        assert (loaded.returncode, loaded.stdout) == (0, f"Loaded image: {name}\n".encode()), \
            loaded.stderr
        ran = docker_cli(server, "run", "--rm", name, "echo", "saved and loaded")
        assert (ran.returncode, ran.stdout) == (0, b"saved and loaded\n"), ran.stderr
    docker_cli(oracle, "rmi", name)


def test_docker_py_saves_an_image(client: docker.DockerClient) -> None:
    image = client.images.pull("busybox", tag="1.36")
    members = _archive(b"".join(image.save(named="busybox:1.36")))
    [entry] = json.loads(members["manifest.json"] or b"")
    assert (entry["RepoTags"], entry["Config"]) == (["busybox:1.36"], f"{image.id[7:]}.json")


def test_pre_pull_leaves_the_image_on_the_node(cluster: Any, namespace: str,
                                               rbac_kubeconfig: Any, kubedock: Kubedock,
                                               tmp_path: Any) -> None:
    name = f"{cluster.registry}/kd-prepulled/busybox:{int(time.time() * 1000)}"
    assert docker_cli(kubedock, "pull", "busybox:1.36").returncode == 0
    assert docker_cli(kubedock, "tag", "busybox:1.36", name).returncode == 0
    assert docker_cli(kubedock, "push", name).returncode == 0
    process, server = start_kubedock(cluster, namespace, tmp_path, "--port-forward",
                                     "--kubeconfig", str(rbac_kubeconfig), "--pre-pull")
    try:
        pulled = docker_cli(server, "pull", name)
        assert pulled.returncode == 0, pulled.stderr
        assert "Pulled onto the node" in pulled.stdout.decode()
        crictl = [str(cluster.kubectl_path.parent / "crictl"), "--runtime-endpoint",
                  "unix:///run/containerd/containerd.sock", "images", "-q", name]
        on_node = subprocess.run(crictl, capture_output=True, text=True, check=True)
        assert on_node.stdout.strip(), "the node does not have the image"
        left = cluster.kubectl("-n", namespace, "get", "pods", "-l", "kubedock.prepull=true",
                               "-o", "name").stdout
        assert left == ""
    finally:
        assert stop_kubedock(process) == 128 + 15, server.log.read_text()[-4000:]
