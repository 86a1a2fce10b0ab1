"""Container records: what a client asked for (frozen) and what the container is now (mutable)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from .. import kube
from ..kube import PortSpec
from ..registry import ImageConfig

if TYPE_CHECKING:
    from ._stall import Stall

Status = Literal["created", "running", "exited", "removing"]
HealthStatus = Literal["starting", "healthy", "unhealthy"]
_PROTOCOLS = ("tcp", "udp", "sctp")


@attrs.frozen
class HostBinding:
    host_ip: str  # "" means kubedock's default
    host_port: int  # 0 means any free port


@attrs.frozen
class Healthcheck:
    test: tuple[str, ...]  # ("CMD", ...) or ("CMD-SHELL", "...")
    interval: float
    timeout: float
    retries: int
    start_period: float
    start_interval: float


@attrs.frozen
class Mount:
    """A bind (copied in by the init container), a named or anonymous volume, a tmpfs, or a
    bind of the Docker socket (a socket relayed to kubedock's API by a sidecar)."""

    kind: Literal["bind", "volume", "tmpfs", "docker-socket"]
    target: str
    source: str = ""  # bind: a path on kubedock's side; volume: its name ("" anonymous)
    read_only: bool = False
    # A named volume: the directory in it to mount, and the labels it gets if created for this.
    sub_path: str = ""
    volume_labels: tuple[tuple[str, str], ...] = ()
    # A volume of this container alone (``-v /data``, an image's VOLUME): `source` is the
    # generated name it is listed under, and it goes with the container (``rm -v``, --rm).
    anonymous: bool = False
    # Mount option ``nocopy``: the image's files at `target` are not copied into a new volume.
    no_copy: bool = False


RestartPolicyName = Literal["no", "always", "unless-stopped", "on-failure"]


@attrs.frozen
class RestartPolicy:
    """Docker's HostConfig.RestartPolicy; kubedock restarts the container itself (pods are
    ``restartPolicy: Never``). ``unless-stopped`` differs from ``always`` only when a Docker
    daemon restarts, which has no counterpart here: kubedock treats them alike."""

    name: RestartPolicyName = "no"
    maximum_retries: int = 0  # on-failure only; 0: no limit

    def restarts(self, exit_code: int, restarts_so_far: int) -> bool:
        """Whether a container that ended with `exit_code` is started again."""
        if self.name in ("always", "unless-stopped"):
            return True
        if self.name == "on-failure":
            return exit_code != 0 and (self.maximum_retries == 0
                                       or restarts_so_far < self.maximum_retries)
        return False


@attrs.frozen
class ContainerConfig:
    """The parts of a create request that decide what runs, normalised (null means absent)."""

    image: str
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    working_dir: str | None = None
    user: str | None = None
    labels: Mapping[str, str] = attrs.field(factory=dict)
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    hostname: str | None = None
    exposed_ports: tuple[PortSpec, ...] = ()
    stop_signal: str | None = None
    stop_timeout: int | None = None
    healthcheck: Healthcheck | None = None
    port_bindings: Mapping[PortSpec, tuple[HostBinding, ...]] = attrs.field(factory=dict)
    memory: int | None = None
    # What Docker asks of the CPU scheduler, as limits and requests can say it: NanoCpus or
    # CpuQuota/CpuPeriod (a hard cap, in billionths of a CPU); CpuShares (a relative weight,
    # 1024 = one CPU); MemoryReservation (a soft limit).
    nano_cpus: int | None = None
    cpu_shares: int | None = None
    memory_reservation: int | None = None
    group_add: tuple[int, ...] = ()
    # Linux capability names without the CAP_ prefix (as Kubernetes spells them), or ALL.
    cap_drop: tuple[str, ...] = ()
    # (height, width) of the TTY at start, as a resize would set it.
    console_size: tuple[int, int] | None = None
    extra_hosts: tuple[tuple[str, str], ...] = ()
    auto_remove: bool = False
    # Docker's --init: a process that reaps zombies and passes signals on runs as PID 1. In a
    # pod sharing one process namespace, that is the pause process, and the command its child.
    init: bool = False
    restart_policy: RestartPolicy = RestartPolicy()
    # HostConfig.Links on the default bridge: (linked container's id, alias).
    links: tuple[tuple[str, str], ...] = ()
    network_mode: str = "bridge"
    # Network (name, id or id prefix) → aliases: NetworkMode and NetworkingConfig.EndpointsConfig.
    networks: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    # Network (as in `networks`) → the endpoint's Links: (container name, alias).
    network_links: Mapping[str, tuple[tuple[str, str], ...]] = attrs.field(factory=dict)
    # Network (as in `networks`) → the endpoint's DriverOpts.
    driver_options: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    mounts: tuple[Mount, ...] = ()
    # The image's own defaults, as its registry gave them (None: not known to kubedock). The
    # runtime applies them in the pod; inspect shows them merged as Docker does.
    image_config: ImageConfig | None = None
    # What the node pulls when `image`, the client's name, is in no registry (a `docker tag`, an
    # image kubedock keeps in its own registry): see `ImageStore.node_reference`.
    pulled_as: str | None = None
    # The request's own documents, echoed by inspect as Docker does.
    raw_config: Mapping[str, Any] = attrs.field(factory=dict)
    raw_host_config: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def ports(self) -> tuple[PortSpec, ...]:
        """Every port the container exposes: ExposedPorts and the keys of PortBindings."""
        seen = dict.fromkeys(self.exposed_ports)
        seen.update(dict.fromkeys(self.port_bindings))
        return tuple(seen)

    @property
    def ports_with_image(self) -> tuple[PortSpec, ...]:
        """`ports` and those the image exposes, which Docker merges into the container's config
        at create: inspect and list show them unpublished, and in the Services mode peers reach
        them (a compose service such as postgres names no port of its own)."""
        seen = dict.fromkeys(self.ports)
        for key in self.image_config.exposed_ports if self.image_config else ():
            number, _, protocol = key.partition("/")
            protocol = protocol.lower() or "tcp"
            # A malformed key in the image is left out rather than failing what lists it.
            if number.isdigit() and 0 < int(number) < 65536 and protocol in _PROTOCOLS:
                seen.setdefault(PortSpec(int(number), protocol))
        return tuple(seen)


@attrs.frozen
class PublishedPort:
    port: PortSpec
    host_ip: str
    host_port: int


@attrs.define
class Health:
    status: HealthStatus = "starting"
    failing_streak: int = 0
    log: list[dict[str, Any]] = attrs.field(factory=list)


@attrs.define(eq=False)
class TerminalSize:
    """The size a client wants for a TTY, passed on to every live session of it."""

    size: tuple[int, int] | None = None
    changed: trio.Event = attrs.field(factory=trio.Event)

    def request(self, width: int, height: int) -> None:
        self.size = (width, height)
        self.changed.set()
        self.changed = trio.Event()

    async def follow(self, channel: kube.ExecChannel) -> None:
        while True:
            if self.size is not None:
                await channel.resize(*self.size)
            await self.changed.wait()


@attrs.define(eq=False)
class Container:
    id: str
    name: str
    created: datetime
    config: ContainerConfig
    status: Status = "created"
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # When kubedock last asked for a pod: the earliest its process can have started.
    start_requested_at: datetime | None = None
    pod_name: str | None = None
    # The watch has reported the pod, so it will report the pod's deletion too.
    pod_observed: bool = False
    pod_ip: str | None = None
    # The pod's init container `setup` runs, so kubedock can attach to it and stream files.
    setup_running: bool = False
    # Where the init container left kubedock's own program in the pod; None: a pod without
    # one, where archives go through the image's tar and stat.
    tools: str | None = None
    # Where `main` finds kubedock's supervisor, in a supervised pod (see `_supervision`).
    supervisor: str | None = None
    # The program has ended, and its supervised pod still holds the container's files: they
    # can be copied out (and in) as from a running container, until the next start or removal.
    files_kept: bool = False
    # What the image holds at the paths of new volumes, copied into them by the init container
    # of the next pod: a tar file (see SeedStore) by index of the mount.
    seeds: Mapping[int, str] = attrs.field(factory=dict)
    published: tuple[PublishedPort, ...] = ()
    restart_count: int = 0
    # Docker's restart manager: the backoff before the next automatic start, the wait for it
    # (set while the container is restarting), and whether a client stopped the container,
    # which ends automatic restarts until its next start.
    restart_delay: float = 0.0
    pending_restart: trio.CancelScope | None = None
    stopped_by_client: bool = False
    exits: int = 0
    attached: int = 0
    # Follows of a supervised run's log: each reads the rest of the log once the program has
    # ended, which the removal waits for.
    log_followers: int = 0
    # Wait requests in progress, and how many exits the last answered one had seen.
    waiting: int = 0
    reported_exits: int = 0
    removed: bool = False
    health: Health | None = None
    # Logs kept from a pod that had to be deleted before the client was done with them, and
    # those of the pods of earlier runs; (stream, time-stamped line) chunks.
    saved_logs: tuple[tuple[int, bytes], ...] | None = None
    earlier_logs: tuple[tuple[int, bytes], ...] = ()
    exposure: trio.CancelScope | None = None
    # What holds up the start for now, if it may clear by itself (see _stall).
    stall: Stall | None = None
    # Held while a transition (start, stop, kill, restart, remove) changes the pod.
    lifecycle: trio.Lock = attrs.field(factory=trio.Lock)
    terminal: TerminalSize = attrs.field(factory=TerminalSize)
    changed: trio.Event = attrs.field(factory=trio.Event)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def restarting(self) -> bool:
        """Waiting to be started again by its restart policy (Docker's State.Restarting)."""
        return self.pending_restart is not None and self.status != "running"

    def notify(self) -> None:
        """Wake everyone waiting for this container to change."""
        self.changed.set()
        self.changed = trio.Event()


def new_id() -> str:
    return secrets.token_hex(32)


def files_reachable(container: Container) -> bool:
    """Whether the container's files can be read in its pod: it runs, or it ran supervised."""
    return container.pod_name is not None and (container.status == "running"
                                                or container.files_kept)


def is_running(container: Container) -> bool:
    # A function, not an inline comparison: the status changes across awaits, which type
    # narrowing cannot see.
    return container.status == "running"
