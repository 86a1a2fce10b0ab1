"""The app with an engine that never needs the cluster (routes that stop short of it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from kubedock import kube
from kubedock.api import create_app
from kubedock.engine import Engine


@pytest.fixture
def engine(nursery: trio.Nursery) -> Engine:
    return Engine(None, kube.PodSettings(namespace="t", instance_id="i"),  # type: ignore[arg-type]
                  nursery=nursery, start_timeout=1, expose="pod-ip", expose_host="127.0.0.1")


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://docker") as http:
        yield http
