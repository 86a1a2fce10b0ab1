"""Create options on the app: what inspect reports, and options refused by name."""

from __future__ import annotations

from typing import Any

import httpx


async def _inspect(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    created = await client.post("/v1.45/containers/create", json={"Image": "busybox", **body})
    assert created.status_code == 201, created.text
    answer = await client.get(f"/containers/{created.json()['Id']}/json")
    document: dict[str, Any] = answer.json()
    return document


async def test_inspect_shows_what_was_requested(client: httpx.AsyncClient) -> None:
    host_config = {"CpuShares": 512, "CpuQuota": 50_000, "CpuPeriod": 100_000,
                   "GroupAdd": ["1000"], "CapDrop": ["NET_RAW"], "Memory": 64 << 20,
                   "LogConfig": {"Type": "json-file", "Config": {"max-file": "100"}}}
    document = await _inspect(client, {"HostConfig": host_config})
    assert {key: document["HostConfig"][key] for key in host_config} == host_config
    assert document["HostConfig"]["NanoCpus"] == 0
    assert document["HostConfig"]["Runtime"] == "runc"
    assert document["HostConfig"]["Links"] is None


async def test_log_config_defaults_as_docker_reports_them(client: httpx.AsyncClient) -> None:
    for requested, reported in [
        (None, {"Type": "json-file", "Config": {}}),
        ({"Type": "", "Config": {"max-file": "100"}}, {"Type": "json-file",
                                                       "Config": {"max-file": "100"}}),
        ({"Type": "json-file", "Config": None}, {"Type": "json-file", "Config": {}}),
        ({"Type": "local"}, {"Type": "local", "Config": {}}),
    ]:
        document = await _inspect(client, {"HostConfig": {"LogConfig": requested}})
        assert document["HostConfig"]["LogConfig"] == reported


async def test_no_logs_to_read_with_the_none_driver(client: httpx.AsyncClient) -> None:
    created = await client.post("/containers/create", json={
        "Image": "busybox", "HostConfig": {"LogConfig": {"Type": "none"}}})
    answer = await client.get(f"/containers/{created.json()['Id']}/logs",
                              params={"stdout": 1})
    assert answer.status_code == 501
    assert answer.json() == {"message": "configured logging driver does not support reading"}


async def test_refused_options_leave_no_container(client: httpx.AsyncClient) -> None:
    answer = await client.post("/containers/create", params={"name": "refused"}, json={
        "Image": "busybox", "HostConfig": {"PidsLimit": 100}})
    assert answer.status_code == 501
    assert answer.json()["message"].startswith("HostConfig.PidsLimit is not supported")
    assert (await client.get("/containers/refused/json")).status_code == 404


async def test_endpoint_driver_options_are_reported(client: httpx.AsyncClient) -> None:
    network_id = (await client.post("/networks/create", json={"Name": "app"})).json()["Id"]
    document = await _inspect(client, {
        "HostConfig": {"NetworkMode": "app"},
        "NetworkingConfig": {"EndpointsConfig": {"app": {"DriverOpts": {"key1": "a"}}}}})
    assert document["NetworkSettings"]["Networks"]["app"]["DriverOpts"] == {"key1": "a"}
    by_id = await _inspect(client, {
        "HostConfig": {"NetworkMode": "app"},
        "NetworkingConfig": {"EndpointsConfig": {network_id: {"DriverOpts": {"k": "b"}}}}})
    assert by_id["NetworkSettings"]["Networks"]["app"]["DriverOpts"] == {"k": "b"}
    plain = await _inspect(client, {})
    assert plain["NetworkSettings"]["Networks"]["bridge"]["DriverOpts"] is None
    connect = await client.post("/networks/app/connect", json={
        "Container": plain["Id"], "EndpointConfig": {"Links": ["db:database"]}})
    assert connect.status_code == 200, connect.text
    linked = (await client.get(f"/containers/{plain['Id']}/json")).json()
    assert linked["NetworkSettings"]["Networks"]["app"]["Links"] == ["db:database"]


async def test_links_as_docker_reports_them(client: httpx.AsyncClient) -> None:
    missing = await client.post("/containers/create", json={
        "Image": "busybox", "HostConfig": {"Links": ["nosuch:db"]}})
    assert missing.status_code == 400
    assert missing.json()["message"] == (
        "could not get container for nosuch: No such container: nosuch")
    await client.post("/containers/create", params={"name": "db"}, json={"Image": "redis:7"})
    web = await client.post("/containers/create", params={"name": "web"}, json={
        "Image": "busybox", "HostConfig": {"Links": ["db:database"]}})
    document = (await client.get(f"/containers/{web.json()['Id']}/json")).json()
    assert document["HostConfig"]["Links"] == ["/db:/web/database"]
    assert document["NetworkSettings"]["Networks"]["bridge"]["Links"] is None
    # The linked container does not run: the start fails as Docker's does.
    started = await client.post("/containers/web/start")
    assert started.status_code == 500
    assert started.json()["message"] == (
        "Cannot link to a non running container: /db AS /web/database")


async def test_restart_policy_is_reported(client: httpx.AsyncClient) -> None:
    policy = {"Name": "on-failure", "MaximumRetryCount": 3}
    document = await _inspect(client, {"HostConfig": {"RestartPolicy": policy}})
    assert document["HostConfig"]["RestartPolicy"] == policy
    assert document["RestartCount"] == 0 and document["State"]["Restarting"] is False
