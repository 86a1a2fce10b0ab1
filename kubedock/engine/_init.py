"""Docker's ``--init`` in a pod: the pod shares one process namespace, so its pause process is
PID 1, reaping orphans, and the container's command runs as its child, which gets the default
action of every signal it does not handle (SIGTERM ends it, as through Docker's init).

What kubedock does to "the container's process" then targets the command's process, not PID 1:
a signal goes to the oldest process that shares the container's filesystem (the command
started before any exec). kubedock's toolbox takes the pod's PID 1 for the container's process,
so it is not used for such a container (its `ps` listing excepted, which shows every process of
the pod: pause as PID 1 where Docker shows its init).
"""

from __future__ import annotations

from ._errors import Unsupported
from ._records import ContainerConfig

# Signals the oldest process of the container's mount namespace; fails without one.
_SIGNAL_COMMAND = (
    'own=$(readlink /proc/self/ns/mnt); main=""; '
    'for process in /proc/[0-9]*; do pid=${process#/proc/}; '
    '[ "$(readlink "$process/ns/mnt" 2>/dev/null)" = "$own" ] || continue; '
    'if [ -z "$main" ] || [ "$pid" -lt "$main" ]; then main=$pid; fi; done; '
    '[ -n "$main" ] && exec kill -s "$1" "$main"'
)


def signal_argv(config: ContainerConfig, signal: str) -> list[str]:
    """The exec that delivers `signal` (``SIGHUP``) to the container's process."""
    name = signal.removeprefix("SIG")
    if config.init:
        return ["sh", "-c", _SIGNAL_COMMAND, "sh", name]
    return ["kill", "-s", name, "1"]


def refuse_toolbox(config: ContainerConfig, what: str) -> None:
    """Refuse what only kubedock's toolbox could do for the container, when it runs with
    --init (the toolbox would take pause for the container's process)."""
    if config.init:
        raise Unsupported(f"{what} in a container started with --init needs the image's own "
                          "tools (a shell, kill, tar): kubedock's toolbox cannot tell the "
                          "container's process from the pod's PID 1")
