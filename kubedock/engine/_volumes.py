"""Named volumes: each one a PersistentVolumeClaim of this instance, which outlives the
containers that mount it and goes when the volume is removed, or with the instance.

Anonymous volumes of containers (``-v /data``) stay emptyDirs of their pod and are not kept
here; a volume created through the API without a name is a claim like any other, labelled
anonymous as Docker labels it (a prune removes it without ``all``).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import attrs
import trio

from .. import kube
from ._errors import Conflict, InvalidParameter, NotFound
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
    claim: str  # the PersistentVolumeClaim's name
    namespace: str
    created: datetime
    labels: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    @property
    def mountpoint(self) -> str:
        """Where the data lives as far as kubedock knows: the claim (the path on a node is the
        storage provisioner's business)."""
        return f"pvc://{self.namespace}/{self.claim}"


def named_volumes(mounts: Iterable[Mount]) -> list[Mount]:
    return [mount for mount in mounts if mount.kind == "volume" and mount.source]


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

    async def ensure(self, mounts: Iterable[Mount]) -> None:
        """Create the named volumes `mounts` name that do not exist yet, as Docker does when
        a container names one."""
        for mount in named_volumes(mounts):
            if mount.source not in self._volumes:
                await self.create(mount.source, dict(mount.volume_labels))

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
            await self._cluster.delete_object(kube.CLAIMS, volume.claim)
            del self._volumes[name]
        self._events.publish("volume", "destroy", name, {"driver": DRIVER})
        await self._until_gone(volume)

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
