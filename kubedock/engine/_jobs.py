"""Container transitions as jobs that outlive the request that asked for them.

A client that goes away (a read timeout, a killed CI step) cancels its request. Docker still
finishes a start, stop or removal it has begun, so kubedock does too: each transition runs in
the engine's nursery, and requests only wait for its outcome. Requests for the same transition
of the same container while one is under way may share it, and its outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection

import attrs
import trio

from .. import kube
from ._errors import EngineError

log = logging.getLogger(__name__)

# (container id, transition, what makes two requests the same): requests with equal keys share
# one job; a fresh `object()` as the last part gives a request a job of its own.
JobKey = tuple[str, str, object]


@attrs.define(eq=False)
class _Job:
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    done: trio.Event = attrs.field(factory=trio.Event)
    finished: bool = False
    error: Exception | None = None
    # Set by `Jobs.cancel`: what the waiters are told instead.
    cancelled_because: EngineError | None = None
    waiters: int = 0


class Jobs:
    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._jobs: dict[JobKey, _Job] = {}

    def __contains__(self, key: JobKey) -> bool:
        return key in self._jobs

    async def run(self, key: JobKey, transition: Callable[[], Awaitable[None]]) -> None:
        """Run `transition` as a job, or join the one with this key that is under way, and
        wait for its outcome. Cancelling the caller cancels only the wait."""
        job = self._jobs.get(key)
        if job is None:
            job = self._jobs[key] = _Job()
            self._nursery.start_soon(self._run, key, job, transition)
        job.waiters += 1
        try:
            await job.done.wait()
        finally:
            job.waiters -= 1
        if job.error is not None:
            raise job.error
        if not job.finished:
            raise EngineError(f"kubedock is shutting down: {key[1]} of container {key[0]} "
                              "was abandoned")

    def cancel(self, container_id: str, transitions: Collection[str],
               because: EngineError) -> None:
        """Abandon the container's jobs of these kinds; their waiters get `because`."""
        for (job_container, transition, _), job in self._jobs.items():
            if job_container == container_id and transition in transitions:
                job.cancelled_because = because
                job.scope.cancel()

    async def _run(self, key: JobKey, job: _Job,
                   transition: Callable[[], Awaitable[None]]) -> None:
        try:
            with job.scope:
                await transition()
                job.finished = True
            if job.scope.cancelled_caught:
                job.error = job.cancelled_because
        except Exception as error:
            job.error = error
            if job.waiters == 0:
                _log_unawaited(key, error)
        finally:
            del self._jobs[key]
            job.done.set()


def _log_unawaited(key: JobKey, error: Exception) -> None:
    container_id, transition, _ = key
    if isinstance(error, EngineError | kube.KubeError):
        log.warning("%s of container %s failed, its client gone: %s", transition,
                    container_id[:12], error)
    else:
        log.error("%s of container %s failed, its client gone", transition, container_id[:12],
                  exc_info=error)
