"""`--pre-pull`: a `docker pull` has the node pull the image too, so that the next start does not
wait for layers. A short-lived pod of the image (see `kube.pre_pull_manifest`) is made on the
node kubedock's pods go to and deleted once the kubelet has pulled; the pull answers then.

Pulls run in the server's nursery: one that a client stops waiting for still finishes (as
Docker's does), and concurrent pulls of one image share one pod.
"""

from __future__ import annotations

import logging

import attrs
import trio

from .. import kube

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2
_DELETE_SECONDS = 10


@attrs.define
class PrePull:
    image: str
    done: trio.Event = attrs.field(factory=trio.Event)
    failure: str | None = None  # set when done: why the node does not have the image


class PrePuller:
    def __init__(self, cluster: kube.ClusterBoundary, settings: kube.PodSettings, *,
                 nursery: trio.Nursery, timeout: float, fail_fast_after: float) -> None:
        self._cluster = cluster
        self._settings = settings
        self._nursery = nursery
        self._timeout = timeout
        self._fail_fast_after = fail_fast_after
        self._running: dict[str, PrePull] = {}
        # (reference, digest) the node has pulled: a pull of an unchanged image adds no pod.
        self._pulled: set[tuple[str, str]] = set()

    def start(self, image: str, digest: str | None, pull_secrets: tuple[str, ...]) -> PrePull:
        """The node's pull of `image` (a reference), which the registry says is `digest` now
        (None: unknown, pulled every time)."""
        if digest is not None and (image, digest) in self._pulled:
            pull = PrePull(image)
            pull.done.set()
            return pull
        running = self._running.get(image)
        if running is not None:
            return running
        pull = self._running[image] = PrePull(image)
        self._nursery.start_soon(self._pull, pull, digest, pull_secrets)
        return pull

    async def _pull(self, pull: PrePull, digest: str | None, pull_secrets: tuple[str, ...]
                    ) -> None:
        manifest = kube.pre_pull_manifest(pull.image, self._settings, pull_secrets)
        name = manifest["metadata"]["name"]
        try:
            with trio.fail_after(self._timeout):
                await self._cluster.create_pod(manifest)
                # Polled: a pull is seconds long, and the engine's pod watch reads pods as
                # containers, not pulls. A failure the kubelet tries again fails the pull once
                # it has lasted --fail-fast-after, as it fails a start.
                failing_since: float | None = None
                while True:
                    state = kube.pre_pull_state(await self._cluster.get_object(kube.PODS, name))
                    if state.phase == "pulled" or state.permanent:
                        break
                    if state.phase == "failed":
                        failing_since = failing_since or trio.current_time()
                        if trio.current_time() - failing_since >= self._fail_fast_after:
                            break
                    else:
                        failing_since = None
                    await trio.sleep(_POLL_SECONDS)
            if state.phase == "failed":
                pull.failure = f"the node cannot pull {pull.image}: {state.message}"
            elif digest is not None:
                self._pulled.add((pull.image, digest))
        except trio.TooSlowError:
            pull.failure = f"the node did not pull {pull.image} within {self._timeout:g}s"
        except kube.KubeError as error:
            pull.failure = f"pre-pulling {pull.image} on the node: {error}"
        finally:
            del self._running[pull.image]
            pull.done.set()
            with trio.CancelScope(shield=True), trio.move_on_after(_DELETE_SECONDS):
                try:
                    await self._cluster.delete_pod(name, grace_seconds=0)
                except kube.KubeError as error:
                    log.warning("cannot delete pre-pull pod %s: %s", name, error)
