"""Cluster without a cluster: a scripted stand-in for kr8s, and a mock clock."""

import itertools
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from kubedock.kube import Cluster, ContainerObservation, KubeError, WatchHealth
from kubedock.kube._transport import RateLimiter


def pod(name: str, version: str, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "resourceVersion": version},
        "status": {"phase": "Running", "containerStatuses": [{"name": "main", "state": state}]},
    }


RUNNING = {"running": {"startedAt": "2026-11-25T10:00:00Z"}}
EXITED = {"terminated": {"exitCode": 3, "reason": "Error"}}


class Answer:
    """A successful answer of the API server."""

    status_code = 200
    is_error = False


class Listing(Answer):
    def __init__(self, version: str, *items: dict[str, Any]) -> None:
        self.body = {"metadata": {"resourceVersion": version}, "items": list(items)}

    def json(self) -> dict[str, Any]:
        return self.body


class Events(Answer):
    """A watch stream; a `str` is sent as the line it is (malformed ones included)."""

    def __init__(self, *events: dict[str, Any] | str) -> None:
        self.lines = [event if isinstance(event, str) else json.dumps(event) for event in events]

    async def aiter_lines(self) -> AsyncIterator[str]:
        for line in self.lines:
            await trio.lowlevel.checkpoint()
            yield line


def refusal(status: int, message: str) -> httpx.Response:
    """An error answer of the API server, a Status object."""
    body = {"kind": "Status", "status": "Failure", "message": message, "code": status}
    return httpx.Response(status, json=body)


FORBIDDEN_WATCH = refusal(
    403, 'pods is forbidden: User "system:serviceaccount:ns:kubedock" cannot watch resource '
    '"pods" in API group "" in the namespace "ns"'
)


class ScriptedApi:
    """Answers each call with the next step of the script; then waits forever."""

    def __init__(self, *script: Listing | Events | httpx.Response | Exception) -> None:
        self.script = list(script)
        self.calls: list[dict[str, str]] = []
        self.times: list[float] = []

    @asynccontextmanager
    async def call_api(self, method: str, **kwargs: Any) -> AsyncIterator[Any]:
        assert (method, kwargs["url"], kwargs["namespace"]) == ("GET", "pods", "ns")
        assert kwargs["raise_for_status"] is False  # see Transport.request
        self.calls.append(kwargs["params"])
        self.times.append(trio.current_time())
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


async def test_a_refused_watch_is_logged_once_with_its_reason_and_retried_with_backoff(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kubedock")
    api = ScriptedApi(
        Listing("10", pod("a", "9", RUNNING)),
        *[FORBIDDEN_WATCH, Listing("10")] * 6,
        FORBIDDEN_WATCH,
        Listing("12", pod("a", "11", EXITED)),
        Events(),
    )
    cluster = Cluster(api, "ns", None)
    seen: list[ContainerObservation] = []
    failures: list[str | None] = []
    async with trio.open_nursery() as nursery:
        health: WatchHealth = await nursery.start(cluster.watch_pods, "kubedock.id=x", seen.append)
        for _ in range(4):
            await trio.sleep(10)
            failures.append(health.failure)
        nursery.cancel_scope.cancel()

    reason = ("kubedock lacks the right to watch pods in namespace ns: pods is forbidden: User "
              '"system:serviceaccount:ns:kubedock" cannot watch resource "pods" in API group "" '
              'in the namespace "ns"')
    # Refused at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 25.5 s; watching again from 35.5 s.
    assert failures == [reason, reason, reason, None]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"pod watch failing, retrying: {reason}"]
    assert "pod watch working again" in caplog.messages
    watches = [time for time, call in zip(api.times, api.calls, strict=True) if call.get("watch")]
    gaps = [round(later - earlier, 3) for earlier, later in itertools.pairwise(watches)]
    assert gaps[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert seen[-1].exit_code == 3, "the pod's change while refused is seen on the next listing"


async def test_malformed_events_are_skipped_and_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    api = ScriptedApi(
        Listing("10", pod("a", "9", RUNNING), {"status": {}}),
        Events(
            "{not json",
            "[1, 2]",
            {"type": "MODIFIED"},
            {"type": "MODIFIED", "object": "a"},
            {"type": "MODIFIED", "object": {"metadata": {"resourceVersion": "12"}}},
            {"type": "MODIFIED", "object": pod("a", "13", EXITED)},
        ),
    )
    cluster = Cluster(api, "ns", None)
    seen: list[ContainerObservation] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(cluster.watch_pods, "kubedock.id=x", seen.append)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()

    assert [(o.pod_name, o.state) for o in seen] == [("a", "running"), ("a", "terminated")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 6
    assert warnings[0].startswith("pod watch: skipped a pod without a name in a listing")
    assert all(w.startswith("pod watch: skipped a") for w in warnings)
    assert "'{not json'" in warnings[1]


async def test_a_pod_the_callback_fails_on_is_logged_and_the_watch_goes_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    api = ScriptedApi(
        Listing("10"),
        Events({"type": "ADDED", "object": pod("bad", "11", RUNNING)},
               {"type": "ADDED", "object": pod("good", "12", RUNNING)}),
    )
    cluster = Cluster(api, "ns", None)
    seen: list[str] = []

    def on_pod(document: Mapping[str, Any], deleted: bool) -> None:
        name = document["metadata"]["name"]
        if name == "bad":
            raise ValueError("cannot read this pod")
        seen.append(name)

    async with trio.open_nursery() as nursery:
        await nursery.start(cluster.watch_pod_documents, "kubedock.id=x", on_pod)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert seen == ["good"]
    assert "pod watch: could not take in pod bad" in caplog.messages


async def test_an_error_event_is_a_failure_and_the_watch_lists_again(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    api = ScriptedApi(
        Listing("10"),
        Events({"type": "ERROR", "object": {"kind": "Status", "code": 500,
                                            "message": "etcd is unhappy"}}),
        Listing("20"),
        Events(),
    )
    cluster = Cluster(api, "ns", None)
    async with trio.open_nursery() as nursery:
        health = await nursery.start(cluster.watch_pods, "kubedock.id=x", lambda _: None)
        await trio.sleep(0.1)
        assert health.failure == "cannot watch pods in namespace ns (500): etcd is unhappy"
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [call.get("watch") and call["resourceVersion"] for call in api.calls] == [
        None, "10", None, "20", "20",
    ]
    assert health.failure is None


async def test_a_refused_first_listing_is_raised_with_the_reason() -> None:
    api = ScriptedApi(refusal(403, "pods is forbidden"))
    cluster = Cluster(api, "ns", None)
    with pytest.raises(KubeError) as raised:
        await cluster.watch_pods("kubedock.id=x", lambda _: None)
    assert raised.value.status == 403
    assert raised.value.message == (
        "kubedock lacks the right to list pods in namespace ns: pods is forbidden"
    )


async def test_rate_limiter_allows_a_burst_then_the_rate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter(qps=2, burst=3)
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


async def test_an_unexpected_failure_is_logged_with_its_traceback_and_retried(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    api = ScriptedApi(Listing("10"), ValueError("not JSON: <html>"), Listing("20"), Events())
    cluster = Cluster(api, "ns", None)
    async with trio.open_nursery() as nursery:
        health = await nursery.start(cluster.watch_pods, "kubedock.id=x", lambda _: None)
        await trio.sleep(0.1)
        assert health.failure == "cannot watch pods in namespace ns: ValueError: not JSON: <html>"
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert health.failure is None
    [failure] = caplog.records
    assert failure.exc_info is not None and isinstance(failure.exc_info[1], ValueError)


async def test_a_watch_that_connects_then_fails_is_still_one_outage(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kubedock")
    unhappy = Events({"type": "ERROR", "object": {"kind": "Status", "code": 500,
                                                  "message": "etcd is unhappy"}})
    api = ScriptedApi(
        Listing("10"),
        *[unhappy, Listing("10")] * 3,
        Events({"type": "ADDED", "object": pod("a", "11", RUNNING)}),
    )
    cluster = Cluster(api, "ns", None)
    async with trio.open_nursery() as nursery:
        await nursery.start(cluster.watch_pods, "kubedock.id=x", lambda _: None)
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    assert caplog.messages == [
        "pod watch failing, retrying: cannot watch pods in namespace ns (500): etcd is unhappy",
        "pod watch working again",
    ]


class RenewableAuth:
    def __init__(self) -> None:
        self.token = "old"
        self.renewals = 0

    async def reauthenticate(self) -> None:
        self.renewals += 1
        self.token = f"new-{self.renewals}"


async def test_an_expired_token_is_renewed_in_place_once_and_a_refusal_is_final() -> None:
    # kr8s would replace its HTTP client on a 401 or 403, breaking every request in flight.
    api = ScriptedApi(refusal(401, "Unauthorized"), Listing("1"),
                      refusal(401, "Unauthorized"), refusal(401, "Unauthorized"),
                      refusal(403, "pods is forbidden"))
    auth = RenewableAuth()
    async with httpx.AsyncClient(headers={"Authorization": "Bearer old"}) as session:
        api.auth, api._session = auth, session  # type: ignore[attr-defined]
        cluster = Cluster(api, "ns", None)
        await cluster.delete_all("a=b")  # lists the pods, then deletes none
        assert session.headers["Authorization"] == "Bearer new-1"
        with pytest.raises(KubeError) as twice:
            await cluster.delete_all("a=b")
        assert twice.value.status == 401 and auth.renewals == 2
        with pytest.raises(KubeError) as refused:
            await cluster.delete_all("a=b")
        assert refused.value.status == 403 and auth.renewals == 2
        assert api._session is session  # type: ignore[attr-defined]
