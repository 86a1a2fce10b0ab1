"""The reaper: removes what clients forgot, and what stopped kubedock instances left behind."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import attrs
import trio

from .. import kube
from .._metrics import REAPED
from ._engine import Engine
from ._errors import EngineError
from ._records import Container

log = logging.getLogger(__name__)

# An exec whose result nobody reads is kept this long after it finished.
_UNREAD_EXEC_SECONDS = 300.0


@attrs.frozen
class ReaperSettings:
    interval: float
    # Containers of this instance older than this are removed; 0 disables that.
    reapmax: float
    # How long another instance's heartbeat must have been expired before its objects go.
    grace: float


async def serve_reaper(
    engine: Engine, settings: ReaperSettings,
    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    absent_since: dict[str, datetime] = {}
    task_status.started()
    while True:
        await trio.sleep(settings.interval)
        try:
            await reap(engine, settings, absent_since)
        except Exception:
            log.exception("reaper pass failed; the next one tries again")


async def reap(engine: Engine, settings: ReaperSettings,
               absent_since: dict[str, datetime]) -> None:
    """One pass. Failures are logged: the next pass tries again."""
    now = trio.current_time()
    engine.execs.reap(read_before=now - settings.interval,
                      finished_before=now - _UNREAD_EXEC_SECONDS)
    if settings.reapmax > 0:
        too_old = datetime.now(UTC) - timedelta(seconds=settings.reapmax)
        async with trio.open_nursery() as nursery:
            for container in engine.containers():
                if container.created < too_old and container.status != "removing":
                    nursery.start_soon(_remove, engine, container)
    try:
        await kube.reap_dead_instances(
            engine.cluster, engine.settings.instance_id, settings.grace, absent_since)
    except kube.KubeError as error:
        log.warning("cannot reap the objects of stopped instances: %s", error)


async def _remove(engine: Engine, container: Container) -> None:
    log.info("removing container %s: older than the reaper's maximum age", container.short_id)
    try:
        await engine.remove(container, force=True)
        REAPED.inc()
    except (EngineError, kube.KubeError) as error:
        log.warning("cannot remove container %s: %s", container.short_id, error)
