"""Cluster without a cluster: a scripted stand-in for kr8s, and a mock clock."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio
import trio.testing

from kubedock.kube import Cluster, ContainerObservation
from kubedock.kube._cluster import _RateLimiter


def pod(name: str, version: str, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "resourceVersion": version},
        "status": {"phase": "Running", "containerStatuses": [{"name": "main", "state": state}]},
    }


RUNNING = {"running": {"startedAt": "2026-11-25T10:00:00Z"}}
EXITED = {"terminated": {"exitCode": 3, "reason": "Error"}}


class Listing:
    def __init__(self, version: str, *items: dict[str, Any]) -> None:
        self.body = {"metadata": {"resourceVersion": version}, "items": list(items)}

    def json(self) -> dict[str, Any]:
        return self.body


class Events:
    def __init__(self, *events: dict[str, Any]) -> None:
        self.lines = [json.dumps(event) for event in events]

    async def aiter_lines(self) -> AsyncIterator[str]:
        for line in self.lines:
            await trio.lowlevel.checkpoint()
            yield line


class ScriptedApi:
    """Answers each call with the next step of the script; then waits forever."""

    def __init__(self, *script: Listing | Events | Exception) -> None:
        self.script = list(script)
        self.calls: list[dict[str, str]] = []

    @asynccontextmanager
    async def call_api(self, method: str, **kwargs: Any) -> AsyncIterator[Any]:
        assert (method, kwargs["url"], kwargs["namespace"]) == ("GET", "pods", "ns")
        self.calls.append(kwargs["params"])
        if not self.script:
            await trio.sleep_forever()
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        yield step


async def test_watch_resumes_relists_and_reports_vanished_pods(
    autojump_clock: trio.testing.MockClock,
) -> None:
    api = ScriptedApi(
        Listing("10", pod("a", "9", RUNNING)),
        Events(
            {"type": "MODIFIED", "object": pod("a", "11", EXITED)},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
            {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}},
        ),
        Listing("20"),
        httpx.ConnectError("connection refused"),
        Listing("30", pod("b", "29", RUNNING)),
        Events({"type": "DELETED", "object": pod("b", "31", EXITED)}),
    )
    cluster = Cluster(api, "ns", None)
    seen: list[ContainerObservation] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(cluster.watch_pods, "kubedock.id=x", seen.append)
        assert seen, "started only after the first listing was reported"
        await trio.sleep(60)
        nursery.cancel_scope.cancel()

    assert [(o.pod_name, o.state, o.exit_code, o.deleted) for o in seen] == [
        ("a", "running", None, False),
        ("a", "terminated", 3, False),
        ("a", "terminated", 3, True),  # gone while we were not watching
        ("b", "running", None, False),
        ("b", "terminated", 3, True),
    ]
    assert [call.get("watch") and call["resourceVersion"] for call in api.calls] == [
        None,
        "10",
        None,
        "20",
        None,
        "30",
        "31",  # the stream ended normally: resume where it stopped
    ]
    assert all(call["labelSelector"] == "kubedock.id=x" for call in api.calls)


async def test_rate_limiter_allows_a_burst_then_the_rate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = _RateLimiter(qps=2, burst=3)
    start = trio.current_time()
    times = []
    for _ in range(6):
        await limiter.acquire()
        times.append(round(trio.current_time() - start, 3))
    assert times == [0, 0, 0, 0.5, 1.0, 1.5]
    await trio.sleep(10)
    before = trio.current_time()
    for _ in range(3):
        await limiter.acquire()
    assert trio.current_time() == before
