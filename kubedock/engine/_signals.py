"""Signals: Docker's signal names, and their delivery to a container's main process."""

from __future__ import annotations

import logging
import signal as signals

import attrs
import trio

from .. import kube
from ._errors import Conflict, InvalidParameter, TimedOut
from ._init import signal_argv
from ._records import Container
from ._toolbox import Toolbox

log = logging.getLogger(__name__)

# `kill -s` in the container returns at once; longer means the cluster does not answer.
_SIGNAL_SECONDS = 30
# Signals PID 1, says so, and stays (reading an input that never comes). When a container's
# PID 1 ends, the kernel kills every other process of its namespace, this shell too: its
# session ends then, about a second before the kubelet reports the end (at its next relist).
_SIGNAL_AND_STAY = 'kill -s "$1" 1 && echo signalled && read -r _'
_KILLED = 128 + 9


def signal_name(text: str) -> str:
    """Normalise a Docker signal argument (``9``, ``KILL``, ``SIGKILL``) to ``SIGKILL``."""
    text = text.strip().upper()
    if text.isdigit():
        try:
            return signals.Signals(int(text)).name
        except ValueError:
            raise InvalidParameter(f"Invalid signal: {text}") from None
    name = text if text.startswith("SIG") else f"SIG{text}"
    if name not in signals.Signals.__members__:
        raise InvalidParameter(f"Invalid signal: {text}")
    return name


class Signaller:
    """Sends signals to the main process of a container, from inside its pod."""

    def __init__(self, cluster: kube.ClusterBoundary, toolbox: Toolbox) -> None:
        self._cluster = cluster
        self._toolbox = toolbox

    async def deliver(self, container: Container, pod_name: str, name: str) -> None:
        """Deliver a signal with the image's `kill`, else with kubedock's toolbox."""
        number = int(signals.Signals[name])
        # A supervised program gets it from the supervisor, its parent, whatever the image has.
        argv = ([container.supervisor, "kill", str(number)] if container.supervisor is not None
                else signal_argv(container.config, name))
        with trio.move_on_after(_SIGNAL_SECONDS) as deadline:
            try:
                async with self._cluster.exec(
                    pod_name, argv, stdin=False, stdout=True, stderr=True, tty=False
                ) as channel:
                    while await channel.receive() is not None:
                        pass
            except kube.NotFound:  # it exited and went meanwhile
                raise Conflict(f"Container {container.id} is not running") from None
        if deadline.cancelled_caught:
            raise TimedOut(f"cannot kill container: {container.id}: sending {name} in the "
                           f"container did not finish within {_SIGNAL_SECONDS} s")
        if channel.exit_code != 0:
            await self._toolbox.signal(container, number)


@attrs.define(eq=False)
class Stay:
    """A shell that signalled the container's PID 1 and stays in the container: `ended` once
    that process has ended (its session ended with it)."""

    ended: bool = False
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    def close(self) -> None:
        self.scope.cancel()


async def signal_and_stay(cluster: kube.ClusterBoundary, nursery: trio.Nursery,
                          container: Container, pod_name: str, name: str) -> Stay | None:
    """Deliver signal `name` to PID 1 of the container from a shell that stays in it (in
    `nursery`), to learn the end of that process at once; None when it could not deliver the
    signal (no shell in the image: nothing was sent). Not for a container whose PID 1 is not
    its process (supervised, or run with --init)."""
    stay = Stay()
    delivered = await nursery.start(_stay, cluster, container, pod_name, name, stay)
    return stay if delivered else None


async def _stay(cluster: kube.ClusterBoundary, container: Container, pod_name: str, name: str,
                stay: Stay, *, task_status: trio.TaskStatus[bool]) -> None:
    argv = ["sh", "-c", _SIGNAL_AND_STAY, "sh", name.removeprefix("SIG")]
    said = bytearray()
    with stay.scope:
        try:
            async with cluster.exec(pod_name, argv, stdin=True, stdout=True, stderr=True,
                                    tty=False) as channel:
                with trio.move_on_after(_SIGNAL_SECONDS) as deadline:
                    while b"\n" not in said and (message := await channel.receive()) is not None:
                        if message[0] == 1:
                            said.extend(message[1])
                if deadline.cancelled_caught:
                    raise TimedOut(f"cannot kill container: {container.id}: sending {name} in "
                                   f"the container did not finish within {_SIGNAL_SECONDS} s")
                if b"\n" in said:
                    task_status.started(True)
                    while await channel.receive() is not None:
                        pass
        except (kube.KubeError, trio.BrokenResourceError, OSError) as error:
            if b"\n" in said:  # delivered: only the news of the end is lost
                log.debug("signal session in pod %s ended: %s", pod_name, error)
                return
            if isinstance(error, kube.NotFound):  # it exited and went meanwhile
                raise Conflict(f"Container {container.id} is not running") from None
            raise
    # PID 1 may end before the shell has said anything: it was killed with it all the same.
    ended = channel.exit_code == _KILLED
    if b"\n" not in said:
        task_status.started(ended)
    stay.ended = ended
    container.notify()
