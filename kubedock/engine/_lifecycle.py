"""Transitions of a container: the bodies of the engine's start, stop, kill, restart,
update and removal jobs, which create, signal and delete its pod."""

from __future__ import annotations

import contextlib
import logging
import signal as signals
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .. import kube
from ._archive import fill_volumes
from ._errors import (
    Conflict,
    EngineError,
    NoSuchContainer,
    NotModified,
    StartFailed,
    TimedOut,
)
from ._records import Container, ContainerConfig, is_running
from ._replacement import Replacement, prepared
from ._restarts import reset_restarts
from ._services import publish_services
from ._signals import Stay, signal_and_stay, signal_name
from ._specs import grace_seconds
from ._stall import fail_when_stalled, start_timeout_error
from ._supervision import end_program

if TYPE_CHECKING:
    from ._engine import Engine

log = logging.getLogger(__name__)

_KILL_WAIT_SECONDS = 10
# How long a removal waits for the followers of an exited container's log to read the rest.
_FOLLOWERS_SECONDS = 10
# How long after its grace period a stopped container may take to be reported stopped.
_STOP_REPORT_SECONDS = 30


@contextlib.asynccontextmanager
async def _transition(container: Container) -> AsyncIterator[None]:
    async with container.lifecycle:
        if container.removed:
            raise NoSuchContainer(container.id)
        yield


async def start_job(engine: Engine, container: Container) -> None:
    async with _transition(container):
        if container.restarting:
            raise NotModified("container already started")
        reset_restarts(container)
        await _start(engine, container)


# A restart policy starts the container again through the same jobs, after Docker's
# backoff (see `Restarts`).
async def automatic_start(engine: Engine, container: Container, wait: trio.CancelScope) -> None:
    async with _transition(container):
        # A stop may have come between the backoff and this job.
        if container.pending_restart is wait and container.status != "running":
            await _start(engine, container)


async def update(engine: Engine, container: Container, config: ContainerConfig,
                 resource_fields: tuple[str, ...]) -> None:
    async with _transition(container):
        if container.status == "running" and container.pod_name is not None:
            await engine._resizer.update(container, container.pod_name,
                                         engine._specs.build(container), config, resource_fields)
        container.config = config
    engine._publish(container, "update")


async def _start(engine: Engine, container: Container, ahead: Replacement | None = None) -> None:
    """Start the container in a new pod; `ahead`: that pod, made ahead by a restart."""
    if container.status == "running":
        raise NotModified("container already started")
    await engine.volumes.ensure(container.config.mounts)
    await _keep_logs_of_last_run(engine, container)
    if container.pod_name is not None:
        await delete_pod_and_wait(engine, container, grace_seconds=0)
    if ahead is None:
        await engine._naming.publish_links(container)
        container.seeds = await engine.seeds.for_start(engine.images, container.config,
                                                       engine.volumes.new)
        spec = engine._specs.build(container)
        if _installs_supervisor(spec):
            spec = attrs.evolve(
                spec, supervisor_config_map=await engine._supervisor.config_map())
        manifest = kube.pod_manifest(spec, engine.settings)
    else:
        # Only a container without a supervisor is replaced ahead (see `_replacement`).
        spec, manifest = ahead.spec, ahead.manifest
    pod_name = manifest["metadata"]["name"]
    container.pod_name, container.pod_observed, container.pod_ip = pod_name, False, None
    container.setup_running = False
    container.tools = kube.TOOLS_DIR if spec.needs_setup else None
    container.supervisor = kube.supervisor_path(spec) if spec.supervised_argv else None
    container.files_kept = False
    container.status, container.published, container.health = "created", (), None
    container.error, container.exit_code, container.oom_killed = "", 0, False
    container.stall = None
    container.saved_logs = None
    container.finished_at = None
    engine._by_pod[pod_name] = container
    try:
        container.start_requested_at = (ahead.requested_at if ahead is not None
                                        else datetime.now(UTC))
        pod = await _create_pod(engine, container, manifest, ahead)
        engine.volumes.mounted(container)
        secret = kube.dind_secret(pod, engine.settings)
        if secret is not None:
            # The pod waits for its Secret volume, so the Secret can only follow it (it is
            # owned by the pod: it goes when the pod does).
            await engine.cluster.create_object(kube.SECRETS, secret)
        await _until_started(engine, container, pod_name, needs_setup=spec.needs_setup)
        if is_running(container):
            if engine._names == "services":
                await publish_services(engine.cluster, pod,
                                       engine._naming.service_names(container),
                                       container.config.ports_with_image)
            await engine._exposure.publish(container)
            await engine._exposure.keep_published(container)
    except Exception as failure:
        await _undo_start(engine, container, failure)
        raise
    if is_running(container):
        engine._monitor_health(container)
        engine._watch_supervised(container)
        if _installs_supervisor(spec) and not spec.supervisor_config_map:
            engine._spawn(partial(engine._supervisor.copy_from, pod_name))
    engine._publish(container, "start")


def _installs_supervisor(spec: kube.ContainerSpec) -> bool:
    """Whether the pod needs the supervisor brought in (the instance's ConfigMap, else the
    tools container): an init container brings it with the rest of the setup."""
    return bool(spec.supervised_argv) and not spec.needs_setup


async def _keep_logs_of_last_run(engine: Engine, container: Container) -> None:
    """Docker's log of a container spans its runs; each run of kubedock's is a new pod."""
    from ._logs import bounded, snapshot_logs

    logs = container.saved_logs
    if logs is None and container.pod_name is not None and container.pod_observed:
        try:
            logs = await snapshot_logs(engine.cluster, container)
        except* kube.KubeError as failure:  # a pod whose process never ran has no log
            log.debug("no logs kept of pod %s: %s", container.pod_name, failure)
    container.earlier_logs = bounded((*container.earlier_logs, *(logs or ())))


async def _create_pod(engine: Engine, container: Container, manifest: Mapping[str, Any],
                      ahead: Replacement | None) -> dict[str, Any]:
    try:
        if ahead is None:
            return await engine.cluster.create_pod(manifest)
        pod, news = await engine._replacements.take(ahead)
        if news is not None:
            engine.observe(news)
        return pod
    except kube.KubeError as error:
        if 400 <= error.status < 500:
            # Refused: there is no pod, so nothing to delete or wait for later.
            engine._by_pod.pop(manifest["metadata"]["name"], None)
            container.pod_name = None
        raise


async def _until_started(engine: Engine, container: Container, pod_name: str, *,
                         needs_setup: bool) -> None:
    """Wait until the pod's main container runs (or ran), else fail the start."""
    exits = container.exits

    def settled() -> bool:
        return (container.status != "created" or container.exits != exits
                or bool(container.error) or container.pod_name != pod_name)

    try:
        with trio.fail_after(engine._start_timeout):
            async with trio.open_nursery() as nursery:
                if needs_setup:
                    nursery.start_soon(_fill_volumes, engine, container, pod_name)
                nursery.start_soon(fail_when_stalled, container, engine._fail_fast_after)
                await engine._until(container, settled)
                nursery.cancel_scope.cancel()
    except trio.TooSlowError:
        raise StartFailed(start_timeout_error(engine._start_timeout, pod_name,
                                              container.stall, engine.pod_watch), None) from None
    if container.error:
        reason, _, message = container.error.partition(": ")
        raise StartFailed(reason, message or None)
    if container.pod_name != pod_name:
        raise StartFailed("PodDeleted", f"pod {pod_name} was deleted before it ran")


async def _undo_start(engine: Engine, container: Container, failure: Exception) -> None:
    """Leave no pod behind a failed start; the record says why, as Docker's does: not
    running, exit code 128, the error kept."""
    try:
        await delete_pod_and_wait(engine, container, grace_seconds=0)
    except kube.KubeError as error:
        # The watch keeps the record true to the pod; a removal deletes it again.
        log.warning("cannot delete pod %s after a failed start: %s",
                    container.pod_name, error)
    engine.volumes.unmounted(container)
    container.exit_code = 128
    container.error = getattr(failure, "message", None) or str(failure)
    if container.config.auto_remove:
        # As Docker does: `docker run --rm` waits for the removal after a failed start.
        engine._spawn(partial(engine._remove_unless_gone, container))


async def _fill_volumes(engine: Engine, container: Container, pod_name: str) -> None:
    # The API server upgrades an attach to a container that does not run yet, then ends
    # it with an error status: only the pod watch can say when attaching makes sense.
    await engine._until(container, lambda: container.setup_running)
    try:
        await fill_volumes(engine.cluster, pod_name, container, engine.archives.staged(container))
    except (kube.KubeError, OSError, trio.BrokenResourceError) as error:
        container.error = f"CopyFailed: copying files into the pod failed: {error}"
        container.notify()


async def stop(engine: Engine, container: Container, stop_seconds: int | None, *,
               replacing: bool = False, replacement: Replacement | None = None) -> None:
    """Stop as `docker stop` does; `replacing` when a new pod follows (a restart), and
    `replacement` is that pod, created as soon as the process is known to have ended."""
    stay: Stay | None = None
    async with _transition(container):
        container.stopped_by_client = True
        if engine._restarts.cancel(container):
            engine._publish(container, "stop")
            return
        if container.status != "running":
            raise NotModified("container already stopped")
        exits = container.exits
        grace = grace_seconds(container)
        seconds = grace if stop_seconds is None or stop_seconds < 0 else stop_seconds
        stop_signal = signal_name(container.config.stop_signal or "SIGTERM")
        # The kubelet stops containers with SIGTERM; another stop signal is sent from
        # inside, and SIGKILL follows when the grace period is over, as in Docker. A pod
        # that a new one replaces is signalled from inside too, then deleted as soon as its
        # process is gone: the kubelet reports a stop it carries out ~2 s after the kill.
        signalled = stop_signal != "SIGTERM" or replacing or container.supervisor is not None
        engine._publish(container, "kill", signal=str(int(signals.Signals[stop_signal])))
        if stop_signal == "SIGKILL" and container.supervisor is not None:
            # The supervisor cannot pass on what it cannot catch: it kills the program.
            await _kill_now(engine, container)
        elif signalled:
            try:
                stay = await _deliver_stop_signal(engine, container, stop_signal, replacement)
            except (Conflict, TimedOut):
                if stop_signal != "SIGTERM":
                    raise
                # Neither the image nor the toolbox can signal it: the kubelet stops it.
                signalled = False
                await _save_logs_and_delete(engine, container, grace_seconds=seconds)
        else:
            if seconds != grace:
                await _save_logs_and_delete(engine, container, grace_seconds=seconds)
            else:
                await _deadline_stop(engine, container)

    def stopped() -> bool:
        return container.status != "running" or container.exits != exits

    def ended() -> bool:  # before Kubernetes says so
        return stay is not None and stay.ended

    try:
        if signalled:
            with trio.move_on_after(seconds):
                await engine._until(container, lambda: stopped() or ended())
            if replacement is not None and ended() and not stopped():
                # Its pod starts while the kubelet gets round to report this end.
                engine._replacements.create_soon(replacement)
            async with container.lifecycle:
                if not stopped() and not ended():
                    engine._publish(container, "kill", signal=str(int(signals.SIGKILL)))
                    await _kill_now(engine, container)
        with trio.move_on_after(seconds + _STOP_REPORT_SECONDS):
            await engine._until(container, stopped)
    finally:
        if stay is not None:
            stay.close()
    if not stopped():
        raise TimedOut(
            f"cannot stop container: {container.id}: tried to stop the container, but "
            f"Kubernetes did not report it stopped within {seconds + _STOP_REPORT_SECONDS} s"
        )
    engine._publish(container, "stop")


async def _deliver_stop_signal(engine: Engine, container: Container, name: str,
                               replacement: Replacement | None) -> Stay | None:
    """Deliver the stop signal from inside; for a `replacement` to follow, from a shell that
    stays to tell the end of the process, if the image has one."""
    assert container.pod_name is not None
    if replacement is not None:
        stay = await signal_and_stay(engine.cluster, engine._nursery, container,
                                     container.pod_name, name)
        if stay is not None:
            return stay
    await engine._signaller.deliver(container, container.pod_name, name)
    return None


async def kill(engine: Engine, container: Container, name: str) -> None:
    async with _transition(container):
        if engine._restarts.cancel(container):
            container.stopped_by_client = True
            engine._publish(container, "kill", signal=str(int(signals.Signals[name])))
            return
        if container.status != "running":
            raise Conflict(f"Container {container.id} is not running")
        exits = container.exits
        # As Docker's: a container a client killed is not restarted by its policy.
        container.stopped_by_client = True
        pod_name = container.pod_name
        by_supervisor = name == "SIGKILL" and container.supervisor is not None
        if by_supervisor:
            # Its end may be reported as soon as the supervisor has killed it: the kill
            # event comes first, as with Docker.
            engine._publish(container, "kill", signal=str(int(signals.SIGKILL)))
        if name == "SIGKILL":
            await _kill_now(engine, container)
    if name != "SIGKILL":
        # Outside the lifecycle lock: a signal exec that takes long (at most
        # _SIGNAL_SECONDS) must not hold up the exit it may cause, nor an auto-remove.
        assert pod_name is not None
        await engine._signaller.deliver(container, pod_name, name)
    if not by_supervisor:
        engine._publish(container, "kill", signal=str(int(signals.Signals[name])))
    if name == "SIGKILL":
        # As with Docker, the container is dead when `docker kill` returns.
        with trio.move_on_after(_KILL_WAIT_SECONDS):
            await engine._until(container, lambda: container.status != "running"
                                or container.exits != exits)


async def _kill_now(engine: Engine, container: Container) -> None:
    """SIGKILL the container's process. A supervised one's supervisor kills it and the pod
    stays with the files, the end reported from its record as any other; without one, or
    when it cannot be reached, the pod is deleted."""
    assert container.pod_name is not None
    if container.supervisor is not None and await end_program(
            engine.cluster, container, container.pod_name, container.supervisor):
        return
    await _save_logs_and_delete(engine, container, grace_seconds=0)


async def restart(engine: Engine, container: Container, stop_seconds: int | None) -> None:
    replacement = await _replacement(engine, container)
    try:
        with contextlib.suppress(NotModified):
            await stop(engine, container, stop_seconds, replacing=True, replacement=replacement)
        ahead = replacement if replacement and replacement.requested_at else None
        async with _transition(container):
            reset_restarts(container)
            # Started meanwhile by another request: the restart is done, as with Docker.
            with contextlib.suppress(NotModified):
                await _start(engine, container, ahead)
    finally:
        if replacement is not None:
            engine._replacements.discard_soon(replacement)
    engine._publish(container, "restart")


async def _replacement(engine: Engine, container: Container) -> Replacement | None:
    """The next pod of a running container, prepared for a restart (see `_replacement`);
    None when the end of its process cannot be learnt at once (its PID 1 is kubedock's
    supervisor or, with --init, pause) or the preparation fails: the start after the stop
    then makes its pod, failing as it does."""
    if (container.status != "running" or container.pod_name is None
            or container.supervisor is not None or container.config.init):
        return None
    try:
        await engine.volumes.ensure(container.config.mounts)
        await engine._naming.publish_links(container)
        seeds = await engine.seeds.for_start(engine.images, container.config,
                                             engine.volumes.new)
    except (EngineError, kube.KubeError):
        return None
    container.seeds = seeds
    return prepared(engine._specs.build(container), engine.settings)


async def remove(engine: Engine, container: Container, *, force: bool, volumes: bool) -> None:
    async with _transition(container):
        if container.status == "running" and not force:
            raise Conflict(
                f"You cannot remove a running container {container.id}. "
                "Stop the container before attempting removal or force remove"
            )
        if container.status == "exited":
            # A client that followed the log of a supervised run gets the rest of it read
            # after the exit (docker-py's run: logs, wait, remove, then the logs read), and
            # that reads the pod the removal deletes.
            with trio.move_on_after(_FOLLOWERS_SECONDS):
                await engine._until(container, lambda: container.log_followers == 0)
        status, container.status = container.status, "removing"
        container.notify()
        try:
            await delete_pod_and_wait(engine, container, grace_seconds=0)
        except Exception:
            # Still there: the record stays, and a later removal tries again.
            container.status = status
            container.notify()
            raise
        linked = engine._naming.link_targets(container)
        if volumes:
            await engine.volumes.remove_anonymous(container)
        _forget(engine, container)
    # The aliases its links gave go with it.
    for target in linked:
        if target.status == "running":
            try:
                await engine._naming.republish(target)
            except kube.KubeError as error:
                log.warning("container %s keeps the names of links to it: %s",
                            target.short_id, error)


async def _deadline_stop(engine: Engine, container: Container) -> None:
    # An exceeded activeDeadlineSeconds makes the kubelet stop the containers (stop signal,
    # then SIGKILL after the grace period) while the pod, its exit code and its logs stay.
    assert container.pod_name is not None
    await engine.cluster.patch_pod(container.pod_name, {"spec": {"activeDeadlineSeconds": 1}})


async def _save_logs_and_delete(engine: Engine, container: Container, *,
                                grace_seconds: int) -> None:
    from ._logs import snapshot_logs

    assert container.pod_name is not None
    logs = await snapshot_logs(engine.cluster, container)
    # Kept only once the pod goes: while it runs, its live log is the one to read.
    await engine.cluster.delete_pod(container.pod_name, grace_seconds=grace_seconds)
    container.saved_logs = logs


async def delete_pod_and_wait(engine: Engine, container: Container, *,
                              grace_seconds: int) -> None:
    pod_name = container.pod_name
    if pod_name is None:
        return
    existed = await engine.cluster.delete_pod(pod_name, grace_seconds=grace_seconds)
    if existed or container.pod_observed:
        # Until the watch has reported the deletion, a new pod must not take the name.
        with trio.move_on_after(max(engine._start_timeout, grace_seconds + 5)):
            await engine._until(container, lambda: container.pod_name != pod_name)
    engine._by_pod.pop(pod_name, None)
    if container.pod_name == pod_name:
        container.pod_name = None


def _forget(engine: Engine, container: Container) -> None:
    if container.exposure is not None:
        container.exposure.cancel()
    engine._containers.pop(container.id, None)
    if container.pod_name is not None:
        engine._by_pod.pop(container.pod_name, None)
    container.removed = True
    engine.execs.forget_container(container)
    engine.networks.forget(container.id)
    engine.archives.forget(container)
    engine.usage.forget(container)
    engine.toolbox.forget(container)
    container.notify()
    engine._publish(container, "destroy")
