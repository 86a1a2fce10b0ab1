"""`kubedock buildstep STATE serve`: the work of a build sandbox pod, in one exec session.

It answers requests on stdin, framed as `kubedock.podside._buildwire` says, until stdin ends:

    reset        empty the root filesystem STATE/root
    apply        unpack the layer that follows onto it (plain or compressed, whiteouts honoured)
    run          run a build step chrooted in it (argv, env as pairs, user as Docker's USER,
                 workdir, `extra_hosts` as [name, ip] pairs for its /etc/hosts), sending its
                 output (stderr apart when `stderr_apart`); the status is its exit code
    snapshot     send a tar of the changes since the last reset, apply or snapshot

STATE also holds the manifest that snapshots compare with. A step runs with the environment
it is given (plus Docker's PATH, HOSTNAME and HOME when it has none), as the user it names,
with stdin empty and stdout and stderr as its output (together, unless asked apart, as Docker's
classic builder shows stderr in colour); the exit code is the step's, 127 when its program does
not exist, 126 when it cannot be run (with Docker's message on stderr). For the
step the root gets the device nodes of a container's /dev and the pod's /etc/resolv.conf and
/etc/hosts; they are taken away afterwards unless the step changed them, so snapshots do not
see them. There is no /proc (mounting it needs CAP_SYS_ADMIN).
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import shutil
import signal
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any, cast

from . import _buildwire, _chunks, _rootfs, _users
from ._tar import ArchiveError

CANNOT_RUN = 126
NOT_FOUND = 127
_USAGE = 64
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Device nodes of a Docker container's /dev (major, minor).
_DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
            "urandom": (1, 9), "tty": (5, 0)}
# What the pod's runtime gives the pod, handed to the step.
_PROVIDED = ("resolv.conf", "hosts")
# What Docker's classic builder says when a step's process cannot start.
_RUNTIME_FAILURE = ("failed to create shim task: OCI runtime create failed: runc create failed: "
                    "unable to start container process: {}: unknown")
_CHUNK = 256 * 1024
# After the step ends, how long processes it left behind may hold its output open.
_DRAIN_SECONDS = 1.0


def run_buildstep(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[1] != "serve":
        print("usage: kubedock buildstep STATE serve", file=sys.stderr)
        return _USAGE
    state = argv[0]
    os.makedirs(os.path.join(state, "root"), exist_ok=True)
    requests = os.fdopen(0, "rb", closefd=False)
    reply = _Replies()
    while line := requests.readline():
        request = _buildwire.parse_request(line)
        chunks = _Chunks(requests) if request["op"] == "apply" else None
        try:
            status = _operate(state, request, chunks, reply)
        except (ArchiveError, OSError, KeyError, TypeError, ValueError) as error:
            reply.send(_buildwire.ERROR, f"{request['op']}: {error}".encode())
            status = 1
        if chunks is not None:
            chunks.skip_rest()  # what a failed apply did not read, to find the next request
        reply.send(_buildwire.END, str(status).encode())
    return 0


def _operate(state: str, request: dict[str, Any], chunks: _Chunks | None,
             reply: _Replies) -> int:
    root, manifest = os.path.join(state, "root"), os.path.join(state, "manifest.json")
    op = request["op"]
    if op == "reset":
        _rootfs.reset(root, manifest)
    elif op == "apply" and chunks is not None:
        _rootfs.apply_layer(cast(IO[bytes], chunks), root)
        _rootfs.save_manifest(_rootfs.scan(root), manifest)
    elif op == "run":
        extra_hosts = "".join(f"{ip}\t{name}\n" for name, ip in request.get("extra_hosts", ()))
        with _provided(root, os.path.join(state, "aside"), extra_hosts.encode()):
            return _run(root, request["argv"], [tuple(pair) for pair in request["env"]],
                        request["user"], request["workdir"], reply,
                        stderr_apart=bool(request.get("stderr_apart")))
    elif op == "snapshot":
        _rootfs.snapshot(root, manifest, reply.as_file())
    else:
        raise ValueError(f"unknown operation {op!r}")
    return 0


class _Replies:
    """Frames on stdout."""

    def send(self, kind: bytes, payload: bytes) -> None:
        _write_all(1, _buildwire.frame(kind, payload))

    def as_file(self) -> IO[bytes]:
        """A file whose writes go out as output frames (a snapshot's tar)."""
        return cast(IO[bytes], _OutputFile(self))


class _OutputFile(io.RawIOBase):
    def __init__(self, replies: _Replies) -> None:
        self._replies = replies

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._replies.send(_buildwire.OUTPUT, bytes(data))
        return len(data)


class _Chunks(io.RawIOBase):
    """The chunks of a layer that follow an `apply` request, as a file that ends with them."""

    def __init__(self, requests: IO[bytes]) -> None:
        self._requests = requests
        self._left = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._left == 0:
            if self._ended:
                return 0
            head = self._requests.read(_chunks.HEAD_SIZE)
            if len(head) < _chunks.HEAD_SIZE:
                raise _buildwire.SessionError("the session ended inside a layer")
            self._left = _chunks.chunk_size(head)
            self._ended = self._left == 0
        data = self._requests.read(min(len(buffer), self._left))
        if not data:
            raise _buildwire.SessionError("the session ended inside a layer")
        buffer[:len(data)] = data
        self._left -= len(data)
        return len(data)

    def skip_rest(self) -> None:
        while self.read(_CHUNK):
            pass


def _run(root: str, argv: list[str], env: list[tuple[str, str]], user: str,
         workdir: str, reply: _Replies, *, stderr_apart: bool) -> int:
    out_reader, out_writer = os.pipe()
    err_reader, err_writer = os.pipe() if stderr_apart else (None, out_writer)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child replaces itself or exits
        code = CANNOT_RUN
        try:
            os.setsid()  # its own process group: what it leaves behind can be killed
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_writer, 1)
            os.dup2(err_writer, 2)
            os.closerange(3, 1024)
            code = _exec(root, argv, dict(env), user, workdir)
        finally:
            os._exit(code)
    readers = {out_reader: _buildwire.OUTPUT}
    os.close(out_writer)
    if err_reader is not None:
        readers[err_reader] = _buildwire.STDERR
        os.close(err_writer)
    status = _forward(readers, pid, reply)
    for reader in readers:
        os.close(reader)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _forward(readers: dict[int, bytes], pid: int, reply: _Replies) -> int:
    """Send the step's output, each pipe's in frames of its kind, until it exits; then end its
    process group and send what is left. Returns its wait status."""
    status: int | None = None
    deadline = float("inf")
    open_readers = list(readers)
    while open_readers and time.monotonic() < deadline:
        if status is None:
            done, waited = os.waitpid(pid, os.WNOHANG)
            if done:
                status = waited
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                deadline = time.monotonic() + _DRAIN_SECONDS
        ready, _, _ = select.select(open_readers, [], [], 0.1)
        for reader in ready:
            data = os.read(reader, _CHUNK)
            if data:
                reply.send(readers[reader], data)
            else:
                open_readers.remove(reader)
    if status is None:
        _, status = os.waitpid(pid, 0)
    return status


def _write_all(descriptor: int, data: bytes) -> None:
    with memoryview(data) as view:
        while view:
            view = view[os.write(descriptor, view):]


def _exec(root: str, argv: list[str], env: dict[str, str], user_spec: str,
          workdir: str) -> int:  # pragma: no cover - runs in the forked child
    os.chroot(root)
    os.chdir("/")
    try:
        # No USER is root, with root's home from the image's passwd (as Docker's runtime).
        user = _users.resolve_user(user_spec or "0", _read("/etc/passwd"), _read("/etc/group"))
    except _users.UserError as error:
        return _fail(str(error), CANNOT_RUN)
    env.setdefault("PATH", _DEFAULT_PATH)
    env.setdefault("HOSTNAME", os.uname().nodename)
    env.setdefault("HOME", user.home)
    try:
        os.makedirs(workdir, 0o755, exist_ok=True)
        os.setgroups(list(user.groups))
        os.setgid(user.gid)
        os.setuid(user.uid)
        os.chdir(workdir)
    except OSError as error:
        return _fail(_RUNTIME_FAILURE.format(
            f'chdir to cwd ("{workdir}") set in config.json failed: {_reason(error)}'),
            CANNOT_RUN)
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        where = f"stat {argv[0]}: no such file or directory" if "/" in argv[0] \
            else "executable file not found in $PATH"
        return _fail(_RUNTIME_FAILURE.format(f'exec: "{argv[0]}": {where}'), NOT_FOUND)
    except OSError as error:
        return _fail(_RUNTIME_FAILURE.format(f'exec: "{argv[0]}": {_reason(error)}'),
                     CANNOT_RUN)
    return CANNOT_RUN  # not reached: execvpe returns only by raising


def _fail(message: str, code: int) -> int:  # pragma: no cover - runs in the forked child
    os.write(2, f"{message}\n".encode())
    return code


def _reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.read()
    except OSError:
        return None


@contextlib.contextmanager
def _provided(root: str, aside: str, extra_hosts: bytes) -> Iterator[None]:
    """The step's /dev nodes and the pod's name files in `root` (/etc/hosts ending with
    `extra_hosts`), and afterwards what was there before, where the step left them alone."""
    dev, etc = os.path.join(root, "dev"), os.path.join(root, "etc")
    dev_before, etc_before = _open_directory(dev), _open_directory(etc)
    made = [_make_device(dev, name, *numbers) for name, numbers in _DEVICES.items()]
    os.makedirs(aside, exist_ok=True)
    placed = [_place(etc, name, aside, extra_hosts if name == "hosts" else b"")
              for name in _PROVIDED]
    dev_ready, etc_ready = _mtime(dev), _mtime(etc)
    try:
        yield
    finally:
        dev_changed, etc_changed = _mtime(dev) != dev_ready, _mtime(etc) != etc_ready
        for path in filter(None, made):
            with contextlib.suppress(OSError):
                if stat.S_ISCHR(os.lstat(path).st_mode):
                    os.unlink(path)
        for name, ours in zip(_PROVIDED, placed, strict=True):
            if ours is not None:
                _put_back(os.path.join(etc, name), os.path.join(aside, name), ours)
        _close_directory(dev, dev_before, dev_changed)
        _close_directory(etc, etc_before, etc_changed)


def _open_directory(path: str) -> os.stat_result | None:
    """A directory of the root that we add entries to for a step, made when missing; what
    it was before."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o755)
        return None


def _close_directory(path: str, before: os.stat_result | None, changed: bool) -> None:
    """Removed again if we made it and it is empty, given back its times when the step
    changed nothing in it: either way, the snapshot does not see our visit."""
    if before is None:
        with contextlib.suppress(OSError):
            os.rmdir(path)
    elif not changed and stat.S_ISDIR(before.st_mode) and _is_directory(path):
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns), follow_symlinks=False)


def _mtime(path: str) -> int | None:
    try:
        return os.lstat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def _is_directory(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _make_device(directory: str, name: str, major: int, minor: int) -> str | None:
    path = os.path.join(directory, name)
    if not _is_directory(directory) or os.path.lexists(path):
        return None
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
    os.chmod(path, 0o666)
    return path


def _place(etc: str, name: str, aside: str, extra: bytes) -> tuple[int, bytes] | None:
    """Put the pod's /etc/`name`, `extra` added, in the root (the root's own moved aside): its
    inode and content, or None when there is nothing to give or nowhere to put it."""
    content = _read_bytes(os.path.join("/etc", name))
    if content is None or not _is_directory(etc):
        return None
    if extra:
        content += (b"" if content.endswith(b"\n") or not content else b"\n") + extra
    target, saved = os.path.join(etc, name), os.path.join(aside, name)
    if os.path.lexists(target):
        os.rename(target, saved)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
    os.chmod(target, 0o644)
    return os.lstat(target).st_ino, content


def _put_back(target: str, saved: str, ours: tuple[int, bytes]) -> None:
    try:
        info = os.lstat(target)
        unchanged = (stat.S_ISREG(info.st_mode) and info.st_ino == ours[0]
                     and _read_bytes(target) == ours[1])
    except FileNotFoundError:
        unchanged = False
    if unchanged:
        os.unlink(target)
        if os.path.lexists(saved):
            os.rename(saved, target)
    elif os.path.lexists(saved):
        # The step wrote its own: that is what the image keeps.
        if _is_directory(saved):
            shutil.rmtree(saved)
        else:
            os.unlink(saved)


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return None
