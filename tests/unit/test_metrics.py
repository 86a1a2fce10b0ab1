"""Metrics: the text exposition format byte for byte, the listener, and the API's counting."""

from __future__ import annotations

import json
import logging

import httpx
import trio

from kubedock import _metrics
from kubedock._logging import JsonFormatter


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


def test_json_log_lines_carry_the_extra_fields() -> None:
    record = logging.makeLogRecord({"name": "kubedock.access", "levelname": "INFO",
                                    "msg": "GET %s", "args": ("/x",), "route": "/x"})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "GET /x" and entry["route"] == "/x"
    assert entry["level"] == "info" and entry["logger"] == "kubedock.access"
