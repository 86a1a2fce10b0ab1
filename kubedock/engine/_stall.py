"""Starts held up by what may clear by itself fail only once it has lasted.

A pull that a rate-limited registry refuses, or a pod waiting for the node an autoscaler is
adding, often resolves within seconds; an image that does not exist never does. Both look the
same to the kubelet, so a start fails on them only after they have persisted for a while (the
server's `--fail-fast-after`), with the reason in the error.
"""

from __future__ import annotations

import attrs
import trio

from .. import kube
from ._records import Container

# The scheduler's words for a pod whose claims are not bound yet.
_UNBOUND_CLAIMS = "unbound immediate PersistentVolumeClaims"


@attrs.frozen
class Stall:
    """Why a pod does not start for now (see `kube.ContainerObservation.stalled`), and since
    when (trio time)."""

    reason: str
    message: str | None
    since: float
    # A pod waiting for its volume claims to be provisioned is making progress, however slowly
    # (a loaded provisioner takes seconds): it fails by the start timeout, not by patience.
    progressing: bool = False

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}" if self.message else self.reason


def stall_after(previous: Stall | None, observation: kube.ContainerObservation) -> Stall | None:
    """The stall once `observation` is taken in: it lasts, its reason kept up to date, from the
    first stalled observation to the first that is not."""
    if not observation.stalled:
        return None
    since = trio.current_time() if previous is None else previous.since
    progressing = _UNBOUND_CLAIMS in (observation.message or "")
    return Stall(observation.reason or "Stalled", observation.message, since, progressing)


async def fail_when_stalled(container: Container, patience: float) -> None:
    """Fail the start (set `container.error`) once its pod has stayed stalled for `patience`
    seconds without a break."""
    while True:
        while container.stall is None or container.stall.progressing:
            await container.changed.wait()
        since = container.stall.since
        with trio.move_on_at(since + patience) as waited:
            while container.stall is not None and container.stall.since == since:
                await container.changed.wait()
        if waited.cancelled_caught:
            container.error = f"{container.stall} (for {patience:g}s)"
            container.notify()
            return


def start_timeout_error(seconds: float, pod_name: str, stall: Stall | None,
                        pod_watch: kube.WatchHealth | None) -> str:
    """What a start that timed out says: what held the pod up, as far as kubedock knows."""
    text = f"timeout after {seconds:g}s waiting for pod {pod_name}"
    if stall is not None:
        return f"{text} ({stall})"
    if pod_watch is not None and pod_watch.failure is not None:
        return f"{text} (kubedock's pod watch is failing: {pod_watch.failure})"
    return text
