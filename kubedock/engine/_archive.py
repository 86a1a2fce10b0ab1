"""Files into and out of containers: mounts, archives staged before start, and archives of a
running container.

Before start nothing runs yet, so what a container should find (bind sources read on kubedock's
side, archives copied in) is written into one tar stream that the pod's init container
(`kubedock init`) extracts into the data volume; `main` mounts pieces of that volume (subPath)
at their targets. Once the container runs, archives go through exec of kubedock's own program,
which the init container left in the pod (`kubedock archive`), or of the image's `tar` and
`stat` in pods without one, or (an image without them) of kubedock's toolbox, added to the pod
on first need (`kubedock toolbox archive`). Every archive streams: request bodies through
bounded channels and worker threads, staged archives through temporary files, so memory does
not grow with their size.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import posixpath
import stat
import tarfile
import tempfile
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import IO, TYPE_CHECKING, TypeVar, cast

import attrs
import trio

from .. import kube, podside, wire
from . import _served_archive as served_archive
from ._errors import Conflict, InvalidParameter, NotFound, Unsupported
from ._records import Container, files_reachable
from ._tar_relay import State as RelayState
from ._tar_relay import TarRelay

if TYPE_CHECKING:
    from ._engine import Engine

_T = TypeVar("_T")

log = logging.getLogger(__name__)

_QUEUE = 8  # chunks in flight between the event loop and a tar worker thread
_CHUNK = 256 * 1024
_ATTACH_RETRY_SECONDS = 0.2
# Images without tar can still receive files before start; after, these tools do the copying.
_NO_TOOLS = (
    "the image has no {tool!r}: kubedock copies files into or out of a running container "
    "with the image's own tar and stat (copying in before start needs neither)"
)


@attrs.frozen
class StagedArchive:
    """An archive copied in before start: a plain tar in a temporary file, names prefixed
    with their place in the data volume, and the targets `main` mounts them at."""

    file: str
    targets: tuple[tuple[str, str], ...]  # (path in main, subPath of the data volume)


class ArchiveStore:
    """Archives staged per container until its pod is created."""

    def __init__(self) -> None:
        self._staged: dict[str, list[StagedArchive]] = {}

    def staged(self, container: Container) -> list[StagedArchive]:
        return self._staged.get(container.id, [])

    def add(self, container: Container, archive: StagedArchive) -> None:
        self._staged.setdefault(container.id, []).append(archive)

    def forget(self, container: Container) -> None:
        for archive in self._staged.pop(container.id, []):
            os.unlink(archive.file)


def mount_specs(container: Container, staged: Sequence[StagedArchive],
                claim_of: Callable[[str], str]) -> tuple[kube.MountSpec, ...]:
    """The pod's mounts; `claim_of` names the claim of a named volume."""
    specs = []
    for index, mount in enumerate(container.config.mounts):
        if mount.kind == "bind":
            specs.append(kube.MountSpec(mount.target, "copy", f"b{index}", mount.read_only))
        elif mount.kind == "volume" and mount.source:
            specs.append(kube.MountSpec(mount.target, "volume", mount.sub_path, mount.read_only,
                                        claim=claim_of(mount.source),
                                        seeded=index in container.seeds))
        else:
            specs.append(kube.MountSpec(mount.target, mount.kind, read_only=mount.read_only))
    # A later archive wins for a path, as it would have overwritten the earlier one.
    targets = dict(target for archive in staged for target in archive.targets)
    specs.extend(kube.MountSpec(path, "copy", sub_path) for path, sub_path in targets.items())
    return tuple(specs)


# -- before start -------------------------------------------------------------------------

async def stage_archive(body: AsyncIterable[bytes], path: str, directory: str | None = None
                        ) -> StagedArchive:
    """Read a client's archive for `path` into a temporary file (validated, decompressed)."""
    if not path.startswith("/"):
        raise InvalidParameter(f"path {path!r} must be absolute")
    prefix = posixpath.join("s", podside.safe_name(path))
    descriptor, file_name = tempfile.mkstemp(prefix="kubedock-archive-", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as sink:
            entries = await through_thread(
                body, lambda source: podside.relocate(source, sink, prefix)
            )
    except BaseException:
        os.unlink(file_name)
        raise
    # A directory the archive itself holds is mounted whole, with its own mode, mtime and
    # symlinks (what `docker cp dir` sends). Files outside such directories get a mount each,
    # so that an archive naming `etc/app.conf` does not hide the image's /etc; symlinks
    # outside them cannot be mounted (the kubelet resolves them) and are left out.
    directories = {entry.name for entry in entries if entry.isdir()}
    roots = [name for name in directories if posixpath.dirname(name) not in directories]
    loose = [entry.name for entry in entries if entry.isfile()
             and not any(entry.name.startswith(root + "/") for root in roots)]
    targets = tuple(("/" + name.removeprefix("s/"), name) for name in roots + loose
                    if name != "s")
    return StagedArchive(file_name, targets)


async def fill_volumes(cluster: kube.ClusterBoundary, pod: str, container: Container,
                       staged: Sequence[StagedArchive]) -> None:
    """Stream what the image holds at new volumes' paths, bind sources and staged archives to
    the running init container of a new pod."""
    binds = [(f"b{index}", mount.source) for index, mount in enumerate(container.config.mounts)
             if mount.kind == "bind"]
    seeds = [(kube.seed_directory(index), seed) for index, seed in container.seeds.items()]
    errors = bytearray()
    async with cluster.attach(pod, stdin=True, stdout=False, stderr=True,
                              container=kube.SETUP) as channel, trio.open_nursery() as nursery:
        nursery.start_soon(_collect_output, channel, errors)
        await _sending(channel.send_stdin,
                       lambda send: _in_thread(_write_volume_stream, _ToChannel(send), seeds,
                                               binds, staged))
        await channel.close_stdin()
    if channel.exit_code not in (0, None):
        raise kube.KubeError(channel.status_message or f"attach ended ({channel.exit_code})")
    if errors.strip():
        log.info("init container of %s: %s", pod, errors.decode(errors="replace").strip())


async def _collected_errors(channel: kube.ExecChannel) -> str:
    errors = bytearray()
    await _collect_output(channel, errors)
    return errors.decode(errors="replace").strip()


async def _collect_output(channel: kube.ExecChannel, into: bytearray) -> None:
    while (message := await channel.receive()) is not None:
        into.extend(message[1][-4096:])


def _write_volume_stream(sink: IO[bytes], seeds: Sequence[tuple[str, str]],
                         binds: Sequence[tuple[str, str]],
                         staged: Sequence[StagedArchive]) -> None:
    with podside.open_writer(sink) as out:
        for directory, seed in seeds:
            with tarfile.open(seed, mode="r|", bufsize=_CHUNK) as entries:
                for entry in entries:
                    entry.name = posixpath.normpath(posixpath.join(directory, entry.name))
                    if entry.islnk():
                        entry.linkname = posixpath.join(directory, entry.linkname)
                    out.addfile(entry, entries.extractfile(entry) if entry.isfile() else None)
        for name, source in binds:
            out.add(os.path.realpath(source), arcname=name)
        for archive in staged:
            with tarfile.open(archive.file, mode="r|", bufsize=_CHUNK) as entries:
                for entry in entries:
                    out.addfile(entry, entries.extractfile(entry) if entry.isfile() else None)


# -- a running container ------------------------------------------------------------------

async def stat_path(engine: Engine, container: Container, path: str) -> wire.PathStat:
    """`lstat` of a path in `main`: kubedock's own `archive stat` where the pod has it (tools
    volume or toolbox), else the image's `stat` (and `readlink` for links), else the toolbox,
    added for the purpose."""
    pod = _running_pod(container)
    session = _own_archive(engine, container, "stat", path)
    if session is None:
        try:
            return await _image_stat(engine.cluster, pod, path,
                                     posixpath.basename(path.rstrip("/")) or "/")
        except Unsupported:
            await engine.toolbox.ensure(container)
            session = _own_archive(engine, container, "stat", path)
            assert session is not None
    out, err, code = await _collected(session)
    if code != 0:
        _raise_for_tool(err, code, path)
    return _path_stat(path, out)


def _path_stat(path: str, said: str | bytes) -> wire.PathStat:
    """The stat line of kubedock's `archive stat` as Docker says it."""
    fields = json.loads(said)
    moment = datetime.datetime.fromtimestamp(fields["mtime"], datetime.UTC)
    return wire.PathStat(posixpath.basename(path.rstrip("/")) or "/", fields["size"],
                         fields["mode"], moment, fields["linkTarget"])


async def _image_stat(cluster: kube.ClusterBoundary, pod: str, path: str,
                      name: str) -> wire.PathStat:
    out, err, code = await _run(cluster, pod, ["stat", "-c", "%f %s %Y", "--", path])
    if code != 0:
        _raise_for(err, code, path, "stat")
    raw_mode, size, mtime = out.split()
    mode = int(raw_mode, 16)
    link_target = ""
    if stat.S_ISLNK(mode):
        out, _, _ = await _run(cluster, pod, ["readlink", "--", path])
        link_target = out.strip()
    moment = datetime.datetime.fromtimestamp(int(mtime), datetime.UTC)
    return wire.PathStat(name, int(size), mode, moment, link_target)


def _own_archive(engine: Engine, container: Container, *args: str, stdin: bool = False
                 ) -> AbstractAsyncContextManager[kube.ExecChannel] | None:
    """An exec session of kubedock's `archive args...` in the pod; None if the pod has no
    kubedock yet (neither the init container's tools nor a toolbox)."""
    if container.tools is not None:
        return engine.cluster.exec(_running_pod(container),
                                   podside.tool_argv(container.tools, *args), stdin=stdin,
                                   stdout=True, stderr=True)
    if engine.toolbox.ready(container):
        return engine.toolbox.exec(container, ["archive", *args], stdin=stdin)
    return None


async def copy_in(engine: Engine, container: Container, path: str,
                  body: AsyncIterable[bytes], *, no_overwrite_dir_non_dir: bool = False,
                  size: int | None = None) -> None:
    """PUT archive: staged for the init container before start, else extracted in `main`.

    A staged archive lands in volumes of its own, where nothing of the image is overwritten.
    """
    if container.pod_name is None and container.status == "created":
        engine.archives.add(container, await stage_archive(body, path))
    else:
        await put_archive(engine, container, path, body,
                          no_overwrite_dir_non_dir=no_overwrite_dir_non_dir, size=size)


async def put_archive(engine: Engine, container: Container, path: str,
                      body: AsyncIterable[bytes], *, no_overwrite_dir_non_dir: bool = False,
                      size: int | None = None) -> None:
    """Extract a client's archive into a directory of a running container.

    kubedock validates and decompresses the archive on its side, so the program in the pod
    only ever sees a plain tar with safe names (busybox tar reads neither bzip2 nor xz).
    `no_overwrite_dir_non_dir` holds with kubedock's program; the image's tar does what it
    does (busybox and GNU tar refuse a file over a directory, and replace or keep a file that
    a directory would overwrite). An archive of `size` bytes (None: not known) worth it goes
    over a connection to kubedock's program where it takes one (`_served_archive`).
    """
    own = ["put", path, *(["--no-overwrite-dir-non-dir"] if no_overwrite_dir_non_dir else [])]
    session = _own_archive(engine, container, *own, stdin=True)
    if session is None:
        path_stat = await stat_path(engine, container, path)
        session = _own_archive(engine, container, *own, stdin=True)
    if session is None:  # the image's stat answered: its tar does the copying
        if not stat.S_ISDIR(path_stat.mode):
            raise InvalidParameter(f"extraction point is not a directory: {path}")
        session = engine.cluster.exec(_running_pod(container),
                                      ["tar", "-x", "-f", "-", "-C", path], stdin=True,
                                      stdout=True, stderr=True)
        by_image = True
    else:
        by_image = False
    errors = bytearray()
    if not by_image and served_archive.worth_serving(size):
        address = engine.pod_network.address(container.pod_ip)
        served = _own_archive(engine, container, *own, *served_archive.serve_args(address))
        assert served is not None  # as `session`
        async with served_archive.served(engine.cluster, engine.pod_network,
                                         _running_pod(container), address,
                                         served) as connection:
            if connection is not None:
                await served_archive.send(connection,
                                          lambda send: _sending(send, partial(_relay, body)),
                                          errors)
                _check_put(connection.channel, errors, path, by_image)
                return
    try:
        async with session as channel, trio.open_nursery() as nursery:
            nursery.start_soon(_collect_output, channel, errors)
            await _sending(partial(_send_upload, channel, path), partial(_relay, body))
            await channel.close_stdin()
    except* trio.BrokenResourceError:
        if channel.exit_code is None:
            raise
        # The process ended before it took all of it: its exit status says why (below).
    _check_put(channel, errors, path, by_image)


def _check_put(channel: kube.ExecChannel, errors: bytearray, path: str, by_image: bool
               ) -> None:
    if channel.exit_code not in (0, None):
        err = bytes(errors).decode(errors="replace")
        if not by_image:
            _raise_for_tool(err, channel.exit_code, path)
        _raise_for(err, channel.exit_code, path, "tar")


async def _relay(body: AsyncIterable[bytes], send: Callable[[bytes], Awaitable[object]]
                 ) -> None:
    """Send on a client's archive: plain tars through `TarRelay`, the rest (from where the
    relay hands over) through `relocate` in a worker thread."""
    chunks = aiter(body)
    try:
        await _relay_chunks(chunks, send)
    finally:
        # Left early at the end-of-archive marker, or on a failure.
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()


async def _relay_chunks(chunks: AsyncIterator[bytes],
                        send: Callable[[bytes], Awaitable[object]]) -> None:
    relay = TarRelay()
    pieces: list[bytes | memoryview] = []
    size = 0
    try:
        async for chunk in chunks:
            for piece in relay.feed(bytes(chunk)):
                pieces.append(piece)
                size += len(piece)
            if relay.state is not RelayState.READING:
                break
            if size >= _CHUNK:
                await send(b"".join(pieces))
                pieces, size = [], 0
        else:
            pieces.extend(relay.finish())
    except podside.ArchiveError as error:
        raise InvalidParameter(str(error)) from None
    if pieces:
        await send(b"".join(pieces))
    if relay.state is RelayState.HANDED_OVER:
        async def rest() -> AsyncGenerator[bytes]:
            yield relay.rest
            async for chunk in chunks:
                yield chunk

        sink = cast(IO[bytes], _ToChannel(send))
        async with contextlib.aclosing(rest()) as remaining:
            await through_thread(remaining, lambda source: podside.relocate(source, sink))


async def _send_upload(channel: kube.ExecChannel, path: str, chunk: bytes) -> None:
    try:
        await channel.send_stdin(chunk)
    except trio.BrokenResourceError as error:
        if channel.exit_code is not None:
            raise
        raise kube.ClusterUnreachable(
            f"copying into {path} broke off: the exec session ended without a status ({error})"
        ) from error


async def open_archive(engine: Engine, container: Container, path: str
                       ) -> tuple[wire.PathStat, AsyncIterator[bytes]]:
    """GET archive: the stat of `path` and its tar (the basename as the top entry). Where
    the pod has kubedock's program, one exec of it says both, the tar coming over a
    connection (`_served_archive`); else, or when that does not work out, a stat and the
    tar by an exec each."""
    served = _served_with_stat(engine, container, path)
    first = await anext(served, None)
    if isinstance(first, wire.PathStat):
        return first, cast(AsyncIterator[bytes], served)
    return await stat_path(engine, container, path), _exec_archive(engine, container, path)


async def _served_with_stat(engine: Engine, container: Container, path: str
                            ) -> AsyncIterator[wire.PathStat | bytes]:
    """The stat of `path`, then its tar, from kubedock's program over a connection; nothing
    if the program is not there or will not serve."""
    address = engine.pod_network.address(container.pod_ip)
    session = _own_archive(engine, container, "get", path, "--with-stat",
                           *served_archive.serve_args(address))
    if session is None:
        return
    async with served_archive.served(engine.cluster, engine.pod_network,
                                     _running_pod(container), address, session,
                                     with_stat=True) as connection:
        if connection is not None:
            yield _path_stat(path, connection.stat)
            async for piece in _served_tar(connection, path, container):
                yield piece


async def get_archive(engine: Engine, container: Container, path: str, *,
                      size: int | None = None) -> AsyncIterator[bytes]:
    """A tar of `path` (its basename as the top entry), from the pod's kubedock or `tar`;
    one of `size` (None: not known) worth it over a connection to kubedock's program where
    it takes one (`_served_archive`)."""
    address = engine.pod_network.address(container.pod_ip)
    if served_archive.worth_serving(size) and (served := _own_archive(
            engine, container, "get", path, *served_archive.serve_args(address))) is not None:
        async with served_archive.served(engine.cluster, engine.pod_network,
                                         _running_pod(container), address,
                                         served) as connection:
            if connection is not None:
                async for piece in _served_tar(connection, path, container):
                    yield piece
                return
    async for piece in _exec_archive(engine, container, path):
        yield piece


async def _served_tar(connection: served_archive.Connection, path: str,
                      container: Container) -> AsyncIterator[bytes]:
    async for piece in served_archive.receive(connection):
        yield piece
    said = await _collected_errors(connection.channel)
    if connection.channel.exit_code != 0:
        log.warning("tar of %s in %s failed: %s", path, container.id[:12],
                    said or connection.channel.status_message)


async def _exec_archive(engine: Engine, container: Container, path: str
                        ) -> AsyncIterator[bytes]:
    """A tar of `path` on the stdout of an exec of kubedock's program or of `tar`."""
    session = _own_archive(engine, container, "get", path)
    if session is None:
        directory, base = posixpath.split(path.rstrip("/") or "/")
        argv = ["tar", "-c", "-f", "-", "-C", directory or "/", base or "."]
        session = engine.cluster.exec(_running_pod(container), argv, stdin=False, stdout=True,
                                      stderr=True)
    async with session as channel:
        errors = bytearray()
        while (message := await channel.receive()) is not None:
            number, data = message
            if number == 1:
                yield data
            else:
                errors.extend(data[-4096:])
    if channel.exit_code is None:
        # Raised mid-answer: the client's transfer fails rather than ending short.
        raise kube.ClusterUnreachable(
            f"copying {path} out of {container.id[:12]} broke off: "
            f"{channel.status_message or 'the exec session ended without a status'}")
    if channel.exit_code != 0:
        log.warning("tar of %s in %s failed: %s", path, container.id[:12], errors.decode(
            errors="replace").strip())


def _running_pod(container: Container) -> str:
    if not files_reachable(container):
        raise Conflict(
            f"container {container.id[:12]} is not running: kubedock can copy files into a "
            "created container (before start), out of and into a running one, and out of and "
            "into one that ran supervised (see --keep-exited-files) until it is started again "
            "or removed"
        )
    assert container.pod_name is not None
    return container.pod_name


async def _run(cluster: kube.ClusterBoundary, pod: str, argv: list[str]) -> tuple[str, str, int]:
    return await _collected(cluster.exec(pod, argv, stdin=False, stdout=True, stderr=True))


async def _collected(session: AbstractAsyncContextManager[kube.ExecChannel]
                     ) -> tuple[str, str, int]:
    out, err = bytearray(), bytearray()
    async with session as channel:
        while (message := await channel.receive()) is not None:
            (out if message[0] == 1 else err).extend(message[1])
    code = channel.exit_code if channel.exit_code is not None else -1
    if code == -1 and channel.status_message:
        err.extend(channel.status_message.encode())
    return out.decode(errors="replace"), err.decode(errors="replace"), code


def _raise_for_tool(err: str, code: int, path: str) -> None:
    if code == podside.NOT_FOUND:
        raise NotFound(f"Could not find the file {path} in container")
    if code == podside.NOT_A_DIRECTORY:
        raise InvalidParameter(f"extraction point is not a directory: {path}")
    raise InvalidParameter(f"copying failed in the container ({code}): {err.strip()[-500:]}")


def _raise_for(err: str, code: int, path: str, tool: str) -> None:
    if code in (126, 127) or "executable file not found" in err or "no such file or directory: " \
            "unknown" in err.lower():
        raise Unsupported(_NO_TOOLS.format(tool=tool))
    if "No such file" in err or "can't stat" in err or "not found" in err.lower():
        raise NotFound(f"Could not find the file {path} in container")
    if "Not a directory" in err:
        raise InvalidParameter(f"extraction point is not a directory: {path}")
    raise InvalidParameter(f"{tool} failed in the container ({code}): {err.strip()[-500:]}")


# -- streams between the event loop and tar worker threads --------------------------------

class _FromChannel:
    """A blocking file (for tarfile, in a worker thread) reading chunks sent by the loop."""

    def __init__(self, receive: trio.MemoryReceiveChannel[bytes]) -> None:
        self._receive = receive
        self._buffer = b""
        self._done = False

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            try:
                self._buffer += trio.from_thread.run(self._receive.receive)
            except trio.EndOfChannel:
                self._done = True
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


class _ToChannel:
    """A blocking file (for tarfile, in a worker thread) handing each write to the loop."""

    def __init__(self, send: Callable[[bytes], Awaitable[object]]) -> None:
        self._send = send

    def write(self, data: bytes) -> int:
        if data:
            trio.from_thread.run(self._send, bytes(data))
        return len(data)


async def _sending(send: Callable[[bytes], Awaitable[object]],
                   run: Callable[[Callable[[bytes], Awaitable[object]]], Awaitable[_T]]) -> _T:
    """`run(produce)`, a task of the loop sending what `produce` is given, a few chunks behind.

    The producer (a task, or a worker thread through `_ToChannel`) goes on while the loop
    sends; the queue between them is bounded, so a slow receiver still holds it back.
    """
    into, out = trio.open_memory_channel[bytes](_QUEUE)

    async def forward() -> None:
        async with out:
            async for chunk in out:
                await send(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(forward)
        with into:
            result = await run(into.send)
    return result


async def _in_thread(work: Callable[..., _T], *args: object) -> _T:
    """`work(*args)` in a worker thread that a cancelled caller leaves behind.

    The thread only talks to the loop through `_FromChannel` and `_ToChannel`, whose next
    call fails once the caller's channels are closed, so an abandoned thread ends soon.
    """
    return await trio.to_thread.run_sync(work, *args, abandon_on_cancel=True)


async def through_thread(body: AsyncIterable[bytes], work: Callable[[IO[bytes]], _T]) -> _T:
    """Run `work(file)` in a thread, `file` reading `body` as the client sends it."""
    send, receive = trio.open_memory_channel[bytes](_QUEUE)
    result: list[_T] = []

    async def pump() -> None:
        async with send:
            async for chunk in body:
                if chunk:
                    await send.send(bytes(chunk))

    def run() -> None:
        with receive:
            try:
                result.append(work(cast(IO[bytes], _FromChannel(receive))))
            except podside.ArchiveError as error:
                raise InvalidParameter(str(error)) from None

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump)
        await _in_thread(run)
        # A tar ends at its end-of-archive marker; whatever the client sends after is ignored.
        nursery.cancel_scope.cancel()
    return result[0]

