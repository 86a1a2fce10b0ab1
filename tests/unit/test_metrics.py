"""Metrics: the text exposition format byte for byte, the listener, and the API's counting."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from kubedock import _metrics, kube
from kubedock._logging import JsonFormatter
from kubedock.api import create_app
from kubedock.engine import Engine


def test_counter_renders_labels_escaped_and_sorted() -> None:
    counter = _metrics.Counter("x_total", "Things.", ("kind",))
    counter.inc("b")
    counter.inc('a"\\\n', amount=2.5)
    counter.inc("b")
    assert "\n".join(counter.render()) == (
        "# HELP x_total Things.\n"
        "# TYPE x_total counter\n"
        'x_total{kind="a\\"\\\\\\n"} 2.5\n'
        'x_total{kind="b"} 2'
    )


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    histogram = _metrics.Histogram("t_seconds", "Time.", (0.1, 1.0), ("route",))
    for value in (0.05, 0.1, 0.5, 7.0):
        histogram.observe(value, "/r")
    assert list(histogram.render()) == [
        "# HELP t_seconds Time.",
        "# TYPE t_seconds histogram",
        't_seconds_bucket{route="/r",le="0.1"} 2',
        't_seconds_bucket{route="/r",le="1"} 3',
        't_seconds_bucket{route="/r",le="+Inf"} 4',
        't_seconds_sum{route="/r"} 7.65',
        't_seconds_count{route="/r"} 4',
    ]


def test_gauge_reads_its_source_when_rendered() -> None:
    gauge = _metrics.Gauge("c", "Containers.", ("state",))
    assert list(gauge.render())[2:] == []
    gauge.source = lambda: {("running",): 2, ("exited",): 1}
    assert list(gauge.render())[2:] == ['c{state="exited"} 1', 'c{state="running"} 2']


async def test_the_listener_answers_get_and_head_of_metrics_only() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_metrics.serve_metrics, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            answer = await http.get("/metrics")
            assert answer.status_code == 200
            assert answer.headers["content-type"] == _metrics.CONTENT_TYPE
            assert "# TYPE kubedock_api_requests_total counter" in answer.text
            head = await http.head("/metrics")
            assert head.status_code == 200 and head.content == b""
            assert (await http.get("/other")).status_code == 404
        # A client that sends garbage, or nothing, is dropped without harm.
        for garbage in (b"\x00\x01 nonsense\r\n\r\n", b""):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(garbage)
                await stream.send_eof()
                assert await stream.receive_some() == b""
        nursery.cancel_scope.cancel()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with trio.open_nursery() as nursery:
        engine = Engine(None, kube.PodSettings(namespace="t", instance_id="i"),  # type: ignore[arg-type]
                        nursery=nursery, start_timeout=1, fail_fast_after=0, expose="pod-ip",
                        expose_host="127.0.0.1")
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://docker") as http:
            yield http
        nursery.cancel_scope.cancel()


async def test_api_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    route = "/networks/<ref>"
    before = _metrics.API_REQUESTS.value("GET", route, "404")
    with caplog.at_level(logging.INFO, logger="kubedock.access"):
        assert (await client.get("/v1.44/networks/nope")).status_code == 404
        assert (await client.get("/networks/nope2")).status_code == 404
    assert _metrics.API_REQUESTS.value("GET", route, "404") == before + 2
    assert (await client.get("/no/such/path")).status_code == 404
    assert _metrics.API_REQUESTS.value("GET", "unmatched", "404") >= 1
    lines = [r for r in caplog.records if r.name == "kubedock.access"]
    assert lines[0].getMessage().startswith("GET /v1.44/networks/nope 404 ")
    assert getattr(lines[0], "route") == route  # noqa: B009
    assert b"kubedock_api_request_duration_seconds_bucket" in _metrics.render()


def test_json_log_lines_carry_the_extra_fields() -> None:
    record = logging.makeLogRecord({"name": "kubedock.access", "levelname": "INFO",
                                    "msg": "GET %s", "args": ("/x",), "route": "/x"})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "GET /x" and entry["route"] == "/x"
    assert entry["level"] == "info" and entry["logger"] == "kubedock.access"
