"""Containers whose files outlive their process: which are supervised, and how their end is
learnt.

Kubernetes removes a container's root filesystem once its process ends, and a finished pod's
volumes, where Docker keeps both until the container is removed (``docker cp`` out of a
one-shot container; a bind that one container writes and the next reads). A supervised
container's pod runs kubedock's supervisor as `main`'s PID 1 (see `kube._supervision`), which
runs the container's program and stays up after it. The pod watch then never sees the end:
kubedock learns it from one long exec of the supervisor's ``wait`` per run, which prints the
exit record (code, end time, OOM kill) once the program has ended. A SIGKILL (``docker kill``,
a stop past its timeout) comes from the supervisor's ``end`` too, so that the files stay; only
a supervisor that cannot be reached leaves kubedock deleting the pod, as for others.

``--keep-exited-files``: ``always`` (the default) supervises every pod (what it costs is
measured in the README); ``auto`` the pods that have the init container anyway (binds, archives
copied in before start) and those with a volume the create request asked for; ``never`` none.
"""

from __future__ import annotations

import json
import logging
import posixpath
from datetime import UTC, datetime

import attrs
import trio

from .. import kube
from .._config import KeepExitedFiles
from ._records import Container, ContainerConfig

log = logging.getLogger(__name__)


# A broken wait (an API server restart, a dropped connection) is issued again after this.
_REISSUE_SECONDS = 0.5
# The supervisor's `end` answers once the program is gone, in well under a second; longer
# means the pod does not answer (or the program hangs in the kernel).
_END_SECONDS = 10


@attrs.frozen
class ExitRecord:
    """What the supervisor recorded of the program's end."""

    exit_code: int
    finished_at: datetime
    oom_killed: bool


def parse_exit_record(text: bytes) -> ExitRecord | None:
    """The supervisor's record (one JSON line); None for anything else (a wait cut short)."""
    try:
        fields = json.loads(text)
        code, nanoseconds, oom = fields["exitCode"], fields["finishedAt"], fields["oomKilled"]
    except (ValueError, TypeError, KeyError):
        return None
    if not (isinstance(code, int) and isinstance(nanoseconds, int) and isinstance(oom, bool)):
        return None
    seconds, remainder = divmod(nanoseconds, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=remainder // 1000)
    return ExitRecord(code, moment, oom)


def supervised_argv(config: ContainerConfig, policy: KeepExitedFiles,
                    has_setup: bool) -> tuple[str, ...]:
    """The program the supervisor runs for `config` (the image's entrypoint and cmd as the
    request overrides them, as Docker resolves them), or () when it is not supervised."""
    if policy == "never" or config.init or config.image_config is None:
        return ()
    if policy == "auto" and not (has_setup or _asked_for_volumes(config)):
        return ()
    image = config.image_config
    if config.entrypoint:
        # A request that sets the entrypoint drops the image's cmd, as Docker does.
        return (*config.entrypoint, *(config.cmd or ()))
    entrypoint = image.entrypoint if config.entrypoint is None else ()
    return (*(entrypoint or ()), *(config.cmd or image.cmd or ()))


def _asked_for_volumes(config: ContainerConfig) -> bool:
    """Whether the request mounts a volume, tmpfs or bind itself (the image's own VOLUMEs,
    which every start of a database gets, do not count)."""
    declared = {posixpath.normpath(path) for path in
                (config.image_config.volumes if config.image_config else ())}
    return any(mount.kind in ("bind", "volume", "tmpfs")
               and posixpath.normpath(mount.target) not in declared
               for mount in config.mounts)


async def await_exit(cluster: kube.ClusterBoundary, container: Container, pod: str,
                     supervisor: str) -> ExitRecord | None:
    """The exit record of the program in `pod`, once it has ended; None once the container no
    longer runs there (stopped, killed, its pod gone: the pod watch reports that end)."""
    argv = kube.supervisor_wait_argv(supervisor)
    while container.pod_name == pod and container.status == "running":
        out = bytearray()
        try:
            async with cluster.exec(pod, argv, stdin=False, stdout=True, stderr=True) as channel:
                while (message := await channel.receive()) is not None:
                    if message[0] == 1:
                        out.extend(message[1])
        except (kube.KubeError, trio.BrokenResourceError) as error:
            log.debug("waiting for the end of %s in pod %s: %s", container.short_id, pod, error)
        else:
            record = parse_exit_record(bytes(out)) if channel.exit_code == 0 else None
            if record is not None:
                return record
        await trio.sleep(_REISSUE_SECONDS)
    return None


async def end_program(cluster: kube.ClusterBoundary, container: Container, pod: str,
                      supervisor: str) -> bool:
    """SIGKILL the program in `pod` through its supervisor; whether the supervisor recorded
    its end (`await_exit` reports it). False when it cannot say so in time: the exec refused
    or cut, a supervisor without `end` (a pod of an older kubedock)."""
    with trio.move_on_after(_END_SECONDS):
        try:
            async with cluster.exec(pod, kube.supervisor_end_argv(supervisor), stdin=False,
                                    stdout=True, stderr=True) as channel:
                while await channel.receive() is not None:
                    pass
        except (kube.KubeError, trio.BrokenResourceError) as error:
            log.info("the supervisor of %s in pod %s cannot kill it: %s", container.short_id,
                     pod, error)
            return False
        return channel.exit_code == 0
    log.info("the supervisor of %s in pod %s did not kill it within %s s", container.short_id,
             pod, _END_SECONDS)
    return False
