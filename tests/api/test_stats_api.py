"""Stats, update and disk usage on a real server over the scripted cluster: a stats stream
sends a sample a second and ends when its container goes or its client does."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from clusterless import clusterless_engine

from kubedock.api import create_app, serve_http
from kubedock.engine import Container, ContainerConfig, Engine

sys.path.append(str(Path(__file__).resolve().parents[1] / "unit"))
from engine_fake import FakeCluster


@pytest.fixture
async def served(nursery: trio.Nursery
                 ) -> AsyncIterator[tuple[Engine, FakeCluster, httpx.AsyncClient]]:
    cluster = FakeCluster(lag=0)
    engine = clusterless_engine(nursery, cluster)
    await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
    (bound,) = await nursery.start(partial(serve_http, create_app(engine), ["127.0.0.1:0"]))
    async with httpx.AsyncClient(base_url=f"http://{bound}", timeout=10) as client:
        yield engine, cluster, client


async def running(engine: Engine, cluster: FakeCluster, name: str = "web") -> Container:
    container = engine.create(name, ContainerConfig(image="busybox", memory=64 * 2**20))
    await engine.start(container)
    assert container.pod_name is not None
    cluster.sample_usage(container.pod_name, cpu_nanoseconds=3 * 10**9, nano_cores=10**9,
                         memory=2**20, working_set=2**19)
    return container


def summaries(cluster: FakeCluster) -> int:
    return sum(1 for method, _ in cluster.calls if method == "node_summary")


async def lines(response: httpx.Response) -> AsyncIterator[tuple[float, dict[str, object]]]:
    async for line in response.aiter_lines():
        yield trio.current_time(), json.loads(line)


async def test_one_answer_with_live_numbers(
        served: tuple[Engine, FakeCluster, httpx.AsyncClient]) -> None:
    engine, cluster, client = served
    await running(engine, cluster)
    answer = await client.get("/containers/web/stats", params={"stream": "false"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    document = answer.json()
    assert document["cpu_stats"]["cpu_usage"]["total_usage"] == 3 * 10**9
    assert document["precpu_stats"]["cpu_usage"]["total_usage"] == 2 * 10**9
    assert document["memory_stats"]["limit"] == 64 * 2**20
    for key in ("read", "networks", "precpu_stats", "cpu_stats", "memory_stats", "blkio_stats"):
        assert key in document  # what docker-py's tests look for

    one_shot = await client.get("/v1.45/containers/web/stats",
                                params={"stream": "0", "one-shot": "1"})
    assert one_shot.json()["preread"] == "0001-01-01T00:00:00Z"
    both = await client.get("/containers/web/stats", params={"one-shot": "true"})
    assert (both.status_code, both.json()) == (
        400, {"message": "cannot have stream=true and one-shot=true"})
    missing = await client.get("/containers/nosuch/stats", params={"stream": "false"})
    assert (missing.status_code, missing.json()) == (404, {"message": "No such container: nosuch"})


async def test_a_stream_sends_a_sample_a_second_until_the_container_is_removed(
        served: tuple[Engine, FakeCluster, httpx.AsyncClient]) -> None:
    engine, cluster, client = served
    container = await running(engine, cluster)
    seen: list[tuple[float, dict[str, object]]] = []
    with trio.fail_after(10):
        async with client.stream("GET", "/containers/web/stats") as response:
            assert response.status_code == 200
            async for moment, document in lines(response):
                seen.append((moment, document))
                if len(seen) == 3:
                    await engine.remove(container, force=True)
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(seen)]
    assert all(0.8 < gap < 1.5 for gap in gaps[:2]), gaps
    assert seen[0][1]["name"] == "/web"


async def test_a_stream_ends_when_its_client_goes_away(
        served: tuple[Engine, FakeCluster, httpx.AsyncClient]) -> None:
    engine, cluster, client = served
    await running(engine, cluster)
    host, port = client.base_url.host, client.base_url.port
    assert port is not None
    async with await trio.open_tcp_stream(host, port) as connection:
        await connection.send_all(b"GET /containers/web/stats HTTP/1.1\r\nHost: docker\r\n\r\n")
        received = b""
        with trio.fail_after(5):
            while b'"read"' not in received:
                received += await connection.receive_some()
    await trio.sleep(0.5)
    read = summaries(cluster)
    await trio.sleep(2.5)
    assert summaries(cluster) == read


async def test_update_answers_as_docker_and_inspect_shows_it(
        served: tuple[Engine, FakeCluster, httpx.AsyncClient]) -> None:
    engine, cluster, client = served
    container = await running(engine, cluster)
    answer = await client.post("/containers/web/update", json={
        "Memory": 32 * 2**20, "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}})
    assert (answer.status_code, answer.json()) == (200, {"Warnings": None})
    host_config = (await client.get("/containers/web/json")).json()["HostConfig"]
    assert host_config["Memory"] == 32 * 2**20
    assert host_config["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert container.pod_name is not None
    (main,) = cluster.pods[container.pod_name]["spec"]["containers"]
    assert main["resources"]["limits"]["memory"] == str(32 * 2**20)
    refused = await client.post("/containers/web/update", json={"BlkioWeight": 300})
    assert refused.status_code == 501
    assert refused.json()["message"].startswith("BlkioWeight is not supported by kubedock")


async def test_disk_usage(served: tuple[Engine, FakeCluster, httpx.AsyncClient]) -> None:
    engine, cluster, client = served
    await running(engine, cluster)
    engine.create("idle", ContainerConfig(image="busybox"))
    document = (await client.get("/system/df")).json()
    assert set(document) == {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}
    sizes = {c["Names"][0]: (c["SizeRw"], c["SizeRootFs"]) for c in document["Containers"]}
    assert sizes == {"/web": (4096, 4096), "/idle": (0, 0)}
    assert [(i["RepoTags"], i["Containers"]) for i in document["Images"]] == [
        (["busybox:latest"], 2)]
    assert (document["Volumes"], document["BuildCache"]) == ([], [])
    containers_only = (await client.get("/system/df", params={"type": "container"})).json()
    assert containers_only["Images"] is None and len(containers_only["Containers"]) == 2
    unknown = await client.get("/system/df", params={"type": "layers"})
    assert (unknown.status_code, unknown.json()) == (
        400, {"message": "unknown object type: layers"})
