"""Observed state: what the pod watch and a container's supervisor report, folded into the
container's record, and what follows an exit (the restart policy, an automatic removal)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

import trio

from .. import kube
from ._records import Container
from ._stall import stall_after
from ._supervision import await_exit

if TYPE_CHECKING:
    from ._engine import Engine

_ATTACH_DRAIN_SECONDS = 30
_EXIT_CLAIM_SECONDS = 2


def observe(engine: Engine, observation: kube.ContainerObservation) -> None:
    """Fold one pod event into its container's record (called by the pod watch)."""
    if engine._replacements.hold(observation):
        return
    container = engine._by_pod.get(observation.pod_name)
    if container is None or container.pod_name != observation.pod_name:
        return
    if observation.deleted:
        del engine._by_pod[observation.pod_name]
        container.pod_name = None
        if container.status == "running":
            _ended_in_pod(engine, container, observation.exit_code or 137, observation)
        container.files_kept = False
        container.notify()
        return
    container.pod_observed = True
    container.pod_ip = observation.pod_ip or container.pod_ip
    container.setup_running = observation.setup == "running"
    if container.status == "created":
        container.stall = stall_after(container.stall, observation)
        if observation.fatal:
            container.error = f"{observation.reason or 'Failed'}: {observation.message or ''}"
            container.error = container.error.rstrip(": ")
        elif observation.state in ("running", "terminated"):
            container.status = "running"
            container.started_at = kube.start_time(
                observation, seen=datetime.now(UTC), requested=container.start_requested_at)
            if observation.state == "running" and container.config.healthcheck is not None:
                from ._records import Health

                container.health = Health()
    if observation.state == "terminated":
        container.files_kept = False
        if container.status == "running":
            _ended_in_pod(engine, container, observation.exit_code or 0, observation)
    container.notify()


def _ended_in_pod(engine: Engine, container: Container, exit_code: int,
                  observation: kube.ContainerObservation) -> None:
    _exited(engine, container, exit_code, oom_killed=observation.reason == "OOMKilled",
            finished_at=kube.transition_time(observation.finished_at, datetime.now(UTC)))


async def supervise(engine: Engine, container: Container, pod_name: str, supervisor: str) -> None:
    """Report the end of a supervised container's program (see `_supervision`): its
    read-write binds are written back first, so that a client whose wait returns finds
    them in their sources; the pod stays, holding the container's files."""
    record = await await_exit(engine.cluster, container, pod_name, supervisor)
    if record is None:
        return
    # kubedock's clock when it learnt of the end, as for an end the watch reports.
    finished_at = kube.transition_time(record.finished_at, datetime.now(UTC))
    from ._writeback import write_back_binds

    await write_back_binds(engine, container)
    if container.pod_name == pod_name and container.status == "running":
        container.files_kept = True
        _exited(engine, container, record.exit_code, oom_killed=record.oom_killed,
                finished_at=finished_at)
        container.notify()


def _exited(engine: Engine, container: Container, exit_code: int, *, oom_killed: bool,
            finished_at: datetime) -> None:
    container.status = "exited"
    container.exit_code = exit_code
    container.oom_killed = oom_killed
    container.finished_at = finished_at
    container.exits += 1
    if container.exposure is not None:
        container.exposure.cancel()
        container.exposure = None
    container.published = ()
    restarts = engine._restarts.schedule(container)
    engine._publish(container, "die", exitCode=str(exit_code))
    engine.volumes.unmounted(container)
    if container.config.auto_remove and not restarts:
        engine._spawn(partial(_auto_remove, engine, container))


async def _auto_remove(engine: Engine, container: Container) -> None:
    # Attached clients are still reading the last output from the pod's log.
    with trio.move_on_after(_ATTACH_DRAIN_SECONDS):
        await engine._until(container, lambda: container.attached == 0)
    # The pod watch may see a short process end before its start has even returned, where
    # Docker would still be running it: a client that asks for the exit code right after
    # the start (docker-py's run: start, logs, wait) gets it before the record goes.
    with trio.move_on_after(_EXIT_CLAIM_SECONDS):
        await engine._until(container, lambda: container.waiting > 0
                            or container.reported_exits == container.exits)
    if container.status != "exited" or container.removed:
        return
    # A client that saw the start may ask for the logs while the pod goes away (docker-py's
    # run does: start, logs, wait): they are kept until the record goes.
    from ._logs import snapshot_logs

    logs = container.saved_logs or await snapshot_logs(engine.cluster, container)
    if container.status == "exited" and not container.removed:
        container.saved_logs = logs
        await engine._remove_unless_gone(container)
