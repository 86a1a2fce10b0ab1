"""Restart policies: Docker's backoff between runs, and the automatic starts it schedules."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from .. import kube
from ._errors import EngineError
from ._jobs import Jobs
from ._records import Container

log = logging.getLogger(__name__)

# Docker's restart backoff: 100 ms, doubled at each restart up to a minute, and back to 100 ms
# once a run lasted 10 s.
_RESTART_DELAY_FIRST = 0.1
_RESTART_DELAY_MAX = 60.0
_RESTART_RESET_AFTER = 10.0


def next_restart_delay(previous: float, ran_seconds: float) -> float:
    """How long Docker waits before starting a container again, after a run of
    `ran_seconds` that followed a wait of `previous` seconds (0: none yet)."""
    if ran_seconds >= _RESTART_RESET_AFTER or previous <= 0:
        return _RESTART_DELAY_FIRST
    return min(previous * 2, _RESTART_DELAY_MAX)


def reset_restarts(container: Container) -> None:
    """A client's start begins the restart policy afresh, as Docker's does."""
    container.restart_count = 0
    container.restart_delay = 0.0
    container.stopped_by_client = False


class Restarts:
    """Starts containers again as their restart policy says, through the same jobs as a
    client's start, after Docker's backoff; a stop, kill or removal during the wait ends it
    (see `cancel`).

    `start` is the engine's automatic start: it starts the container unless the wait it is
    given is no longer the container's pending restart.
    """

    def __init__(self, jobs: Jobs, spawn: Callable[[Callable[[], Awaitable[object]]], None],
                 start: Callable[[Container, trio.CancelScope], Awaitable[None]]) -> None:
        self._jobs = jobs
        self._spawn = spawn
        self._start = start

    def schedule(self, container: Container) -> bool:
        """Start the container again if its restart policy says so; called at its exit."""
        policy = container.config.restart_policy
        if container.stopped_by_client or not policy.restarts(container.exit_code,
                                                              container.restart_count):
            return False
        ran = ((container.finished_at - container.started_at).total_seconds()
               if container.finished_at and container.started_at else 0.0)
        container.restart_delay = next_restart_delay(container.restart_delay, ran)
        container.restart_count += 1
        wait = container.pending_restart = trio.CancelScope()
        self._spawn(partial(self._restart_after, container, wait))
        return True

    async def _restart_after(self, container: Container, wait: trio.CancelScope) -> None:
        try:
            with wait:
                await trio.sleep(container.restart_delay)
                await self._jobs.run((container.id, "start", object()),
                                     partial(self._start, container, wait))
        except (EngineError, kube.KubeError) as error:
            log.warning("restart of container %s failed: %s", container.short_id, error)
            if container.status == "created":  # as Docker leaves it: stopped, with the error
                container.status = "exited"
        finally:
            if container.pending_restart is wait:
                container.pending_restart = None
            container.notify()

    def cancel(self, container: Container) -> bool:
        """End a pending automatic restart; true if there was one."""
        wait, container.pending_restart = container.pending_restart, None
        if wait is None:
            return False
        wait.cancel()
        container.notify()
        return container.status != "running"
