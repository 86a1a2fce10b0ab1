"""Binds both ways: what a supervised container wrote into a read-write bind goes back to the
bind's source on kubedock's side once its program has ended, before the exit is reported.

A bind is a copy in kubedock (the init container fills the pod's volume from the source), so
without this a file one container writes never reaches the next container binding the same
directory, as it does with Docker. Only what differs is written: new and changed entries,
and entries the container removed are removed from the source. Modes and times follow the
container's; owners too where kubedock may set them.
"""

from __future__ import annotations

import contextlib
import filecmp
import logging
import os
import shutil
import stat
import tempfile
from functools import partial
from typing import TYPE_CHECKING

import trio

from .. import kube, podside
from ._archive import get_archive, through_thread
from ._errors import EngineError
from ._records import Container, Mount

if TYPE_CHECKING:
    from ._engine import Engine

log = logging.getLogger(__name__)


async def write_back_binds(engine: Engine, container: Container) -> None:
    """Copy every read-write bind of `container` out of its pod into its source."""
    for mount in container.config.mounts:
        if mount.kind != "bind" or mount.read_only:
            continue
        try:
            await _write_back(engine, container, mount)
        except (kube.KubeError, EngineError, OSError, podside.ArchiveError) as error:
            log.warning("container %s: %s not written back to %s: %s", container.short_id,
                        mount.target, mount.source, error)


async def _write_back(engine: Engine, container: Container, mount: Mount) -> None:
    source, scratch = await trio.to_thread.run_sync(_scratch_beside, mount.source)
    try:
        await through_thread(get_archive(engine, container, mount.target),
                             lambda archive: podside.extract(archive, scratch))
        await trio.to_thread.run_sync(_mirror_copy, scratch, source, mount.target)
    finally:
        await trio.to_thread.run_sync(partial(shutil.rmtree, scratch, ignore_errors=True))


def _scratch_beside(source: str) -> tuple[str, str]:
    """The bind's real source, and a new directory beside it (so that entries move into
    place rather than being copied again) or, where kubedock may not write, elsewhere."""
    source = os.path.realpath(source)
    parent = os.path.dirname(source)
    return source, tempfile.mkdtemp(prefix=".kubedock-", dir=parent if os.access(
        parent, os.W_OK) else None)


def _mirror_copy(scratch: str, source: str, target: str) -> None:
    entries = os.listdir(scratch)
    if len(entries) != 1:
        raise OSError(f"the copy of {target} holds {len(entries)} top entries")
    mirror(os.path.join(scratch, entries[0]), source)


def mirror(fresh: str, target: str) -> None:
    """Make `target` what `fresh` is, moving entries of `fresh` (which is used up) into place;
    what is already the same is left alone."""
    fresh_info = os.lstat(fresh)
    try:
        target_info: os.stat_result | None = os.lstat(target)
    except FileNotFoundError:
        target_info = None
    if target_info is not None and stat.S_ISDIR(fresh_info.st_mode) \
            and stat.S_ISDIR(target_info.st_mode):
        wanted = set(os.listdir(fresh))
        for name in os.listdir(target):
            if name not in wanted:
                _remove(os.path.join(target, name))
        for name in sorted(wanted):
            mirror(os.path.join(fresh, name), os.path.join(target, name))
        _copy_metadata(fresh_info, target)
        return
    if target_info is not None and _same_content(fresh, fresh_info, target, target_info):
        if not stat.S_ISLNK(fresh_info.st_mode):
            _copy_metadata(fresh_info, target)
        return
    if target_info is not None:
        _remove(target)
    shutil.move(fresh, target)


def _same_content(fresh: str, fresh_info: os.stat_result, target: str,
                  target_info: os.stat_result) -> bool:
    if stat.S_IFMT(fresh_info.st_mode) != stat.S_IFMT(target_info.st_mode):
        return False
    if stat.S_ISLNK(fresh_info.st_mode):
        return os.readlink(fresh) == os.readlink(target)
    if stat.S_ISREG(fresh_info.st_mode):
        return fresh_info.st_size == target_info.st_size \
            and filecmp.cmp(fresh, target, shallow=False)
    return False


def _copy_metadata(info: os.stat_result, target: str) -> None:
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):
            os.chown(target, info.st_uid, info.st_gid)
    os.chmod(target, stat.S_IMODE(info.st_mode))
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
