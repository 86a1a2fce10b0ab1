"""The container list's Status, worded as `docker ps` and `docker compose ps` show it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio

from kubedock.api._inspect import human_duration, status_text
from kubedock.engine import Container, ContainerConfig
from kubedock.engine._records import Health

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(("seconds", "words"), [
    (0, "Less than a second"), (0.99, "Less than a second"), (1, "1 second"),
    (1.9, "1 second"), (2, "2 seconds"), (59.9, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"),
    (3600, "About an hour"), (5399, "About an hour"), (5400, "2 hours"),
    (47 * 3600, "47 hours"), (48 * 3600 - 1, "2 days"), (13 * 86400, "13 days"),
    (14 * 86400, "2 weeks"), (59 * 86400, "8 weeks"), (60 * 86400, "2 months"),
    (729 * 86400, "24 months"), (730 * 86400, "2 years"),
])
def test_human_durations(seconds: float, words: str) -> None:
    assert human_duration(seconds) == words


def container(**state: object) -> Container:
    record = Container(id="c" * 64, name="app", created=NOW - timedelta(hours=1),
                       config=ContainerConfig(image="busybox:1.36"))
    for key, value in state.items():
        setattr(record, key, value)
    return record


@pytest.mark.parametrize(("state", "text"), [
    ({}, "Created"),
    ({"status": "running", "started_at": NOW - timedelta(seconds=4)}, "Up 4 seconds"),
    ({"status": "running", "started_at": NOW - timedelta(seconds=4),
      "health": Health("starting")}, "Up 4 seconds (health: starting)"),
    ({"status": "running", "started_at": NOW - timedelta(minutes=5),
      "health": Health("healthy")}, "Up 5 minutes (healthy)"),
    ({"status": "exited", "exit_code": 7, "finished_at": NOW - timedelta(hours=2)},
     "Exited (7) 2 hours ago"),
    ({"status": "exited", "exit_code": 1, "pending_restart": trio.CancelScope(),
      "finished_at": NOW - timedelta(seconds=1)}, "Restarting (1) 1 second ago"),
    ({"status": "removing"}, "Removal In Progress"),
])
def test_status_text(state: dict[str, object], text: str) -> None:
    assert status_text(container(**state), NOW) == text
