"""Signals: Docker's signal names, and their delivery to a container's main process."""

from __future__ import annotations

import signal as signals

import trio

from .. import kube
from ._errors import Conflict, InvalidParameter, TimedOut
from ._init import signal_argv
from ._records import Container
from ._toolbox import Toolbox

# `kill -s` in the container returns at once; longer means the cluster does not answer.
_SIGNAL_SECONDS = 30


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
