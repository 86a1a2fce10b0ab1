"""The app with an engine that never needs the cluster (routes that stop short of it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio
from clusterless import clusterless_engine

from kubedock.api import create_app
from kubedock.engine import Engine


@pytest.fixture
def engine(nursery: trio.Nursery) -> Engine:
    return clusterless_engine(nursery)


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://docker") as http:
        yield http
