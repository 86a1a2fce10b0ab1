"""The networks API on the app, with an engine that never needs the cluster."""

from __future__ import annotations

import json

import httpx


async def test_predefined_networks_are_listed_and_protected(client: httpx.AsyncClient) -> None:
    names = [n["Name"] for n in (await client.get("/v1.44/networks")).json()]
    assert names == ["bridge", "host", "none"]
    bridge = (await client.get("/networks/bridge")).json()
    assert len(bridge["Id"]) == 64
    assert (await client.get(f"/networks/{bridge['Id'][:10]}")).json()["Name"] == "bridge"
    answer = await client.delete("/networks/bridge")
    assert answer.status_code == 403
    assert "pre-defined" in answer.json()["message"]


async def test_create_duplicate_filters_remove(client: httpx.AsyncClient) -> None:
    created = await client.post("/networks/create", json={"Name": "net-a", "Labels": {"x": "1"}})
    assert created.status_code == 201
    network_id = created.json()["Id"]
    assert len(network_id) == 64 and int(network_id, 16) >= 0
    duplicate = await client.post("/networks/create", json={"Name": "net-a"})
    assert duplicate.status_code == 409
    assert duplicate.json() == {"message": "network with name net-a already exists"}

    async def names(filters: dict[str, list[str]]) -> list[str]:
        answer = await client.get("/networks", params={"filters": json.dumps(filters)})
        return [n["Name"] for n in answer.json()]

    assert await names({"label": ["x=1"]}) == ["net-a"]
    assert await names({"type": ["custom"]}) == ["net-a"]
    assert await names({"name": ["net"]}) == ["net-a"]
    assert await names({"id": [network_id[:8]]}) == ["net-a"]
    assert "bridge" in await names({"type": ["builtin"]})
    assert (await client.delete("/networks/net-a")).status_code == 204
    assert (await client.get(f"/networks/{network_id}")).status_code == 404


async def test_container_endpoints_and_busy_network(client: httpx.AsyncClient) -> None:
    network_id = (await client.post("/networks/create", json={"Name": "app"})).json()["Id"]
    body = {"Image": "busybox:1.36", "HostConfig": {"NetworkMode": "app"},
            "NetworkingConfig": {"EndpointsConfig": {network_id: {"Aliases": ["db", "DB2"]}}}}
    created = await client.post("/containers/create", params={"name": "my_db"}, json=body)
    assert created.status_code == 201, created.text
    container_id = created.json()["Id"]
    networks = (await client.get(f"/containers/{container_id}/json")).json()[
        "NetworkSettings"]["Networks"]
    assert list(networks) == ["app"]
    assert networks["app"]["NetworkID"] == network_id
    assert networks["app"]["Aliases"] == ["db", "DB2"]
    # my_db cannot be a DNS name; the aliases and the short id can.
    assert networks["app"]["DNSNames"] == ["db", "db2", container_id[:12]]

    busy = await client.delete("/networks/app")
    assert busy.status_code == 403 and "active endpoints" in busy.json()["message"]
    again = await client.post("/networks/app/connect", json={"Container": container_id})
    assert again.status_code == 403
    connect = await client.post("/networks/bridge/connect",
                                json={"Container": "my_db", "EndpointConfig": {"Aliases": ["x"]}})
    assert connect.status_code == 200
    inspect = (await client.get("/containers/my_db/json")).json()
    assert set(inspect["NetworkSettings"]["Networks"]) == {"bridge", "app"}
    listed = await client.get("/containers/json", params={
        "all": "1", "filters": json.dumps({"network": ["app"]})})
    assert [c["Id"] for c in listed.json()] == [container_id]
    assert (await client.post("/networks/app/disconnect",
                              json={"Container": container_id})).status_code == 200
    assert (await client.post("/networks/app/disconnect",
                              json={"Container": container_id})).status_code == 403
    pruned = (await client.post("/networks/prune")).json()
    assert pruned == {"NetworksDeleted": ["app"]}


async def test_unknown_network_and_refused_modes(client: httpx.AsyncClient) -> None:
    missing = await client.post("/containers/create", json={
        "Image": "busybox:1.36", "HostConfig": {"NetworkMode": "nope"}})
    assert missing.status_code == 404
    assert missing.json() == {"message": "network nope not found"}
    for mode in ("host", "container:abc"):
        refused = await client.post("/containers/create", json={
            "Image": "busybox:1.36", "HostConfig": {"NetworkMode": mode}})
        assert refused.status_code == 501, mode


async def test_the_none_network_is_private(client: httpx.AsyncClient) -> None:
    private = ("container cannot be connected to multiple networks with one of the networks in "
               "private (none) mode")
    await client.post("/networks/create", json={"Name": "app"})
    both = await client.post("/containers/create", json={
        "Image": "busybox:1.36", "HostConfig": {"NetworkMode": "none"},
        "NetworkingConfig": {"EndpointsConfig": {"app": {}}}})
    assert (both.status_code, both.json()) == (400, {"message": private})
    offline = await client.post("/containers/create?name=offline", json={
        "Image": "busybox:1.36", "HostConfig": {"NetworkMode": "none"}})
    assert offline.status_code == 201
    inspected = (await client.get("/containers/offline/json")).json()
    assert list(inspected["NetworkSettings"]["Networks"]) == ["none"]
    assert inspected["HostConfig"]["NetworkMode"] == "none"
    joined = await client.post("/networks/app/connect", json={"Container": "offline"})
    assert (joined.status_code, joined.json()) == (400, {"message": private})
