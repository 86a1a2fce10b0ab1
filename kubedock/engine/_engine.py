"""The engine: container records, their state machine, and the pods behind them.

State comes from the pod watch (``observe``), never from polling: start, wait, stop and inspect
all read records that the watch keeps fresh, and wake up through each record's ``changed`` event.
"""

from __future__ import annotations

import contextlib
import logging
import signal as signals
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

import attrs
import trio

from .. import kube
from .._config import ExposeMode, KeepExitedFiles
from ._adoption import Adoption
from ._archive import ArchiveStore, fill_volumes
from ._attach import AttachRequest, attach
from ._container_names import checked_name, generated_name
from ._errors import (
    Conflict,
    EngineError,
    InvalidParameter,
    NoSuchContainer,
    NotModified,
    StartFailed,
    TimedOut,
    Unsupported,
)
from ._events import EventBus
from ._exec import Exec, ExecConfig, ExecStore, claim_exec, run_exec
from ._exposure import Exposure
from ._images import ImageStore, parse_reference
from ._jobs import Jobs
from ._logs import LogRequest, send_logs
from ._naming import NameMode, Naming
from ._networks import Network, NetworkStore
from ._pre_pull import PrePuller
from ._pull_secrets import PullSecrets
from ._records import Container, ContainerConfig, is_running, new_id
from ._replacement import Replacement, Replacements, prepared
from ._resize import Resizer
from ._restarts import Restarts, reset_restarts
from ._seeds import SeedStore
from ._services import publish_services
from ._signals import Signaller, Stay, signal_and_stay, signal_name
from ._specs import PodSpecs, grace_seconds
from ._stall import fail_when_stalled, stall_after, start_timeout_error
from ._stats import UsageReader, VolumeUsage
from ._supervision import await_exit
from ._toolbox import Toolbox
from ._volumes import VolumeStore

log = logging.getLogger(__name__)

WaitCondition = Literal["not-running", "next-exit", "removed"]

_ATTACH_DRAIN_SECONDS = 30
_KILL_WAIT_SECONDS = 10
_EXIT_CLAIM_SECONDS = 2
# How long after its grace period a stopped container may take to be reported stopped.
_STOP_REPORT_SECONDS = 30


class Engine:
    def __init__(
        self,
        cluster: kube.ClusterBoundary,
        settings: kube.PodSettings,
        *,
        nursery: trio.Nursery,
        start_timeout: float,
        expose: ExposeMode,
        expose_host: str,
        fail_fast_after: float,
        names: NameMode = "external",
        claims: kube.ClaimSettings | None = None,
        images: ImageStore | None = None,
        keep_exited_files: KeepExitedFiles = "never",
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.events = EventBus()
        self.images = images or ImageStore()
        self.execs = ExecStore()
        self._nursery = nursery
        self._jobs = Jobs(nursery)
        self._restarts = Restarts(self._jobs, self._spawn, self._automatic_start)
        self._start_timeout = start_timeout
        self._fail_fast_after = fail_fast_after
        self._expose = expose
        self._containers: dict[str, Container] = {}
        self._by_pod: dict[str, Container] = {}
        self.networks = NetworkStore()
        self.archives = ArchiveStore()
        self.usage = UsageReader(cluster, settings.namespace)
        self.volumes = VolumeStore(cluster, settings, claims or kube.ClaimSettings(), self.events,
                                   self.containers)
        self.toolbox = Toolbox(cluster, settings)
        self.pull_secrets = PullSecrets(cluster, settings)
        # Set by the server with --pre-pull: pulls then have the node pull the image too.
        self.pre_puller: PrePuller | None = None
        self.seeds = SeedStore()
        self._signaller = Signaller(cluster, self.toolbox)
        self._replacements = Replacements(cluster, nursery)
        self._specs = PodSpecs(self.networks, self.archives, self.volumes, expose,
                               self.dns_names, self.pull_secrets.of, keep_exited_files)
        self._naming = Naming(cluster, settings, names, self._containers, self.networks,
                              self.events, self.get, self._specs.build)
        self._resizer = Resizer(cluster, settings, self.usage)
        self._exposure = Exposure(cluster, nursery, expose, expose_host, self._specs.offline,
                                  self.toolbox.udp_relay)
        self._adoption = Adoption(cluster, self._containers, self._by_pod, self.images,
                                  self.networks, self._exposure, self.observe,
                                  partial(self._delete_pod_and_wait, grace_seconds=0),
                                  self._monitor_health, self._watch_supervised)
        self._names = names
        # Set by the server once the pod watch runs: a start that times out says why it may have.
        self.pod_watch: kube.WatchHealth | None = None

    @property
    def label_selector(self) -> str:
        return kube.instance_selector(self.settings.instance_id)

    # -- lookups ---------------------------------------------------------------------------

    def containers(self) -> list[Container]:
        return sorted(self._containers.values(), key=lambda c: c.created, reverse=True)

    def get(self, ref: str) -> Container:
        """Find a container by full id, name (with or without ``/``) or unique id prefix."""
        if ref in self._containers:
            return self._containers[ref]
        name = ref.removeprefix("/")
        for container in self._containers.values():
            if container.name == name:
                return container
        matches = [c for c in self._containers.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NoSuchContainer(ref)

    def volume_usage(self) -> list[VolumeUsage]:
        """The named volumes, as disk usage (``/system/df``) lists them: a claim's size is
        the provisioner's business, so none is measured."""
        return [VolumeUsage(volume.name, volume.mountpoint, volume.created, volume.labels,
                            ref_count=len(self.volumes.users(volume)))
                for volume in self.volumes.all()]

    # -- lifecycle -------------------------------------------------------------------------

    def create(self, name: str | None, config: ContainerConfig) -> Container:
        image = parse_reference(config.image)
        if self._expose != "pod-ip":
            sctp = [p for p in config.ports if p.protocol not in ("tcp", "udp")]
            if sctp:
                raise Unsupported(
                    f"port {sctp[0].port}/{sctp[0].protocol}: kubedock relays TCP and UDP only; "
                    "run kubedock without --port-forward and --reverse-proxy to reach it on the "
                    "pod IP"
                )
        binds_docker_socket = any(mount.kind == "docker-socket" for mount in config.mounts)
        if binds_docker_socket and self.settings.dind_image is None:
            raise Unsupported(
                "a bind of the Docker socket is refused: kubedock runs with --disable-dind; "
                "disable Ryuk (TESTCONTAINERS_RYUK_DISABLED=true)"
            )
        if binds_docker_socket and self.settings.kubedock_url is None:
            raise Unsupported(
                "a bind of the Docker socket needs kubedock's API reachable from pods: serve on "
                "a pod-reachable address (--listen-addr) or name one with --kubedock-url; or "
                "disable Ryuk (TESTCONTAINERS_RYUK_DISABLED=true)"
            )
        container_id = new_id()
        name = generated_name(container_id) if name is None else checked_name(name)
        self._check_name_free(name)
        joined = self._naming.requested_networks(config)
        config = attrs.evolve(config, links=tuple(
            (self._naming.linked(ref).id, alias) for ref, alias in config.links))
        container = Container(
            id=container_id, name=name, created=datetime.now(UTC), config=config
        )
        self.images.add(image)
        self._containers[container_id] = container
        for network, aliases, links in joined:
            self.networks.connect(network, container_id, name, aliases, links)
        self._publish(container, "create")
        return container

    def rename(self, container: Container, new_name: str) -> None:
        new_name = checked_name(new_name)
        if new_name == container.name:
            raise Conflict("Renaming a container with the same name as its current name")
        self._check_name_free(new_name)
        old = container.name
        container.name = new_name
        self._publish(container, "rename", oldName=f"/{old}")

    # Start, stop, kill, restart and remove run as jobs in the engine's nursery (see `Jobs`):
    # a request awaits the outcome, and a client that goes away stops only its own wait, as
    # with Docker. Concurrent starts (or stops) share one job; every kill delivers its signal
    # and every restart restarts. Each holds the container's lifecycle lock while it changes
    # the pod, so that transitions never interleave half-way; a stop waits for the exit
    # outside the lock, so that a kill or a forced removal can overtake a slow one.

    async def start(self, container: Container) -> None:
        await self._jobs.run((container.id, "start", ""), partial(self._start_job, container))

    # A restart policy starts the container again through the same jobs, after Docker's
    # backoff (see `Restarts`).

    async def _automatic_start(self, container: Container, wait: trio.CancelScope) -> None:
        async with self._transition(container):
            # A stop may have come between the backoff and this job.
            if container.pending_restart is wait and container.status != "running":
                await self._start(container)

    async def stop(self, container: Container, stop_seconds: int | None) -> None:
        await self._jobs.run((container.id, "stop", stop_seconds),
                             partial(self._stop, container, stop_seconds))

    async def kill(self, container: Container, signal: str) -> None:
        name = signal_name(signal or "KILL")
        await self._jobs.run((container.id, "kill", object()),
                             partial(self._kill, container, name))

    async def restart(self, container: Container, stop_seconds: int | None) -> None:
        await self._jobs.run((container.id, "restart", object()),
                             partial(self._restart, container, stop_seconds))

    async def update(self, container: Container, config: ContainerConfig,
                     resource_fields: tuple[str, ...] = ()) -> None:
        """Take `config` (Docker's update: resources and restart policy); a running
        container's pod is resized in place, and `resource_fields` name what asked for it.
        A job, as the other transitions: a resize is never left half-recorded."""
        await self._jobs.run((container.id, "update", object()),
                             partial(self._update, container, config, resource_fields))

    async def _update(self, container: Container, config: ContainerConfig,
                      resource_fields: tuple[str, ...]) -> None:
        async with self._transition(container):
            if container.status == "running" and container.pod_name is not None:
                await self._resizer.update(container, container.pod_name,
                                           self._specs.build(container), config, resource_fields)
            container.config = config
        self._publish(container, "update")

    async def remove(self, container: Container, *, force: bool, volumes: bool = False) -> None:
        """Remove the container and its pod; with `force` a running container too, and a
        start under way is abandoned; with `volumes`, its anonymous volumes too."""
        if (container.id, "remove", "") in self._jobs:
            raise Conflict(f"removal of container {container.id} is already in progress")
        if container.restarting and not force:
            raise Conflict(f"You cannot remove a restarting container {container.id}. "
                           "Stop the container before attempting removal or force remove")
        if force:
            self._restarts.cancel(container)
            self._jobs.cancel(container.id, ("start", "restart"), Conflict(
                f"container {container.id} is marked for removal and cannot be started"))
        await self._remove_job(container, force=force, volumes=volumes)

    async def _remove_job(self, container: Container, *, force: bool,
                          volumes: bool = False) -> None:
        await self._jobs.run((container.id, "remove", ""),
                             partial(self._remove, container, force=force, volumes=volumes))

    @contextlib.asynccontextmanager
    async def _transition(self, container: Container) -> AsyncIterator[None]:
        async with container.lifecycle:
            if container.removed:
                raise NoSuchContainer(container.id)
            yield

    async def _start_job(self, container: Container) -> None:
        async with self._transition(container):
            if container.restarting:
                raise NotModified("container already started")
            reset_restarts(container)
            await self._start(container)

    async def _start(self, container: Container, ahead: Replacement | None = None) -> None:
        """Start the container in a new pod; `ahead`: that pod, made ahead by a restart."""
        if container.status == "running":
            raise NotModified("container already started")
        await self.volumes.ensure(container.config.mounts)
        await self._keep_logs_of_last_run(container)
        if container.pod_name is not None:
            await self._delete_pod_and_wait(container, grace_seconds=0)
        if ahead is None:
            await self._naming.publish_links(container)
            container.seeds = await self.seeds.for_start(self.images, container.config,
                                                         self.volumes.new)
            spec = self._specs.build(container)
            manifest = kube.pod_manifest(spec, self.settings)
        else:
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
        self._by_pod[pod_name] = container
        try:
            container.start_requested_at = (ahead.requested_at if ahead is not None
                                            else datetime.now(UTC))
            pod = await self._create_pod(container, manifest, ahead)
            self.volumes.mounted(container)
            secret = kube.dind_secret(pod, self.settings)
            if secret is not None:
                # The pod waits for its Secret volume, so the Secret can only follow it (it is
                # owned by the pod: it goes when the pod does).
                await self.cluster.create_object(kube.SECRETS, secret)
            await self._until_started(container, pod_name, needs_setup=spec.needs_setup)
            if is_running(container):
                if self._names == "services":
                    await publish_services(self.cluster, pod, self._naming.service_names(container),
                                           container.config.ports_with_image)
                await self._exposure.publish(container)
                await self._exposure.keep_published(container)
        except Exception as failure:
            await self._undo_start(container, failure)
            raise
        if is_running(container):
            self._monitor_health(container)
            self._watch_supervised(container)
        self._publish(container, "start")

    async def adopt(self) -> int:
        """Take over the containers of this instance's pods, as a kubedock restarted with the
        same identity finds them; return how many. Call it with the pod watch running."""
        return await self._adoption.adopt(self.label_selector)

    async def _keep_logs_of_last_run(self, container: Container) -> None:
        """Docker's log of a container spans its runs; each run of kubedock's is a new pod."""
        from ._logs import bounded, snapshot_logs

        logs = container.saved_logs
        if logs is None and container.pod_name is not None and container.pod_observed:
            try:
                logs = await snapshot_logs(self.cluster, container)
            except* kube.KubeError as failure:  # a pod whose process never ran has no log
                log.debug("no logs kept of pod %s: %s", container.pod_name, failure)
        container.earlier_logs = bounded((*container.earlier_logs, *(logs or ())))

    async def _create_pod(self, container: Container, manifest: Mapping[str, Any],
                          ahead: Replacement | None) -> dict[str, Any]:
        try:
            if ahead is None:
                return await self.cluster.create_pod(manifest)
            pod, news = await self._replacements.take(ahead)
            if news is not None:
                self.observe(news)
            return pod
        except kube.KubeError as error:
            if 400 <= error.status < 500:
                # Refused: there is no pod, so nothing to delete or wait for later.
                self._by_pod.pop(manifest["metadata"]["name"], None)
                container.pod_name = None
            raise

    async def _until_started(self, container: Container, pod_name: str, *,
                             needs_setup: bool) -> None:
        """Wait until the pod's main container runs (or ran), else fail the start."""
        exits = container.exits

        def settled() -> bool:
            return (container.status != "created" or container.exits != exits
                    or bool(container.error) or container.pod_name != pod_name)

        try:
            with trio.fail_after(self._start_timeout):
                async with trio.open_nursery() as nursery:
                    if needs_setup:
                        nursery.start_soon(self._fill_volumes, container, pod_name)
                    nursery.start_soon(fail_when_stalled, container, self._fail_fast_after)
                    await self._until(container, settled)
                    nursery.cancel_scope.cancel()
        except trio.TooSlowError:
            raise StartFailed(start_timeout_error(self._start_timeout, pod_name,
                                                  container.stall, self.pod_watch), None) from None
        if container.error:
            reason, _, message = container.error.partition(": ")
            raise StartFailed(reason, message or None)
        if container.pod_name != pod_name:
            raise StartFailed("PodDeleted", f"pod {pod_name} was deleted before it ran")

    async def _undo_start(self, container: Container, failure: Exception) -> None:
        """Leave no pod behind a failed start; the record says why, as Docker's does: not
        running, exit code 128, the error kept."""
        try:
            await self._delete_pod_and_wait(container, grace_seconds=0)
        except kube.KubeError as error:
            # The watch keeps the record true to the pod; a removal deletes it again.
            log.warning("cannot delete pod %s after a failed start: %s",
                        container.pod_name, error)
        self.volumes.unmounted(container)
        container.exit_code = 128
        container.error = getattr(failure, "message", None) or str(failure)
        if container.config.auto_remove:
            # As Docker does: `docker run --rm` waits for the removal after a failed start.
            self._spawn(partial(self._remove_unless_gone, container))

    async def _fill_volumes(self, container: Container, pod_name: str) -> None:
        # The API server upgrades an attach to a container that does not run yet, then ends
        # it with an error status: only the pod watch can say when attaching makes sense.
        await self._until(container, lambda: container.setup_running)
        try:
            await fill_volumes(self.cluster, pod_name, container, self.archives.staged(container))
        except (kube.KubeError, OSError, trio.BrokenResourceError) as error:
            container.error = f"CopyFailed: copying files into the pod failed: {error}"
            container.notify()

    async def _stop(self, container: Container, stop_seconds: int | None, *,
                    replacing: bool = False, replacement: Replacement | None = None) -> None:
        """Stop as `docker stop` does; `replacing` when a new pod follows (a restart), and
        `replacement` is that pod, created as soon as the process is known to have ended."""
        stay: Stay | None = None
        async with self._transition(container):
            container.stopped_by_client = True
            if self._restarts.cancel(container):
                self._publish(container, "stop")
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
            self._publish(container, "kill", signal=str(int(signals.Signals[stop_signal])))
            if signalled:
                try:
                    stay = await self._deliver_stop_signal(container, stop_signal, replacement)
                except (Conflict, TimedOut):
                    if stop_signal != "SIGTERM":
                        raise
                    # Neither the image nor the toolbox can signal it: the kubelet stops it.
                    signalled = False
                    await self._save_logs_and_delete(container, grace_seconds=seconds)
            else:
                if seconds != grace:
                    await self._save_logs_and_delete(container, grace_seconds=seconds)
                else:
                    await self._deadline_stop(container)

        def stopped() -> bool:
            return container.status != "running" or container.exits != exits

        def ended() -> bool:  # before Kubernetes says so
            return stay is not None and stay.ended

        try:
            if signalled:
                with trio.move_on_after(seconds):
                    await self._until(container, lambda: stopped() or ended())
                if replacement is not None and ended() and not stopped():
                    # Its pod starts while the kubelet gets round to report this end.
                    self._replacements.create_soon(replacement)
                async with container.lifecycle:
                    if not stopped() and not ended():
                        self._publish(container, "kill", signal=str(int(signals.SIGKILL)))
                        await self._save_logs_and_delete(container, grace_seconds=0)
            with trio.move_on_after(seconds + _STOP_REPORT_SECONDS):
                await self._until(container, stopped)
        finally:
            if stay is not None:
                stay.close()
        if not stopped():
            raise TimedOut(
                f"cannot stop container: {container.id}: tried to stop the container, but "
                f"Kubernetes did not report it stopped within {seconds + _STOP_REPORT_SECONDS} s"
            )
        self._publish(container, "stop")

    async def _deliver_stop_signal(self, container: Container, name: str,
                                   replacement: Replacement | None) -> Stay | None:
        """Deliver the stop signal from inside; for a `replacement` to follow, from a shell
        that stays to tell the end of the process, if the image has one."""
        assert container.pod_name is not None
        if replacement is not None:
            stay = await signal_and_stay(self.cluster, self._nursery, container,
                                         container.pod_name, name)
            if stay is not None:
                return stay
        await self._signaller.deliver(container, container.pod_name, name)
        return None

    async def _kill(self, container: Container, name: str) -> None:
        async with self._transition(container):
            if self._restarts.cancel(container):
                container.stopped_by_client = True
                self._publish(container, "kill", signal=str(int(signals.Signals[name])))
                return
            if container.status != "running":
                raise Conflict(f"Container {container.id} is not running")
            exits = container.exits
            # As Docker's: a container a client killed is not restarted by its policy.
            container.stopped_by_client = True
            pod_name = container.pod_name
            if name == "SIGKILL":
                await self._save_logs_and_delete(container, grace_seconds=0)
        if name != "SIGKILL":
            # Outside the lifecycle lock: a signal exec that takes long (at most
            # _SIGNAL_SECONDS) must not hold up the exit it may cause, nor an auto-remove.
            assert pod_name is not None
            await self._signaller.deliver(container, pod_name, name)
        self._publish(container, "kill", signal=str(int(signals.Signals[name])))
        if name == "SIGKILL":
            # As with Docker, the container is dead when `docker kill` returns.
            with trio.move_on_after(_KILL_WAIT_SECONDS):
                await self._until(container, lambda: container.status != "running"
                                  or container.exits != exits)

    async def _restart(self, container: Container, stop_seconds: int | None) -> None:
        replacement = await self._replacement(container)
        try:
            with contextlib.suppress(NotModified):
                await self._stop(container, stop_seconds, replacing=True,
                                 replacement=replacement)
            ahead = replacement if replacement and replacement.requested_at else None
            async with self._transition(container):
                reset_restarts(container)
                # Started meanwhile by another request: the restart is done, as with Docker.
                with contextlib.suppress(NotModified):
                    await self._start(container, ahead)
        finally:
            if replacement is not None:
                self._replacements.discard_soon(replacement)
        self._publish(container, "restart")

    async def _replacement(self, container: Container) -> Replacement | None:
        """The next pod of a running container, prepared for a restart (see `_replacement`);
        None when the end of its process cannot be learnt at once (its PID 1 is kubedock's
        supervisor or, with --init, pause) or the preparation fails: the start after the
        stop then makes its pod, failing as it does."""
        if (container.status != "running" or container.pod_name is None
                or container.supervisor is not None or container.config.init):
            return None
        try:
            await self.volumes.ensure(container.config.mounts)
            await self._naming.publish_links(container)
            seeds = await self.seeds.for_start(self.images, container.config,
                                               self.volumes.new)
        except (EngineError, kube.KubeError):
            return None
        container.seeds = seeds
        return prepared(self._specs.build(container), self.settings)

    async def _remove(self, container: Container, *, force: bool, volumes: bool) -> None:
        async with self._transition(container):
            if container.status == "running" and not force:
                raise Conflict(
                    f"You cannot remove a running container {container.id}. "
                    "Stop the container before attempting removal or force remove"
                )
            status, container.status = container.status, "removing"
            container.notify()
            try:
                await self._delete_pod_and_wait(container, grace_seconds=0)
            except Exception:
                # Still there: the record stays, and a later removal tries again.
                container.status = status
                container.notify()
                raise
            linked = self._naming.link_targets(container)
            if volumes:
                await self.volumes.remove_anonymous(container)
            self._forget(container)
        # The aliases its links gave go with it.
        for target in linked:
            if target.status == "running":
                try:
                    await self._naming.republish(target)
                except kube.KubeError as error:
                    log.warning("container %s keeps the names of links to it: %s",
                                target.short_id, error)

    async def wait(self, container: Container, condition: WaitCondition) -> Container:
        container.waiting += 1
        container.notify()
        try:
            if condition == "removed":
                await self._until(container, lambda: container.removed)
            elif condition == "next-exit":
                exits = container.exits
                await self._until(container, lambda: container.exits > exits or container.removed)
            elif container.status in ("running", "removing") or container.restarting:
                # An auto-removed container goes from running to removing and then away,
                # possibly before this waiter looks again: its exit or its removal ends the wait.
                # One its restart policy starts again counts as running, as with Docker: the
                # wait ends at its next exit, restarted or not.
                exits = container.exits
                await self._until(container, lambda: container.removed
                                  or container.exits > exits or (
                                      not container.restarting
                                      and container.status not in ("running", "removing")))
            container.reported_exits = container.exits
        finally:
            container.waiting -= 1
            container.notify()
        return container

    async def logs(
        self, container: Container, request: LogRequest
    ) -> AsyncIterator[tuple[int, bytes]]:
        """Yield ``(stream, bytes)`` log chunks.

        The reader runs in the engine's nursery under its own cancel scope, so a client that
        goes away mid-stream (the generator is closed) also closes the Kubernetes log stream.
        """
        send, receive = trio.open_memory_channel[tuple[int, bytes]](64)
        scope = trio.CancelScope()
        failures: list[Exception] = []

        async def produce() -> None:
            with scope:
                try:
                    await send_logs(self.cluster, container, request, send)
                except Exception as error:  # handed to the reader, which owns the request
                    failures.append(error)

        self._nursery.start_soon(produce)
        try:
            async with receive:
                async for item in receive:
                    yield item
        finally:
            scope.cancel()
        if failures:
            # The response is already under way, so a refusal or a lost API server can only
            # end the stream; other failures are bugs and surface as such.
            _lost, rest = ExceptionGroup("logs", failures).split(kube.KubeError)
            if rest is not None:
                raise failures[0]
            log.warning("log stream of container %s ended: %s", container.short_id,
                        _first_leaf(failures[0]))

    async def attach(self, container: Container, stream: trio.abc.HalfCloseableStream,
                     request: AttachRequest) -> None:
        self._publish(container, "attach")
        await attach(self.cluster, container, stream, request)
        self._publish(container, "detach")

    # -- exec ------------------------------------------------------------------------------

    def create_exec(self, container: Container, config: ExecConfig) -> Exec:
        record = self.execs.create(container, config)
        self._publish(container, f"exec_create: {' '.join(config.cmd)}", execID=record.id)
        return record

    async def start_exec(self, record: Exec, stream: trio.abc.HalfCloseableStream | None,
                         *, tty: bool) -> None:
        """Run an exec attached to ``stream``; with None, in the background (detached)."""
        claim_exec(record)
        self._publish(record.container, f"exec_start: {' '.join(record.config.cmd)}",
                      execID=record.id)
        if stream is None:
            self._spawn(partial(run_exec, self.cluster, record, None, tty=tty,
                                toolbox=self.toolbox))
            return
        await run_exec(self.cluster, record, stream, tty=tty, toolbox=self.toolbox)
        self._publish(record.container, "exec_die", execID=record.id,
                      exitCode=str(record.exit_code))

    # -- networks --------------------------------------------------------------------------

    def dns_names(self, container: Container) -> tuple[str, ...]:
        return self._naming.dns_names(container)

    def legacy_links(self, container: Container) -> list[str]:
        return self._naming.legacy_links(container)

    async def connect_network(self, network: Network, container: Container,
                              aliases: tuple[str, ...],
                              links: tuple[tuple[str, str], ...] = ()) -> None:
        await self._naming.connect(network, container, aliases, links)

    async def disconnect_network(self, network: Network, container: Container) -> None:
        await self._naming.disconnect(network, container)

    # -- cluster side ----------------------------------------------------------------------

    def observe(self, observation: kube.ContainerObservation) -> None:
        """Fold one pod event into its container's record (called by the pod watch)."""
        if self._replacements.hold(observation):
            return
        container = self._by_pod.get(observation.pod_name)
        if container is None or container.pod_name != observation.pod_name:
            return
        if observation.deleted:
            del self._by_pod[observation.pod_name]
            container.pod_name = None
            if container.status == "running":
                self._ended_in_pod(container, observation.exit_code or 137, observation)
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
                self._ended_in_pod(container, observation.exit_code or 0, observation)
        container.notify()

    def _ended_in_pod(self, container: Container, exit_code: int,
                      observation: kube.ContainerObservation) -> None:
        self._exited(container, exit_code, oom_killed=observation.reason == "OOMKilled",
                     finished_at=kube.transition_time(observation.finished_at, datetime.now(UTC)))

    async def _supervise(self, container: Container, pod_name: str, supervisor: str) -> None:
        """Report the end of a supervised container's program (see `_supervision`): its
        read-write binds are written back first, so that a client whose wait returns finds
        them in their sources; the pod stays, holding the container's files."""
        record = await await_exit(self.cluster, container, pod_name, supervisor)
        if record is None:
            return
        # kubedock's clock when it learnt of the end, as for an end the watch reports.
        finished_at = kube.transition_time(record.finished_at, datetime.now(UTC))
        from ._writeback import write_back_binds

        await write_back_binds(self, container)
        if container.pod_name == pod_name and container.status == "running":
            container.files_kept = True
            self._exited(container, record.exit_code, oom_killed=record.oom_killed,
                         finished_at=finished_at)
            container.notify()

    def _watch_supervised(self, container: Container) -> None:
        """Learn the end of the program of a running container, if it is supervised."""
        if container.supervisor is not None and container.pod_name is not None:
            self._spawn(partial(self._supervise, container, container.pod_name,
                                container.supervisor))

    def _exited(self, container: Container, exit_code: int, *, oom_killed: bool,
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
        restarts = self._restarts.schedule(container)
        self._publish(container, "die", exitCode=str(exit_code))
        self.volumes.unmounted(container)
        if container.config.auto_remove and not restarts:
            self._spawn(partial(self._auto_remove, container))

    async def _auto_remove(self, container: Container) -> None:
        # Attached clients are still reading the last output from the pod's log.
        with trio.move_on_after(_ATTACH_DRAIN_SECONDS):
            await self._until(container, lambda: container.attached == 0)
        # The pod watch may see a short process end before its start has even returned, where
        # Docker would still be running it: a client that asks for the exit code right after
        # the start (docker-py's run: start, logs, wait) gets it before the record goes.
        with trio.move_on_after(_EXIT_CLAIM_SECONDS):
            await self._until(container, lambda: container.waiting > 0
                              or container.reported_exits == container.exits)
        if container.status != "exited" or container.removed:
            return
        # A client that saw the start may ask for the logs while the pod goes away (docker-py's
        # run does: start, logs, wait): they are kept until the record goes.
        from ._logs import snapshot_logs

        logs = container.saved_logs or await snapshot_logs(self.cluster, container)
        if container.status == "exited" and not container.removed:
            container.saved_logs = logs
            await self._remove_unless_gone(container)

    async def _remove_unless_gone(self, container: Container) -> None:
        with contextlib.suppress(NoSuchContainer):
            await self._remove_job(container, force=True, volumes=True)

    async def shutdown(self) -> None:
        """Delete every object this instance created; return once the API server has no pod
        of it left."""
        await kube.delete_instance(self.cluster, self.settings.instance_id)

    # -- helpers ---------------------------------------------------------------------------

    def _check_name_free(self, name: str) -> None:
        for other in self._containers.values():
            if other.name == name:
                raise Conflict(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{other.id}". You have to remove (or rename) that container to be able '
                    "to reuse that name."
                )

    async def _until(self, container: Container, condition: Callable[[], bool]) -> None:
        while not condition():
            await container.changed.wait()

    async def _deadline_stop(self, container: Container) -> None:
        # An exceeded activeDeadlineSeconds makes the kubelet stop the containers (stop signal,
        # then SIGKILL after the grace period) while the pod, its exit code and its logs stay.
        assert container.pod_name is not None
        await self.cluster.patch_pod(container.pod_name, {"spec": {"activeDeadlineSeconds": 1}})

    async def _save_logs_and_delete(self, container: Container, *, grace_seconds: int) -> None:
        from ._logs import snapshot_logs

        assert container.pod_name is not None
        logs = await snapshot_logs(self.cluster, container)
        # Kept only once the pod goes: while it runs, its live log is the one to read.
        await self.cluster.delete_pod(container.pod_name, grace_seconds=grace_seconds)
        container.saved_logs = logs

    async def _delete_pod_and_wait(self, container: Container, *, grace_seconds: int) -> None:
        pod_name = container.pod_name
        if pod_name is None:
            return
        existed = await self.cluster.delete_pod(pod_name, grace_seconds=grace_seconds)
        if existed or container.pod_observed:
            # Until the watch has reported the deletion, a new pod must not take the name.
            with trio.move_on_after(max(self._start_timeout, grace_seconds + 5)):
                await self._until(container, lambda: container.pod_name != pod_name)
        self._by_pod.pop(pod_name, None)
        if container.pod_name == pod_name:
            container.pod_name = None

    def _monitor_health(self, container: Container) -> None:
        if container.config.healthcheck is not None:
            from ._health import monitor_health

            self._spawn(partial(monitor_health, self, container))

    def _spawn(self, job: Callable[[], Awaitable[object]]) -> None:
        """Run a background job whose failure must not take the server down with it."""

        async def guarded() -> None:
            try:
                await job()
            except Exception:
                log.exception("background task failed: %r", job)

        self._nursery.start_soon(guarded)

    def _forget(self, container: Container) -> None:
        if container.exposure is not None:
            container.exposure.cancel()
        self._containers.pop(container.id, None)
        if container.pod_name is not None:
            self._by_pod.pop(container.pod_name, None)
        container.removed = True
        self.execs.forget_container(container)
        self.networks.forget(container.id)
        self.archives.forget(container)
        self.usage.forget(container)
        self.toolbox.forget(container)
        container.notify()
        self._publish(container, "destroy")

    def _publish(self, container: Container, action: str, **extra: str) -> None:
        attributes = {
            **container.config.labels,
            "name": container.name,
            "image": container.config.image,
            **extra,
        }
        self.events.publish("container", action, container.id, attributes)



def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
