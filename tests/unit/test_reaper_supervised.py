"""A failed reaper pass is logged, and the next pass runs all the same."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from kubedock.engine import ReaperSettings, _reaper, serve_reaper


async def test_a_failed_pass_is_logged_and_the_next_one_runs(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    passes: list[float] = []

    async def reap(*_: Any) -> None:
        await trio.lowlevel.checkpoint()
        passes.append(trio.current_time())
        if len(passes) == 1:
            raise KeyError("metadata")

    monkeypatch.setattr(_reaper, "reap", reap)
    settings = ReaperSettings(interval=60, reapmax=3600, grace=30)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_reaper, None, settings)
        await trio.sleep(150)
        nursery.cancel_scope.cancel()
    assert len(passes) == 2
    [failure] = caplog.records
    assert failure.getMessage() == "reaper pass failed; the next one tries again"
