"""Docker's time stamps in inspect, on the app, with an engine that never needs the cluster."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

# Go's RFC3339Nano, as Docker writes it: UTC, no trailing zeros in the fraction.
RFC3339_NANO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z")


async def test_times_are_written_as_docker_writes_them(client: httpx.AsyncClient) -> None:
    before = datetime.now(UTC)
    created = await client.post("/containers/create", json={"Image": "busybox:1.36"})
    document = (await client.get(f"/containers/{created.json()['Id']}/json")).json()
    assert RFC3339_NANO.fullmatch(document["Created"]), document["Created"]
    stamp = datetime.fromisoformat(document["Created"])
    assert before <= stamp <= datetime.now(UTC)
    # Never started: Go's zero time.
    state = document["State"]
    assert (state["StartedAt"], state["FinishedAt"]) == ("0001-01-01T00:00:00Z",) * 2
