"""Volumes: a named one is a PersistentVolumeClaim of this instance, which outlives the
containers that mount it and goes when the volume is removed, or with the instance.

An anonymous volume of a container (``-v /data``, or a path its image declares a VOLUME) is an
emptyDir of the container's pod, listed under a generated name as Docker lists it, and removed
with the container when the client asks (``rm -v``, ``--rm``); no other container can mount it.
A volume created through the API without a name is a claim like any other, labelled anonymous
as Docker labels it (a prune removes it without ``all``).

Events follow Docker's: ``create`` when a container that names a volume is created (again for
one that exists), ``mount`` when its pod is made, ``unmount`` when it exits, ``destroy``.
"""

from __future__ import annotations

import logging
import posixpath
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import attrs
import trio

from .. import kube
from ._errors import Conflict, InvalidParameter, NotFound, Unsupported
from ._events import EventBus
from ._records import Container, Mount

log = logging.getLogger(__name__)

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
DRIVER = "local"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
# A removed volume's claim is gone once the claim protection has seen no pod use it, at once
# when none does; a pod kubedock does not know of may hold it longer.
_GONE_SECONDS = 30.0
_GONE_POLL_SECONDS = 0.2


class NoSuchVolume(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"get {name}: no such volume")


@attrs.frozen
class Volume:
    name: str
    claim: str  # the PersistentVolumeClaim's name; "" for an emptyDir of one container's pod
    namespace: str
    created: datetime
    labels: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    @property
    def mountpoint(self) -> str:
        """Where the data lives as far as kubedock knows: the claim (the path on a node is the
        storage provisioner's business); none for an emptyDir."""
        return f"pvc://{self.namespace}/{self.claim}" if self.claim else ""


def named_volumes(mounts: Iterable[Mount]) -> list[Mount]:
    """The volume mounts that name their volume: named ones, and anonymous ones once the
    container is created (see `with_anonymous_volumes`)."""
    return [mount for mount in mounts if mount.kind == "volume" and mount.source]


def with_anonymous_volumes(mounts: tuple[Mount, ...],
                           image_volumes: Iterable[str] = ()) -> tuple[Mount, ...]:
    """`mounts` with a generated name for each anonymous volume, and an anonymous volume at
    each path the image declares a VOLUME where no mount is (as Docker gives a new container)."""
    named = tuple(
        attrs.evolve(mount, source=secrets.token_hex(32), anonymous=True)
        if mount.kind == "volume" and not mount.source else mount
        for mount in mounts)
    targets = {mount.target for mount in mounts}
    declared = dict.fromkeys(posixpath.normpath(path) for path in image_volumes
                             if path.startswith("/"))
    return named + tuple(Mount("volume", path, secrets.token_hex(32), anonymous=True)
                         for path in declared if path not in targets)


class VolumeStore:
    """The named volumes of this instance, by name."""

    def __init__(self, cluster: kube.ClusterBoundary, pods: kube.PodSettings,
                 claims: kube.ClaimSettings, events: EventBus,
                 containers: Callable[[], Iterable[Container]]) -> None:
        self._cluster = cluster
        self._pods = pods
        self._claims = claims
        self._events = events
        self._containers = containers
        self._volumes: dict[str, Volume] = {}
        # The containers whose volumes were announced mounted, and not unmounted since.
        self._mounted: set[str] = set()
        # Named volumes a pod has mounted: no longer new, so the image's files are not copied
        # into them (Docker copies into an empty volume only; kubedock does not look inside).
        self._used: set[str] = set()
        # Creations and removals one at a time: two creates of one name make one claim.
        self._lock = trio.Lock()

    def all(self) -> list[Volume]:
        return sorted(self._volumes.values(), key=lambda volume: volume.name)

    def get(self, name: str) -> Volume:
        try:
            return self._volumes[name]
        except KeyError:
            raise NoSuchVolume(name) from None

    def claim_of(self, name: str) -> str:
        return self.get(name).claim

    def users(self, volume: Volume) -> list[str]:
        """The ids of the containers (in any state) that mount `volume`."""
        return [container.id for container in self._containers()
                if any(mount.source == volume.name
                       for mount in named_volumes(container.config.mounts))]

    async def create(self, name: str | None, labels: Mapping[str, str]) -> Volume:
        """The volume `name`, created unless it exists (then as it is, as Docker answers);
        without a name, a new anonymous one."""
        if not name:
            name, labels = secrets.token_hex(32), {**labels, ANONYMOUS_LABEL: ""}
        elif len(name.encode()) == 1:  # Go counts bytes
            raise InvalidParameter(f"create {name}: volume name is too short, names should be "
                                   "at least two alphanumeric characters")
        elif not _NAME.match(name):
            raise InvalidParameter(
                f'create {name}: "{name}" includes invalid characters for a local volume name, '
                'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                "directory, use absolute path"
            )
        async with self._lock:
            existing = self._volumes.get(name)
            if existing is not None:
                return existing
            claim = kube.claim_name(name, secrets.token_hex(3))
            await self._cluster.create_object(kube.CLAIMS, kube.claim_manifest(
                name, claim, labels, self._pods, self._claims))
            volume = Volume(name, claim, self._pods.namespace, datetime.now(UTC), dict(labels))
            self._volumes[name] = volume
        self._events.publish("volume", "create", name, {"driver": DRIVER})
        return volume

    async def ensure(self, mounts: Iterable[Mount], *, announce: bool = False) -> None:
        """Create the volumes `mounts` name that do not exist yet, as Docker does when a
        container names one; with `announce`, a `create` event for those that exist too (a
        container's create, as Docker reports it)."""
        for mount in named_volumes(mounts):
            existing = self._volumes.get(mount.source)
            if existing is not None and not existing.claim and not mount.anonymous:
                raise Unsupported(f"the anonymous volume {mount.source} is an emptyDir of "
                                  "its container's pod: no other container can mount it "
                                  "(use a named volume)")
            if existing is None and mount.anonymous:
                self._volumes[mount.source] = Volume(
                    mount.source, "", self._pods.namespace, datetime.now(UTC),
                    {ANONYMOUS_LABEL: ""})
                self._events.publish("volume", "create", mount.source, {"driver": DRIVER})
            elif existing is None:
                await self.create(mount.source, dict(mount.volume_labels))
            elif announce:
                self._events.publish("volume", "create", mount.source, {"driver": DRIVER})

    def new(self, mount: Mount) -> bool:
        """Whether the volume of `mount` starts empty in the container's next pod: an anonymous
        one always (an emptyDir of that pod), a named one until a pod has mounted it."""
        return mount.anonymous or mount.source not in self._used

    def mounted(self, container: Container) -> None:
        """Announce the container's volumes mounted (its pod is made)."""
        self._mounted.add(container.id)
        for mount in named_volumes(container.config.mounts):
            if not mount.anonymous:
                self._used.add(mount.source)
            self._events.publish("volume", "mount", mount.source, {
                "container": container.id, "destination": mount.target, "driver": DRIVER,
                "propagation": "", "read/write": "false" if mount.read_only else "true"})

    def unmounted(self, container: Container) -> None:
        """Announce the container's volumes unmounted (it exited, or its start failed), once
        for each time they were announced mounted."""
        if container.id not in self._mounted:
            return
        self._mounted.discard(container.id)
        for mount in named_volumes(container.config.mounts):
            self._events.publish("volume", "unmount", mount.source,
                                 {"container": container.id, "driver": DRIVER})

    async def remove_anonymous(self, container: Container) -> None:
        """Remove the container's anonymous volumes (Docker's ``rm -v``), as it goes."""
        self._mounted.discard(container.id)
        for mount in named_volumes(container.config.mounts):
            volume = self._volumes.get(mount.source)
            if not mount.anonymous or volume is None:
                continue
            if any(user != container.id for user in self.users(volume)):
                continue
            async with self._lock:
                await self._delete(volume)
            self._events.publish("volume", "destroy", volume.name, {"driver": DRIVER})
            if volume.claim:
                await self._until_gone(volume)

    async def remove(self, name: str, *, force: bool = False) -> None:
        """Delete the volume and its claim; refused while a container mounts it. With
        `force`, a volume that does not exist is not an error."""
        async with self._lock:
            volume = self._volumes.get(name)
            if volume is None:
                if force:
                    return
                raise NoSuchVolume(name)
            users = self.users(volume)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            await self._delete(volume)
        self._events.publish("volume", "destroy", name, {"driver": DRIVER})
        if volume.claim:
            await self._until_gone(volume)

    async def _delete(self, volume: Volume) -> None:
        if volume.claim:
            await self._cluster.delete_object(kube.CLAIMS, volume.claim)
        self._volumes.pop(volume.name, None)
        self._used.discard(volume.name)

    async def prune(self, selects: Callable[[Volume], bool]) -> list[Volume]:
        """Remove the volumes no container mounts that `selects` picks; those removed.
        One that cannot be removed is logged and left, as Docker does."""
        removed: list[Volume] = []

        async def remove(volume: Volume) -> None:
            try:
                await self.remove(volume.name)
            except (Conflict, kube.KubeError) as error:
                log.warning("prune left volume %s: %s", volume.name, error)
            else:
                removed.append(volume)

        async with trio.open_nursery() as nursery:
            for volume in self.all():
                if not self.users(volume) and selects(volume):
                    nursery.start_soon(remove, volume)
        return sorted(removed, key=lambda volume: volume.name)

    async def _until_gone(self, volume: Volume) -> None:
        with trio.move_on_after(_GONE_SECONDS):
            while True:
                try:
                    await self._cluster.get_object(kube.CLAIMS, volume.claim)
                except kube.NotFound:
                    return
                except kube.KubeError as error:
                    log.warning("cannot tell whether claim %s is gone: %s", volume.claim, error)
                    return
                await trio.sleep(_GONE_POLL_SECONDS)
        log.warning("claim %s of removed volume %s is still there after %gs",
                    volume.claim, volume.name, _GONE_SECONDS)
