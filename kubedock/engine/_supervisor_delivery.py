"""How kubedock's supervisor gets into the supervised pods that have no init container.

Measured on raw pods (tests/bench/delivery_bench.py, README): the installer container (a first
container whose postStart hook copies the supervisor) starts the program about 0.4 s later
than a pod without volumes, a ConfigMap volume about 0.2 s later (the kubelet's wait for a
pod's volumes, which a pod with any volume makes anyway). So each instance keeps the supervisor in a
ConfigMap of its own, made once from the copy that the installer container of its first such
pod holds; until then (and if that cannot be done), pods get the installer container.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Literal

import trio

from .. import kube

log = logging.getLogger(__name__)

# Copies out of pods before the installer container stays for good (each is an exec of
# kubedock's program in a pod).
_COPIES = 3


class SupervisorDelivery:
    def __init__(self, cluster: kube.ClusterBoundary, settings: kube.PodSettings) -> None:
        self._cluster = cluster
        self._settings = settings
        self._name = kube.supervisor_config_map_name(settings)
        # unknown: not asked yet (a restarted instance may have made it); absent: made from the
        # next pod with the installer; failed: not to be made (the installer goes on).
        self._state: Literal["unknown", "absent", "copying", "present", "failed"] = "unknown"
        self._copies_left = _COPIES

    async def config_map(self) -> str:
        """The ConfigMap that a new supervised pod mounts the supervisor from; "" while there
        is none (the pod gets the installer container)."""
        if self._state == "unknown":
            try:
                await self._cluster.get_object(kube.CONFIG_MAPS, self._name)
            except kube.NotFound:
                self._state = "absent"
            except kube.KubeError as error:
                log.debug("cannot tell whether ConfigMap %s exists: %s", self._name, error)
            else:
                self._state = "present"
        return self._name if self._state == "present" else ""

    async def copy_from(self, pod: str) -> None:
        """Make the ConfigMap of the supervisor that the installer container of `pod` (which
        runs) holds, unless it exists or is being made."""
        if self._state != "absent":
            return
        self._state = "copying"
        archive = bytearray()
        try:
            async with self._cluster.exec(pod, kube.supervisor_copy_argv(), stderr=False,
                                          container=kube.INSTALLER) as channel:
                while (message := await channel.receive()) is not None:
                    archive.extend(message[1])
        except (kube.KubeError, trio.BrokenResourceError) as error:
            # The pod may be gone already (a container removed at once): the next one serves.
            self._copy_failed(f"the copy out of pod {pod} failed: {error}")
            return
        manifest = (kube.supervisor_config_map(self._settings, bytes(archive))
                    if channel.exit_code == 0 else None)
        if manifest is None:
            self._copy_failed(f"the copy out of pod {pod} ended with exit code "
                              f"{channel.exit_code} and no supervisor")
            return
        try:
            with contextlib.suppress(kube.Conflict):
                await self._cluster.create_object(kube.CONFIG_MAPS, manifest)
        except kube.KubeError as error:
            self._give_up(str(error))
        else:
            self._state = "present"

    def _copy_failed(self, reason: str) -> None:
        self._copies_left -= 1
        if self._copies_left:
            log.debug("no ConfigMap of kubedock's supervisor yet: %s", reason)
            self._state = "absent"
        else:
            self._give_up(reason)

    def _give_up(self, reason: str) -> None:
        log.warning("kubedock's supervisor stays delivered by a container in each pod: "
                    "no ConfigMap %s of it (%s)", self._name, reason)
        self._state = "failed"
