"""The engine: container records, their state machine, and the pods behind them.

State comes from the pod watch (``observe``), never from polling: start, wait, stop and inspect
all read records that the watch keeps fresh, and wake up through each record's ``changed`` event.
The transitions themselves are in `_lifecycle`, the folding of what is observed in `_observed`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Literal

import attrs
import trio

from .. import kube
from .._config import ExposeMode, KeepExitedFiles, PodNetworkMode
from . import _lifecycle, _observed
from ._adoption import Adoption
from ._archive import ArchiveStore
from ._attach import AttachRequest, attach
from ._container_names import checked_name, generated_name
from ._errors import (
    Conflict,
    InvalidParameter,
    NoSuchContainer,
    Unsupported,
)
from ._events import EventBus
from ._exec import Exec, ExecConfig, ExecStore, claim_exec, run_exec
from ._exposure import Exposure
from ._images import ImageStore, parse_reference
from ._jobs import Jobs
from ._logs import LogRequest, stream_logs
from ._naming import NameMode, Naming
from ._networks import Network, NetworkStore
from ._pre_pull import PrePuller
from ._pull_secrets import PullSecrets
from ._records import Container, ContainerConfig, new_id
from ._replacement import Replacements
from ._resize import Resizer
from ._restarts import Restarts
from ._seeds import SeedStore
from ._served_archive import PodNetwork
from ._signals import Signaller, signal_name
from ._specs import PodSpecs
from ._stats import UsageReader, VolumeUsage
from ._supervisor_delivery import SupervisorDelivery
from ._toolbox import Toolbox
from ._volumes import VolumeStore

log = logging.getLogger(__name__)

WaitCondition = Literal["not-running", "next-exit", "removed"]


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
        pod_network: PodNetworkMode = "never",
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.events = EventBus()
        self.images = images or ImageStore()
        self.execs = ExecStore()
        self._nursery = nursery
        self._jobs = Jobs(nursery)
        self._restarts = Restarts(self._jobs, self._spawn,
                                  partial(_lifecycle.automatic_start, self))
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
        self.pod_network = PodNetwork(pod_network)
        self.pull_secrets = PullSecrets(cluster, settings)
        # Set by the server with --pre-pull: pulls then have the node pull the image too.
        self.pre_puller: PrePuller | None = None
        self.seeds = SeedStore()
        self._signaller = Signaller(cluster, self.toolbox)
        self._supervisor = SupervisorDelivery(cluster, settings)
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
                                  partial(_lifecycle.delete_pod_and_wait, self, grace_seconds=0),
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
        await self._jobs.run((container.id, "start", ""),
                             partial(_lifecycle.start_job, self, container))

    async def stop(self, container: Container, stop_seconds: int | None) -> None:
        await self._jobs.run((container.id, "stop", stop_seconds),
                             partial(_lifecycle.stop, self, container, stop_seconds))

    async def kill(self, container: Container, signal: str) -> None:
        name = signal_name(signal or "KILL")
        await self._jobs.run((container.id, "kill", object()),
                             partial(_lifecycle.kill, self, container, name))

    async def restart(self, container: Container, stop_seconds: int | None) -> None:
        await self._jobs.run((container.id, "restart", object()),
                             partial(_lifecycle.restart, self, container, stop_seconds))

    async def update(self, container: Container, config: ContainerConfig,
                     resource_fields: tuple[str, ...] = ()) -> None:
        """Take `config` (Docker's update: resources and restart policy); a running
        container's pod is resized in place, and `resource_fields` name what asked for it.
        A job, as the other transitions: a resize is never left half-recorded."""
        await self._jobs.run((container.id, "update", object()),
                             partial(_lifecycle.update, self, container, config, resource_fields))

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
                             partial(_lifecycle.remove, self, container, force=force,
                                     volumes=volumes))

    async def adopt(self) -> int:
        """Take over the containers of this instance's pods, as a kubedock restarted with the
        same identity finds them; return how many. Call it with the pod watch running."""
        return await self._adoption.adopt(self.label_selector)

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

    def logs(self, container: Container, request: LogRequest) -> AsyncIterator[tuple[int, bytes]]:
        """Yield ``(stream, bytes)`` log chunks (see `stream_logs`)."""
        return stream_logs(self.cluster, self._nursery, container, request)

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
        _observed.observe(self, observation)

    def _watch_supervised(self, container: Container) -> None:
        """Learn the end of the program of a running container, if it is supervised."""
        if container.supervisor is not None and container.pod_name is not None:
            self._spawn(partial(_observed.supervise, self, container, container.pod_name,
                                container.supervisor))

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

    def _publish(self, container: Container, action: str, **extra: str) -> None:
        attributes = {
            **container.config.labels,
            "name": container.name,
            "image": container.config.image,
            **extra,
        }
        self.events.publish("container", action, container.id, attributes)
