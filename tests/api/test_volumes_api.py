"""Volume endpoints and containers' volume mounts on a real server over the scripted cluster:
the shapes and statuses the reference engine answers."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import attrs
import httpx
import pytest
import trio
from clusterless import clusterless_engine

from kubedock.api import create_app, serve_http
from kubedock.engine import Engine

sys.path.append(str(Path(__file__).resolve().parents[1] / "unit"))
from engine_fake import FakeCluster


@attrs.frozen
class Served:
    client: httpx.AsyncClient
    engine: Engine
    cluster: FakeCluster


@pytest.fixture
async def served(nursery: trio.Nursery) -> AsyncIterator[Served]:
    cluster = FakeCluster(lag=0)
    engine = clusterless_engine(nursery, cluster)
    await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
    (bound,) = await nursery.start(partial(serve_http, create_app(engine),
                                           binds=["127.0.0.1:0"]))
    async with httpx.AsyncClient(base_url=f"http://{bound}", timeout=10) as client:
        yield Served(client, engine, cluster)


async def _create(client: httpx.AsyncClient, body: dict[str, object]) -> dict[str, object]:
    answer = await client.post("/v1.45/volumes/create", json=body)
    assert answer.status_code == 201, answer.text
    document: dict[str, object] = answer.json()
    return document


async def test_create_inspect_list_and_remove_as_docker_answers(served: Served) -> None:
    client = served.client
    created = await _create(client, {"Name": "data", "Labels": {"a": "1"}})
    assert set(created) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options",
                            "Scope"}
    assert (created["Name"], created["Driver"], created["Scope"]) == ("data", "local", "local")
    assert (created["Labels"], created["Options"]) == ({"a": "1"}, None)
    assert str(created["Mountpoint"]).startswith("pvc://t/kubedock-data-")
    # A second create of the name answers the volume as it is.
    again = await _create(client, {"Name": "data", "Labels": {"a": "2"}})
    assert again == created
    assert (await client.get("/volumes/data")).json() == created
    listed = (await client.get("/volumes")).json()
    assert listed == {"Volumes": [created], "Warnings": None}
    assert (await client.delete("/volumes/data")).status_code == 204
    assert served.cluster.claims == {}
    missing = await client.get("/volumes/data")
    assert (missing.status_code, missing.json()) == (404, {
        "message": "get data: no such volume"})
    assert (await client.delete("/volumes/data")).status_code == 404
    assert (await client.delete("/volumes/data", params={"force": "1"})).status_code == 204


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"Name": "bad/name"}, 400, '"bad/name" includes invalid characters for a local volume'),
    ({"Name": "v", "Driver": "nfs"}, 404,
     'create v: error looking up volume plugin nfs: plugin "nfs" not found'),
    ({"Name": "v", "DriverOpts": {"type": "tmpfs"}}, 501, "DriverOpts"),
])
async def test_create_refusals(served: Served, body: dict[str, object], status: int,
                               message: str) -> None:
    answer = await served.client.post("/volumes/create", json=body)
    assert answer.status_code == status
    assert message in answer.json()["message"]


async def test_list_filters(served: Served) -> None:
    client = served.client
    for name, labels in [("alpha", {"team": "a"}), ("beta", {"team": "b"}), ("gamma", {})]:
        await _create(client, {"Name": name, "Labels": labels})
    created = await client.post("/containers/create", json={
        "Image": "busybox", "HostConfig": {"Binds": ["gamma:/data"]}})
    assert created.status_code == 201

    async def names(filters: dict[str, list[str]]) -> list[str]:
        answer = await client.get("/volumes", params={"filters": json.dumps(filters)})
        assert answer.status_code == 200, answer.text
        return [volume["Name"] for volume in answer.json()["Volumes"]]

    assert await names({"name": ["a"]}) == ["alpha", "beta", "gamma"]
    assert await names({"name": ["^b", "gam"]}) == ["beta", "gamma"]
    assert await names({"label": ["team"]}) == ["alpha", "beta"]
    assert await names({"label": ["team=b"]}) == ["beta"]
    assert await names({"dangling": ["true"]}) == ["alpha", "beta"]
    assert await names({"dangling": ["0"]}) == ["gamma"]
    assert await names({"driver": ["local"]}) == ["alpha", "beta", "gamma"]
    assert await names({"driver": ["nfs"]}) == []
    for bad in ({"dangling": ["maybe"]}, {"until": ["1h"]}):
        answer = await client.get("/volumes", params={"filters": json.dumps(bad)})
        assert answer.status_code == 400


async def test_a_container_creates_its_volume_and_holds_it(served: Served) -> None:
    client = served.client
    created = await client.post("/containers/create", params={"name": "app"}, json={
        "Image": "busybox", "HostConfig": {"Binds": ["cache:/cache:ro", "/anon"], "Mounts": [
            {"Type": "volume", "Source": "logs", "Target": "/logs"}]}})
    assert created.status_code == 201, created.text
    container_id = created.json()["Id"]
    cache = (await client.get("/volumes/cache")).json()
    mounts = (await client.get("/containers/app/json")).json()["Mounts"]
    assert mounts[0] == {"Type": "volume", "Name": "cache", "Source": cache["Mountpoint"],
                         "Destination": "/cache", "Driver": "local", "Mode": "ro", "RW": False,
                         "Propagation": ""}
    anonymous = mounts[1]["Name"]
    assert re.fullmatch("[0-9a-f]{64}", anonymous)
    assert (mounts[1]["Type"], mounts[1]["Destination"], mounts[1]["Mode"]) == (
        "volume", "/anon", "")
    assert sorted(v["Name"] for v in (await client.get("/volumes")).json()["Volumes"]) == sorted(
        [anonymous, "cache", "logs"])
    assert (await client.get(f"/volumes/{anonymous}")).json()["Labels"] == {
        "com.docker.volume.anonymous": ""}
    assert (mounts[2]["Name"], mounts[2]["Mode"], mounts[2]["RW"]) == ("logs", "z", True)
    listed = (await client.get("/containers/json", params={"all": "1"})).json()
    assert listed[0]["Mounts"] == mounts
    for volume, found in [("cache", 1), ("/logs", 1), ("/nothing", 0)]:
        by_volume = await client.get("/containers/json", params={
            "all": "1", "filters": json.dumps({"volume": [volume]})})
        assert len(by_volume.json()) == found
    in_use = await client.delete("/volumes/cache")
    assert (in_use.status_code, in_use.json()) == (409, {
        "message": f"remove cache: volume is in use - [{container_id}]"})
    assert (await client.delete("/containers/app")).status_code == 204
    assert (await client.delete("/volumes/cache")).status_code == 204
    # Without `v`, the anonymous volume stays (dangling), as with Docker.
    assert (await client.get(f"/volumes/{anonymous}")).status_code == 200


async def test_prune_takes_anonymous_volumes_unless_all_or_an_old_api(served: Served) -> None:
    client = served.client
    anonymous = (await _create(client, {}))["Name"]
    for name, labels in [("named", {}), ("kept", {"keep": "1"})]:
        await _create(client, {"Name": name, "Labels": labels})

    async def prune(prefix: str, filters: dict[str, list[str]]) -> list[str]:
        answer = await client.post(f"{prefix}/volumes/prune",
                                   params={"filters": json.dumps(filters)})
        assert answer.status_code == 200, answer.text
        document = answer.json()
        assert document["SpaceReclaimed"] == 0
        return list(document["VolumesDeleted"])

    assert await prune("", {}) == [anonymous]
    assert await prune("/v1.45", {}) == []
    assert await prune("/v1.45", {"all": ["true"], "label!": ["keep"]}) == ["named"]
    assert await prune("/v1.41", {"label": ["keep=1"]}) == ["kept"]
    for bad in ({"all": ["maybe"]}, {"until": ["1h"]}, {"dangling": ["true"]}):
        answer = await client.post("/volumes/prune", params={"filters": json.dumps(bad)})
        assert answer.status_code == 400, bad


async def test_volumes_from_shares_named_volumes_and_binds(served: Served, tmp_path: Path
                                                          ) -> None:
    client = served.client
    source = await client.post("/containers/create?name=writer", json={
        "Image": "busybox", "HostConfig": {"Binds": ["data:/data", f"{tmp_path}:/host:ro"]}})
    assert source.status_code == 201, source.text
    reader = await client.post("/containers/create?name=reader", json={
        "Image": "busybox", "HostConfig": {"VolumesFrom": ["writer:ro"], "Binds": ["own:/host"]}})
    assert reader.status_code == 201, reader.text
    inspected = (await client.get("/containers/reader/json")).json()
    assert inspected["HostConfig"]["VolumesFrom"] == ["writer:ro"]
    mounts = {mount["Destination"]: mount for mount in inspected["Mounts"]}
    assert (mounts["/data"]["Name"], mounts["/data"]["RW"]) == ("data", False)
    assert mounts["/host"]["Name"] == "own"  # its own mount wins at the same target
    for entry, status, message in (
            ("nosuch", 400, "No such container: nosuch"),
            ("writer:xx", 400, "invalid mode: xx")):
        refused = await client.post("/containers/create", json={
            "Image": "busybox", "HostConfig": {"VolumesFrom": [entry]}})
        assert (refused.status_code, refused.json()) == (status, {"message": message})
    await client.post("/containers/create?name=anonymous", json={
        "Image": "busybox", "Volumes": {"/scratch": {}}})
    refused = await client.post("/containers/create", json={
        "Image": "busybox", "HostConfig": {"VolumesFrom": ["anonymous"]}})
    assert refused.status_code == 501
    assert "anonymous volume /scratch of anonymous" in refused.json()["message"]
