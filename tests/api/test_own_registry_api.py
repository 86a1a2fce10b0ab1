"""With kubedock's own registry (``--registry``): what kubedock makes (builds, loads) is kept
there under names of its own, the nodes pull it from there, and clients see their names."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from clusterless import clusterless_engine
from fake_registry import FakeRegistry

from kubedock.api import create_app
from kubedock.engine import Engine, ImageStore, OwnRegistry, RegistrySource
from kubedock.registry import DOCKER_HUB, Platform, RegistryClient
from kubedock.registry._manifest import digest_of

sys.path.append(str(Path(__file__).resolve().parents[1] / "unit"))
from engine_fake import FakeCluster

OWN = OwnRegistry("registry.test", "kd")


@pytest.fixture
def fake() -> FakeRegistry:
    fake = FakeRegistry()
    fake.add_image("library/busybox", "1.36", {"Cmd": ["sh"]})
    return fake


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster(lag=0)


@pytest.fixture
async def engine(nursery: trio.Nursery, fake: FakeRegistry, cluster: FakeCluster
                 ) -> AsyncIterator[Engine]:
    async with httpx.AsyncClient(transport=fake.transport()) as registry_http:
        client = RegistryClient(registry_http, mirrors={DOCKER_HUB: "https://registry.test"})
        engine = clusterless_engine(nursery, cluster)
        await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
        engine.images = ImageStore(RegistrySource(client, Platform("linux", "amd64"), timeout=5),
                                   OWN)
        yield engine


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://docker") as http:
        yield http


def _context(dockerfile: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        archive.addfile(info, io.BytesIO(dockerfile))
    return buffer.getvalue()


async def _build(client: httpx.AsyncClient, *tags: str) -> str:
    answer = await client.post("/build", params={"t": list(tags)},
                               content=_context(b"FROM busybox:1.36\nENV BUILT=1\n"))
    lines = [json.loads(line) for line in answer.text.splitlines()]
    [image_id] = [line["aux"]["ID"] for line in lines if "aux" in line]
    return str(image_id)


async def _run(client: httpx.AsyncClient, engine: Engine, cluster: FakeCluster, image: str
               ) -> tuple[dict[str, Any], str]:
    """The container's inspect, and the image its pod names."""
    created = await client.post("/containers/create", json={"Image": image})
    assert created.status_code == 201, created.text
    container_id = created.json()["Id"]
    assert (await client.post(f"/containers/{container_id}/start")).status_code == 204
    pod = cluster.pods[str(engine.get(container_id).pod_name)]
    inspected = (await client.get(f"/containers/{container_id}/json")).json()
    return inspected, pod["spec"]["containers"][-1]["image"]


def _digest(fake: FakeRegistry, repository: str, tag: str) -> str:
    return digest_of(fake.manifests[(repository, tag)][0])


async def test_a_build_is_kept_in_kubedock_s_registry_and_runs_from_there(
        client: httpx.AsyncClient, engine: Engine, cluster: FakeCluster, fake: FakeRegistry
        ) -> None:
    image_id = await _build(client, "demo:1", "localhost/tc/built:1")
    assert ("kd/docker.io/library/demo", "1") in fake.manifests
    assert ("kd/localhost/tc/built", "1") in fake.manifests
    assert ("library/demo", "1") not in fake.manifests  # Docker Hub's name stays unpushed
    shown = (await client.get("/images/demo:1/json")).json()
    assert (shown["Id"], shown["RepoTags"], shown["RepoDigests"]) == (
        image_id, ["demo:1", "localhost/tc/built:1"], [])
    for name, repository in [("demo:1", "kd/docker.io/library/demo"),
                             ("localhost/tc/built:1", "kd/localhost/tc/built")]:
        inspected, pulled = await _run(client, engine, cluster, name)
        assert inspected["Config"]["Image"] == name
        assert inspected["Config"]["Env"][-1] == "BUILT=1"
        assert pulled == f"registry.test/{repository}@{_digest(fake, repository, '1')}"


async def test_an_untagged_build_is_kept_there_too(client: httpx.AsyncClient, engine: Engine,
                                                   cluster: FakeCluster,
                                                   fake: FakeRegistry) -> None:
    image_id = await _build(client)
    assert ("kd/docker.io/kubedock/untagged", image_id[7:19]) in fake.manifests
    _, pulled = await _run(client, engine, cluster, image_id[7:19])
    assert pulled.startswith("registry.test/kd/docker.io/kubedock/untagged@sha256:")


async def test_a_load_is_kept_there_and_rmi_deletes_it_there(
        client: httpx.AsyncClient, engine: Engine, cluster: FakeCluster, fake: FakeRegistry
        ) -> None:
    await client.post("/images/create", params={"fromImage": "busybox:1.36"})
    await client.post("/images/busybox:1.36/tag", params={"repo": "team/app", "tag": "2"})
    archive = (await client.get("/images/team/app:2/get")).content
    assert (await client.delete("/images/team/app:2")).status_code == 200
    loaded = await client.post("/images/load", content=archive)
    assert loaded.json() == {"stream": "Loaded image: team/app:2\n"}
    assert ("kd/docker.io/team/app", "2") in fake.manifests
    assert ("team/app", "2") not in fake.manifests
    inspected, pulled = await _run(client, engine, cluster, "team/app:2")
    assert inspected["Config"]["Image"] == "team/app:2"
    assert pulled.startswith("registry.test/kd/docker.io/team/app@sha256:")
    assert (await client.delete("/images/team/app:2", params={"force": "1"})).status_code == 200
    assert ("kd/docker.io/team/app", "2") not in fake.manifests


async def test_a_tag_runs_from_where_the_image_is_and_push_goes_where_it_says(
        client: httpx.AsyncClient, engine: Engine, cluster: FakeCluster, fake: FakeRegistry
        ) -> None:
    await _build(client, "demo:1")
    stored = _digest(fake, "kd/docker.io/library/demo", "1")
    tagged = await client.post("/images/demo:1/tag", params={"repo": "localhost/other"})
    assert tagged.status_code == 201
    inspected, pulled = await _run(client, engine, cluster, "localhost/other")
    assert inspected["Config"]["Image"] == "localhost/other"
    assert pulled == f"registry.test/kd/docker.io/library/demo@{stored}"
    await client.post("/images/demo:1/tag", params={"repo": "registry.test/team/demo", "tag": "3"})
    pushed = await client.post("/images/registry.test/team/demo/push", params={"tag": "3"})
    assert pushed.status_code == 200, pushed.text
    assert _digest(fake, "team/demo", "3") == stored
