"""Prune filters on the app: containers and networks that were never started."""

from __future__ import annotations

import json

import httpx
import trio


async def _create(client: httpx.AsyncClient, name: str, labels: dict[str, str]) -> str:
    answer = await client.post("/containers/create", params={"name": name},
                               json={"Image": "busybox", "Labels": labels})
    assert answer.status_code == 201, answer.text
    container_id: str = answer.json()["Id"]
    return container_id


async def test_container_prune_honours_until_and_labels(client: httpx.AsyncClient) -> None:
    old = await _create(client, "old", {"team": "a"})
    spared = await _create(client, "spared", {"team": "a", "keep": "1"})
    other = await _create(client, "other", {"team": "b"})
    await trio.sleep(1.1)
    new = await _create(client, "new", {"team": "a"})

    async def prune(filters: dict[str, list[str]]) -> list[str]:
        answer = await client.post("/v1.45/containers/prune",
                                   params={"filters": json.dumps(filters)})
        assert answer.status_code == 200, answer.text
        return answer.json()["ContainersDeleted"] or []

    assert await prune({"until": ["1s"], "label": ["team=a"], "label!": ["keep"]}) == [old]
    assert await prune({"label": ["team=a"]}) == [new, spared]
    assert await prune({"until": ["1h"]}) == []
    assert await prune({}) == [other]
    bad = await client.post("/containers/prune", params={"filters": '{"until": ["soon"]}'})
    assert bad.status_code == 400


async def test_network_prune_honours_until_and_labels(client: httpx.AsyncClient) -> None:
    for name, labels in [("n1", {"a": "1"}), ("n2", {"a": "2"}), ("n3", {})]:
        created = await client.post("/networks/create", json={"Name": name, "Labels": labels})
        assert created.status_code == 201

    async def prune(filters: dict[str, list[str]]) -> list[str]:
        answer = await client.post("/networks/prune", params={"filters": json.dumps(filters)})
        assert answer.status_code == 200, answer.text
        return sorted(answer.json()["NetworksDeleted"] or [])

    assert await prune({"until": ["1h"]}) == []
    assert await prune({"label!": ["a=2"], "label": ["a"]}) == ["n1"]
    assert await prune({"until": ["2100-01-01T00:00:00Z"]}) == ["n2", "n3"]
