"""Finished exec records go once read, or after a while when nobody reads them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import trio

from kubedock.engine import Container, ContainerConfig, ExecConfig, NoSuchExec
from kubedock.engine._exec import ExecStore


async def test_reap_drops_read_and_long_unread_execs_only() -> None:
    store = ExecStore()
    container = Container(id="c" * 64, name="c", created=datetime.now(UTC),
                          config=ContainerConfig(image="busybox"), status="running")
    running, read, unread = (store.create(container, ExecConfig(cmd=("true",)))
                             for _ in range(3))
    finished = trio.current_time()
    read.finished_at = unread.finished_at = finished
    read.mark_read()
    running.mark_read()  # not finished: there is no outcome to have read yet
    assert running.read_at is None
    store.reap(read_before=finished + 60, finished_before=finished)
    assert store.get(running.id) is running
    assert store.get(unread.id) is unread
    with pytest.raises(NoSuchExec):
        store.get(read.id)
    store.reap(read_before=0, finished_before=finished + 1)
    with pytest.raises(NoSuchExec):
        store.get(unread.id)
    assert store.get(running.id) is running
