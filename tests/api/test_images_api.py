"""Pulls, inspect and list against a registry (in memory), and what containers take from it."""

from __future__ import annotations

import base64
import io
import json
import sys
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from clusterless import clusterless_engine
from fake_registry import FakeRegistry

from kubedock.api import create_app
from kubedock.engine import Engine, ImageStore, PrePuller, RegistrySource
from kubedock.registry import DOCKER_HUB, Platform, RegistryClient
from kubedock.registry._manifest import digest_of

sys.path.append(str(Path(__file__).resolve().parents[1] / "unit"))
from engine_fake import PULL_FAILS, FakeCluster

HEALTHY = {"Test": ["CMD-SHELL", "test -f /ready"], "Interval": 2_000_000_000, "Retries": 4}
BUSYBOX = {"Env": ["PATH=/bin", "HOME=/root"], "Cmd": ["sh"], "WorkingDir": "/work",
           "User": "1000", "ExposedPorts": {"8080/tcp": {}, "9090/udp": {}},
           "Healthcheck": HEALTHY, "Labels": {"org.test": "yes"}, "StopSignal": "SIGQUIT"}


@pytest.fixture
def fake() -> FakeRegistry:
    fake = FakeRegistry()
    fake.add_image("library/busybox", "1.36", BUSYBOX)
    amd64 = fake.add_image("library/multi", "arch-amd64", {"Cmd": ["amd64"]})
    arm64 = fake.add_image("library/multi", "arch-arm64", {"Cmd": ["arm64"]}, "arm64")
    fake.add_index("library/multi", "1", {"arm64": arm64, "amd64": amd64})
    fake.add_image("team/secret", "1", {"Cmd": ["s"]})
    fake.private["team/secret"] = "user:pw"
    return fake


@pytest.fixture
async def registry_http(fake: FakeRegistry) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        yield http


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster(lag=0)


@pytest.fixture
def engine(nursery: trio.Nursery, registry_http: httpx.AsyncClient,
           cluster: FakeCluster) -> Engine:
    client = RegistryClient(registry_http, mirrors={DOCKER_HUB: "https://registry.test"})
    images = ImageStore(RegistrySource(client, Platform("linux", "amd64"), timeout=5))
    engine = clusterless_engine(nursery, cluster)
    engine.images = images
    return engine


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://docker") as http:
        yield http


def _lines(response: httpx.Response) -> list[dict[str, object]]:
    return [json.loads(line) for line in response.text.splitlines()]


async def test_pull_reports_the_registry_digest(client: httpx.AsyncClient,
                                                fake: FakeRegistry) -> None:
    digest = digest_of(fake.manifests[("library/busybox", "1.36")][0])
    first = await client.post("/images/create", params={"fromImage": "busybox", "tag": "1.36"})
    assert first.status_code == 200
    assert _lines(first) == [
        {"status": "Pulling from library/busybox", "id": "1.36"},
        {"status": f"Digest: {digest}"},
        {"status": "Status: Downloaded newer image for busybox:1.36"},
    ]
    asked = len(fake.requests)
    again = await client.post("/images/create", params={"fromImage": "busybox:1.36"})
    assert _lines(again)[-1] == {"status": "Status: Image is up to date for busybox:1.36"}
    # The tag still names the known manifest: one question, with the token got before.
    assert fake.requests[asked:] == ["GET /v2/library/busybox/manifests/1.36"]


async def test_inspect_and_list_tell_the_image_config(client: httpx.AsyncClient,
                                                      fake: FakeRegistry) -> None:
    await client.post("/images/create", params={"fromImage": "busybox:1.36"})
    manifest = json.loads(fake.manifests[("library/busybox", "1.36")][0])
    config = json.loads(fake.blobs[manifest["config"]["digest"]])
    image = (await client.get("/images/busybox:1.36/json")).json()
    assert image["Id"] == manifest["config"]["digest"]
    assert image["RepoTags"] == ["busybox:1.36"]
    assert image["RepoDigests"] == [
        "busybox@" + digest_of(fake.manifests[("library/busybox", "1.36")][0])]
    assert (image["Architecture"], image["Os"]) == ("amd64", "linux")
    assert image["Size"] == manifest["layers"][0]["size"]
    assert image["RootFS"] == {"Type": "layers", "Layers": config["rootfs"]["diff_ids"]}
    assert image["Config"]["Healthcheck"] == HEALTHY
    assert image["Config"]["Env"] == BUSYBOX["Env"]
    assert image["Config"]["User"] == "1000"
    assert (await client.get(f"/images/{image['Id'][7:19]}/json")).json()["Id"] == image["Id"]
    [listed] = (await client.get("/images/json")).json()
    assert (listed["Id"], listed["RepoTags"], listed["Labels"]) == (
        image["Id"], ["busybox:1.36"], {"org.test": "yes"})
    labelled = await client.get("/images/json",
                                params={"filters": json.dumps({"label": ["org.test=no"]})})
    assert labelled.json() == []


async def test_a_multi_platform_image_resolves_for_the_nodes(client: httpx.AsyncClient,
                                                             fake: FakeRegistry) -> None:
    response = await client.post("/images/create", params={"fromImage": "multi:1"})
    index_digest = digest_of(fake.manifests[("library/multi", "1")][0])
    assert {"status": f"Digest: {index_digest}"} in _lines(response)
    image = (await client.get("/images/multi:1/json")).json()
    assert image["Config"]["Cmd"] == ["amd64"]
    assert image["RepoDigests"] == [f"multi@{index_digest}"]


@pytest.mark.parametrize(("reference", "message"), [
    ("busybox:nope", "manifest for busybox:nope not found: manifest unknown: manifest unknown"),
    ("nosuch:1", "pull access denied for nosuch, repository does not exist or may require "
     "'docker login': denied: requested access to the resource is denied"),
    ("team/secret:1", "pull access denied for team/secret, repository does not exist or may "
     "require 'docker login': unauthorized: authentication required"),
])
async def test_pulls_of_what_the_registry_lacks_fail_as_docker_does(
        client: httpx.AsyncClient, reference: str, message: str) -> None:
    response = await client.post("/images/create", params={"fromImage": reference})
    assert (response.status_code, response.json()) == (404, {"message": message})


def _registry_auth(username: str, password: str) -> dict[str, str]:
    return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(
        {"username": username, "password": password, "serveraddress": "docker.io"}).encode()
    ).decode()}


async def test_credentials_from_x_registry_auth(client: httpx.AsyncClient) -> None:
    response = await client.post("/images/create", params={"fromImage": "team/secret:1"},
                                 headers=_registry_auth("user", "pw"))
    assert response.status_code == 200, response.text
    assert (await client.get("/images/team/secret:1/json")).json()["Config"]["Cmd"] == ["s"]


async def test_a_pull_with_credentials_gives_the_pods_of_the_image_a_pull_secret(
        client: httpx.AsyncClient, engine: Engine, cluster: FakeCluster,
        nursery: trio.Nursery) -> None:
    await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
    for _ in range(2):
        response = await client.post("/images/create", params={"fromImage": "team/secret:1"},
                                     headers=_registry_auth("user", "pw"))
        assert response.status_code == 200, response.text
    [(name, secret)] = cluster.secrets.items()
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["labels"] == {"kubedock": "true", "kubedock.id": "i"}
    held = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert held["auths"]["https://index.docker.io/v1/"]["username"] == "user"
    # The same credentials again ask nothing of the cluster.
    assert [call for call, _ in cluster.calls if call.endswith("_object")] == ["create_object"]
    with_secret = await client.post("/containers/create", json={"Image": "team/secret:1"})
    without = await client.post("/containers/create", json={"Image": "busybox:1.36"})
    for created, expected in ((with_secret, [{"name": name}]), (without, None)):
        container = engine.get(created.json()["Id"])
        assert (await client.post(f"/containers/{container.id}/start")).status_code == 204
        assert container.pod_name is not None
        assert cluster.pods[container.pod_name]["spec"].get("imagePullSecrets") == expected


async def test_create_of_an_image_the_registry_lacks_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/containers/create", json={"Image": "nosuch:1"})
    assert (response.status_code, response.json()) == (404, {"message": "No such image: nosuch:1"})


async def test_a_container_takes_the_image_defaults(client: httpx.AsyncClient,
                                                    engine: Engine) -> None:
    created = await client.post("/containers/create", json={
        "Image": "busybox:1.36", "Env": ["HOME=/elsewhere", "X=1"],
        "HostConfig": {"PublishAllPorts": True}})
    assert created.status_code == 201, created.text
    container = engine.get(created.json()["Id"])
    assert container.config.healthcheck is not None
    assert container.config.healthcheck.test == ("CMD-SHELL", "test -f /ready")
    assert container.config.stop_signal == "SIGQUIT"
    assert (container.config.healthcheck.interval, container.config.healthcheck.retries) == (2, 4)
    assert {(p.port, p.protocol) for p in container.config.ports} == {(8080, "tcp"),
                                                                     (9090, "udp")}
    document = (await client.get(f"/containers/{container.id}/json")).json()
    config = document["Config"]
    assert config["Env"] == ["HOME=/elsewhere", "X=1", "PATH=/bin"]
    assert (config["Cmd"], config["WorkingDir"], config["User"]) == (["sh"], "/work", "1000")
    assert config["Healthcheck"] == HEALTHY
    assert config["Labels"] == {"org.test": "yes"}
    assert (document["Path"], document["Args"]) == ("sh", [])
    image = (await client.get("/images/busybox:1.36/json")).json()
    assert document["Image"] == image["Id"]


async def test_without_publish_all_only_the_requested_ports(client: httpx.AsyncClient,
                                                            engine: Engine) -> None:
    created = await client.post("/containers/create", json={
        "Image": "busybox:1.36", "Healthcheck": {"Test": ["NONE"]}})
    container = engine.get(created.json()["Id"])
    assert container.config.ports == ()
    assert container.config.healthcheck is None


async def test_list_and_inspect_show_the_images_ports_unpublished(client: httpx.AsyncClient
                                                                  ) -> None:
    """As Docker does, and `docker compose ps` shows: postgres lists 5432/tcp."""
    created = await client.post("/containers/create", json={
        "Image": "busybox:1.36", "Cmd": ["sh", "-c", "echo a b"],
        "ExposedPorts": {"8080/tcp": {}, "7070/tcp": {}}})
    document = (await client.get(f"/containers/{created.json()['Id']}/json")).json()
    assert document["NetworkSettings"]["Ports"] == {
        "8080/tcp": None, "7070/tcp": None, "9090/udp": None}
    [listed] = (await client.get("/containers/json", params={"all": "1"})).json()
    assert sorted(listed["Ports"], key=lambda port: port["PrivatePort"]) == [
        {"PrivatePort": 7070, "Type": "tcp"}, {"PrivatePort": 8080, "Type": "tcp"},
        {"PrivatePort": 9090, "Type": "udp"}]
    assert listed["Command"] == "sh -c 'echo a b'"
    assert listed["Status"] == "Created"


async def test_an_unreachable_registry_leaves_the_pull_to_the_node(nursery: trio.Nursery
                                                                   ) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        engine = clusterless_engine(nursery)
        engine.images = ImageStore(RegistrySource(RegistryClient(http), Platform("linux", "amd64"),
                                                  timeout=5))
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://docker") as client:
            pulled = await client.post("/images/create", params={"fromImage": "redis:7"})
            assert pulled.status_code == 200
            assert "the node pulls the image" in pulled.text
            assert _lines(pulled)[-1] == {"status": "Status: Image is up to date for redis:7"}
            created = await client.post("/containers/create", json={"Image": "other:1"})
            assert created.status_code == 201


async def test_a_registry_that_hangs_fails_the_pull_in_bounded_time(nursery: trio.Nursery
                                                                    ) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await trio.sleep_forever()
        raise AssertionError

    async with httpx.AsyncClient(transport=httpx.MockTransport(hang)) as http:
        engine = clusterless_engine(nursery)
        engine.images = ImageStore(RegistrySource(RegistryClient(http), Platform("linux", "amd64"),
                                                  timeout=0.2))
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://docker") as client:
            pulled = await client.post("/images/create", params={"fromImage": "redis:7"})
    assert (pulled.status_code, pulled.json()) == (500, {"message": (
        "pulling redis:7: the registry https://registry-1.docker.io did not answer within 0.2s")})


async def test_create_by_image_id(client: httpx.AsyncClient, engine: Engine) -> None:
    await client.post("/images/create", params={"fromImage": "busybox:1.36"})
    image_id = (await client.get("/images/busybox:1.36/json")).json()["Id"]
    for name in (image_id, image_id[7:19]):
        created = await client.post("/containers/create", json={"Image": name})
        assert created.status_code == 201, created.text
        assert engine.get(created.json()["Id"]).config.healthcheck is not None
    unknown = await client.post("/containers/create", json={"Image": "0123456789ab"})
    assert unknown.status_code == 201  # the node's business, as before


async def test_tag_then_push_copies_the_image(client: httpx.AsyncClient,
                                              fake: FakeRegistry) -> None:
    await client.post("/images/create", params={"fromImage": "busybox:1.36"})
    tagged = await client.post("/images/busybox:1.36/tag",
                               params={"repo": "team/copy", "tag": "2"})
    assert tagged.status_code == 201
    copy = (await client.get("/images/team/copy:2/json")).json()
    assert (copy["RepoTags"], copy["RepoDigests"]) == (
        ["busybox:1.36", "team/copy:2"], [f"busybox@{_busybox_digest(fake)}"])
    pushed = await client.post("/images/team/copy/push", params={"tag": "2"})
    assert pushed.status_code == 200, pushed.text
    digest = _busybox_digest(fake)
    assert _lines(pushed)[-2:] == [
        {"status": f"2: digest: {digest} size: "
                   f"{len(fake.manifests[('library/busybox', '1.36')][0])}"},
        {"progressDetail": {}, "aux": {"Tag": "2", "Digest": digest, "Size": len(
            fake.manifests[("library/busybox", "1.36")][0])}}]
    assert fake.manifests[("team/copy", "2")] == fake.manifests[("library/busybox", "1.36")]
    again = (await client.get("/images/team/copy:2/json")).json()
    assert again["RepoDigests"] == [f"busybox@{digest}", f"team/copy@{digest}"]


async def test_info_counts_images_not_their_tags(client: httpx.AsyncClient) -> None:
    await client.post("/images/create", params={"fromImage": "busybox:1.36"})
    await client.post("/images/busybox:1.36/tag", params={"repo": "team/copy", "tag": "2"})
    listed = (await client.get("/images/json")).json()
    info = (await client.get("/info")).json()
    assert info["Images"] == len(listed) == 1


async def test_push_of_an_unknown_tag(client: httpx.AsyncClient) -> None:
    response = await client.post("/images/team/none/push", params={"tag": "1"})
    assert (response.status_code, response.json()) == (404, {
        "message": "An image does not exist locally with the tag: team/none"})
    response = await client.post("/images/busybox:9/tag", params={"repo": "x", "tag": "1"})
    assert (response.status_code, response.json()) == (404, {
        "message": "No such image: busybox:9"})


def _busybox_digest(fake: FakeRegistry) -> str:
    return digest_of(fake.manifests[("library/busybox", "1.36")][0])


def _saved_archive(tag: str, layer: bytes) -> bytes:
    """A `docker save` archive of one image with one layer."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["loaded"]},
                         "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]}}).encode()
    members = {"c.json": config, "l/layer.tar": layer, "manifest.json": json.dumps(
        [{"Config": "c.json", "RepoTags": [tag], "Layers": ["l/layer.tar"]}]).encode()}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


async def test_load_pushes_the_archive_then_knows_it(client: httpx.AsyncClient,
                                                     fake: FakeRegistry) -> None:
    loaded = await client.post("/images/load",
                               content=_saved_archive("team/loaded:1", b"layer bytes"))
    assert loaded.status_code == 200, loaded.text
    assert _lines(loaded) == [{"stream": "Loaded image: team/loaded:1\n"}]
    assert fake.blobs[digest_of(b"layer bytes")] == b"layer bytes"
    image = (await client.get("/images/team/loaded:1/json")).json()
    assert image["Config"]["Cmd"] == ["loaded"]


async def test_load_of_a_corrupt_archive_pushes_nothing(client: httpx.AsyncClient,
                                                        fake: FakeRegistry) -> None:
    before = dict(fake.manifests)
    for body in (b"not a tar", _saved_archive("team/bad:1", b"x")[:700]):
        response = await client.post("/images/load", content=body)
        # As Docker: the answer is 200, the failure its one line.
        assert response.status_code == 200, response.text
        [line] = _lines(response)
        assert str(line["error"]).startswith("invalid image archive: ")
    assert fake.manifests == before


async def test_an_untagged_image_loads_when_kubedock_knows_its_id(client: httpx.AsyncClient
                                                                  ) -> None:
    await client.post("/images/create", params={"fromImage": "busybox:1.36"})
    image_id = (await client.get("/images/busybox:1.36/json")).json()["Id"]
    saved = await client.get(f"/images/{image_id}/get")
    loaded = await client.post("/images/load", content=saved.content)
    assert _lines(loaded) == [{"stream": f"Loaded image ID: {image_id}\n"}]
    assert (await client.delete("/images/busybox:1.36")).status_code == 200
    unknown = await client.post("/images/load", content=saved.content)
    assert _lines(unknown)[0]["error"] == (
        f"{image_id} has no tag in the archive: kubedock keeps images in registries, by name "
        "(save it by name)")


@pytest.mark.parametrize(("image_signal", "requested", "expected"), [
    ("SIGQUIT", "SIGUSR1", "SIGUSR1"), ("SIGRTMIN+3", None, None), ("", None, None)])
async def test_the_stop_signal_of_the_request_wins_over_the_image(
        client: httpx.AsyncClient, engine: Engine, fake: FakeRegistry, image_signal: str,
        requested: str | None, expected: str | None) -> None:
    fake.add_image("team/signals", "1", {"Cmd": ["s"], "StopSignal": image_signal})
    body = {"Image": "team/signals:1", **({"StopSignal": requested} if requested else {})}
    created = await client.post("/containers/create", json=body)
    assert created.status_code == 201, created.text
    assert engine.get(created.json()["Id"]).config.stop_signal == expected


def _members(archive: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
                for m in tar.getmembers()}


async def test_save_writes_the_layout_docker_writes(client: httpx.AsyncClient,
                                                    fake: FakeRegistry) -> None:
    base, top = b"base layer", b"top layer"
    fake.add_image("team/two", "1", {"Cmd": ["two"]}, layers=[base, top], gzipped=True)
    fake.add_image("team/two", "base", {"Cmd": ["base"]}, layers=[base])
    for name in ("team/two:1", "team/two:base", "busybox:1.36"):
        assert (await client.post("/images/create", params={"fromImage": name})).status_code \
            == 200
    saved = await client.get("/images/get",
                             params=[("names", "team/two:1"), ("names", "team/two:base")])
    assert (saved.status_code, saved.headers["content-type"]) == (200, "application/x-tar")
    members = _members(saved.content)
    assert list(members) == sorted(members)
    manifest = json.loads(members["manifest.json"] or b"")
    assert [entry["RepoTags"] for entry in manifest] == [["team/two:1"], ["team/two:base"]]
    [two, one] = [entry["Layers"] for entry in manifest]
    assert one == two[:1]  # the shared base layer is written once
    assert (members[two[0]], members[two[1]]) == (base, top)
    for entry in manifest:
        config = json.loads(members[entry["Config"]] or b"")
        assert entry["Config"] == digest_of(members[entry["Config"]] or b"")[7:] + ".json"
        assert config["rootfs"]["diff_ids"] == [digest_of(members[layer] or b"")
                                                for layer in entry["Layers"]]
    assert json.loads(members["repositories"] or b"") == {
        "team/two": {"1": two[1].split("/")[0], "base": one[0].split("/")[0]}}
    assert members[two[1].replace("layer.tar", "VERSION")] == b"1.0"


async def test_save_by_id_and_of_unknown_names(client: httpx.AsyncClient) -> None:
    await client.post("/images/create", params={"fromImage": "busybox:1.36"})
    image_id = (await client.get("/images/busybox:1.36/json")).json()["Id"]
    saved = await client.get(f"/images/{image_id[7:19]}/get")
    assert saved.status_code == 200
    members = _members(saved.content)
    assert json.loads(members["manifest.json"] or b"")[0]["RepoTags"] is None
    assert "repositories" not in members
    missing = await client.get("/images/busybox:9/get")
    assert (missing.status_code, missing.json()) == (404, {"message": "reference does not exist"})


async def test_a_loaded_archive_saves_back_the_same(client: httpx.AsyncClient) -> None:
    archive = _saved_archive("team/round:1", b"round trip layer")
    assert (await client.post("/images/load", content=archive)).status_code == 200
    saved = _members((await client.get("/images/team/round:1/get")).content)
    original = _members(archive)
    [entry] = json.loads(saved["manifest.json"] or b"")
    assert saved[entry["Config"]] == original["c.json"]
    assert saved[entry["Layers"][0]] == original["l/layer.tar"]


async def test_rmi_of_a_pushed_tag_deletes_it_in_the_registry(client: httpx.AsyncClient,
                                                              fake: FakeRegistry) -> None:
    await client.post("/images/create", params={"fromImage": "busybox:1.36"})
    await client.post("/images/busybox:1.36/tag", params={"repo": "team/gone", "tag": "1"})
    assert (await client.post("/images/team/gone/push", params={"tag": "1"})).status_code == 200
    removed = await client.delete("/images/team/gone:1")
    assert removed.status_code == 200, removed.text
    assert ("team/gone", "1") not in fake.manifests
    assert ("library/busybox", "1.36") in fake.manifests
    pulled_only = await client.delete("/images/busybox:1.36")
    assert pulled_only.status_code == 200
    assert ("library/busybox", "1.36") in fake.manifests  # never pushed: forgotten here only
    assert not [r for r in fake.requests if r.startswith("DELETE") and "busybox" in r]


async def test_rmi_where_the_registry_refuses_deletes(client: httpx.AsyncClient,
                                                      fake: FakeRegistry) -> None:
    fake.deletes = False
    assert (await client.post("/images/load", content=_saved_archive("team/kept:1", b"k"))
            ).status_code == 200
    refused = await client.delete("/images/team/kept:1")
    assert refused.status_code == 409
    assert refused.json()["message"].startswith(
        "unable to delete team/kept:1 in its registry: the registry does not allow deletes")
    assert (await client.get("/images/team/kept:1/json")).status_code == 200
    forced = await client.delete("/images/team/kept:1", params={"force": "1"})
    assert forced.status_code == 200
    assert (await client.get("/images/team/kept:1/json")).status_code == 404
    assert ("team/kept", "1") in fake.manifests


async def test_with_pre_pull_the_pull_answers_once_the_node_has_the_image(
        client: httpx.AsyncClient, engine: Engine, cluster: FakeCluster,
        nursery: trio.Nursery) -> None:
    engine.pre_puller = PrePuller(cluster, engine.settings, nursery=nursery, timeout=5,
                                  fail_fast_after=0)
    pulled = await client.post("/images/create", params={"fromImage": "busybox:1.36"})
    statuses = [line.get("status") for line in _lines(pulled)]
    assert statuses[-3:] == ["Pulling onto the node", "Pulled onto the node",
                             "Status: Downloaded newer image for busybox:1.36"]
    assert len(cluster.called("create_pod")) == 1
    cluster.main_on_create = PULL_FAILS
    failed = await client.post("/images/create", params={"fromImage": "team/secret:1"},
                               headers=_registry_auth("user", "pw"))
    assert _lines(failed)[-1]["error"] == (  # type: ignore[index]
        "the node cannot pull docker.io/team/secret:1: ErrImagePull: pull access denied for "
        "nosuch")
    await trio.sleep(0.1)
    assert cluster.called("delete_pod") == cluster.called("create_pod")
