"""A restart's next pod, created as soon as the last run's process has ended, while Kubernetes
has yet to report that end.

`docker restart` learns the end of the container's process from the shell that signalled it
(see `signal_and_stay`), about a second before the kubelet reports it with the exit code that
the `die` event carries. The pod of the next run is created then, under a name of its own (the
last run's pod is still there: see `kube.pod_name`), so that it starts while that report is on
its way. Until the record has taken in the end of the last run, the watch's news of the new pod
wait here, so that inspect and the events keep Docker's order: kill, die, stop, start, restart.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

from .. import kube
from ._adopt import PORTS

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class Replacement:
    """The next run's pod, prepared before the stop; created at most once (`requested_at`)."""

    spec: kube.ContainerSpec
    manifest: dict[str, Any]
    requested_at: datetime | None = None
    pod: dict[str, Any] | None = None
    # Why the creation failed; raised by the start that takes the replacement.
    failure: Exception | None = None
    # The latest the watch said of the pod before a start took it.
    news: kube.ContainerObservation | None = None
    taken: bool = False
    created: trio.Event = attrs.field(factory=trio.Event)

    @property
    def pod_name(self) -> str:
        return str(self.manifest["metadata"]["name"])


def prepared(spec: kube.ContainerSpec, settings: kube.PodSettings) -> Replacement:
    """The next pod of a running container, as `spec` describes it."""
    # The running pod's host ports are no record of the next run's, noted once it has them.
    spec = attrs.evolve(spec, annotations={
        key: value for key, value in spec.annotations.items() if key != PORTS})
    # The last pod is there until its end is reported: this one needs a name of its own.
    return Replacement(spec, kube.pod_manifest(spec, settings, run=secrets.token_hex(3)))


class Replacements:
    """Creates replacement pods in the background, holds the watch's news of them until a
    start takes them, and deletes those that no start took (a failed or abandoned restart)."""

    def __init__(self, cluster: kube.ClusterBoundary, nursery: trio.Nursery) -> None:
        self._cluster = cluster
        self._nursery = nursery
        self._held: dict[str, Replacement] = {}

    def create_soon(self, replacement: Replacement) -> None:
        replacement.requested_at = datetime.now(UTC)
        self._held[replacement.pod_name] = replacement
        self._nursery.start_soon(self._create, replacement)

    async def _create(self, replacement: Replacement) -> None:
        try:
            replacement.pod = await self._cluster.create_pod(replacement.manifest)
        except Exception as failure:  # the start that takes it raises it, as its own
            replacement.failure = failure
        finally:
            replacement.created.set()

    def hold(self, observation: kube.ContainerObservation) -> bool:
        """Keep the news of a pod no start has taken yet; whether it was one."""
        replacement = self._held.get(observation.pod_name)
        if replacement is None:
            return False
        replacement.news = observation
        return True

    async def take(self, replacement: Replacement
                   ) -> tuple[dict[str, Any], kube.ContainerObservation | None]:
        """The created pod and the latest news of it, for the start of its run to fold in
        (at once: later news go to the record); raises the creation's failure."""
        replacement.taken = True
        await replacement.created.wait()
        self._held.pop(replacement.pod_name, None)
        if replacement.failure is not None:
            raise replacement.failure
        assert replacement.pod is not None
        return replacement.pod, replacement.news

    def discard_soon(self, replacement: Replacement) -> None:
        """Delete the pod of `replacement` unless a start took it."""
        if replacement.requested_at is not None and not replacement.taken:
            replacement.taken = True
            self._nursery.start_soon(self._discard, replacement)

    async def _discard(self, replacement: Replacement) -> None:
        await replacement.created.wait()
        try:
            await self._cluster.delete_pod(replacement.pod_name, grace_seconds=0)
        except kube.KubeError as error:
            # Labelled as this instance's: it goes at the latest when the instance does.
            log.warning("cannot delete pod %s of an abandoned restart: %s",
                        replacement.pod_name, error)
        finally:
            self._held.pop(replacement.pod_name, None)
