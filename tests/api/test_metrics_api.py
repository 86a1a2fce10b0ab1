"""The API counts and logs every answer by route template and status."""

from __future__ import annotations

import logging

import httpx
import pytest

from kubedock import _metrics


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
