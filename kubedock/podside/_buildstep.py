"""`kubedock buildstep`: the work of a build sandbox pod, one command per exec.

    buildstep STATE reset             empty the root filesystem STATE/root
    buildstep STATE apply             unpack the layer tar on stdin onto it (whiteouts honoured)
    buildstep STATE run JSON          run a build step chrooted in it; JSON holds argv, env
                                      (pairs), user (Docker's USER) and workdir
    buildstep STATE snapshot          write a tar of the changes since the last reset, apply or
                                      snapshot to stdout

STATE also holds the manifest that snapshots compare with. A step runs with the environment
it is given (plus Docker's defaults for PATH and HOME when it has none), as the user it names,
with stdin empty and stdout and stderr together on stdout; the exit code is the step's, 127
when its program does not exist, 126 when it cannot be run. For the step the root gets the
device nodes of a container's /dev and the pod's /etc/resolv.conf and /etc/hosts; they are
taken away afterwards unless the step changed them, so snapshots do not see them. There is
no /proc (mounting it needs CAP_SYS_ADMIN).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import stat
import sys
import time
from collections.abc import Iterator, Sequence

from . import _rootfs, _users
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
# After the step ends, how long processes it left behind may hold its output open.
_DRAIN_SECONDS = 1.0


def run_buildstep(argv: Sequence[str]) -> int:
    if len(argv) < 2:
        return _usage()
    state, command, args = argv[0], argv[1], list(argv[2:])
    root, manifest = os.path.join(state, "root"), os.path.join(state, "manifest.json")
    os.makedirs(root, exist_ok=True)
    if command == "reset" and not args:
        _rootfs.reset(root, manifest)
        return 0
    if command == "apply" and not args:
        try:
            _rootfs.apply_layer(os.fdopen(0, "rb", buffering=0, closefd=False), root)
        except ArchiveError as error:
            print(f"kubedock buildstep: {error}", file=sys.stderr)
            return 1
        _rootfs.save_manifest(_rootfs.scan(root), manifest)
        return 0
    if command == "run" and len(args) == 1:
        step = json.loads(args[0])
        with _provided(root, os.path.join(state, "aside")):
            return _run(root, step["argv"], [tuple(pair) for pair in step["env"]],
                        step["user"], step["workdir"])
    if command == "snapshot" and not args:
        with os.fdopen(1, "wb", closefd=False) as out:
            _rootfs.snapshot(root, manifest, out)
        return 0
    return _usage()


def _usage() -> int:
    print("usage: kubedock buildstep STATE reset|apply|run JSON|snapshot", file=sys.stderr)
    return _USAGE


def _run(root: str, argv: list[str], env: list[tuple[str, str]], user: str,
         workdir: str) -> int:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child replaces itself or exits
        code = CANNOT_RUN
        try:
            os.setsid()  # its own process group: what it leaves behind can be killed
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(writer, 1)
            os.dup2(writer, 2)
            os.closerange(3, 1024)
            code = _exec(root, argv, dict(env), user, workdir)
        finally:
            os._exit(code)
    os.close(writer)
    status = _forward(reader, pid)
    os.close(reader)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _forward(reader: int, pid: int) -> int:
    """Copy the step's output to stdout until it exits; then end its process group and copy
    what is left. Returns its wait status."""
    status: int | None = None
    deadline = float("inf")
    while time.monotonic() < deadline:
        if status is None:
            done, waited = os.waitpid(pid, os.WNOHANG)
            if done:
                status = waited
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                deadline = time.monotonic() + _DRAIN_SECONDS
        ready, _, _ = select.select([reader], [], [], 0.1)
        if not ready:
            continue
        data = os.read(reader, 65536)
        if not data:
            break
        _write_all(1, data)
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
    env.setdefault("HOME", user.home)
    try:
        os.makedirs(workdir, 0o755, exist_ok=True)
        os.setgroups(list(user.groups))
        os.setgid(user.gid)
        os.setuid(user.uid)
        os.chdir(workdir)
    except OSError as error:
        return _fail(f'chdir to cwd ("{workdir}") set in config.json failed: {_reason(error)}',
                     CANNOT_RUN)
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        where = f"stat {argv[0]}: no such file or directory" if "/" in argv[0] \
            else "executable file not found in $PATH"
        return _fail(f'exec: "{argv[0]}": {where}', NOT_FOUND)
    except OSError as error:
        return _fail(f'exec: "{argv[0]}": {_reason(error)}', CANNOT_RUN)
    return CANNOT_RUN  # not reached: execvpe returns only by raising


def _fail(reason: str, code: int) -> int:  # pragma: no cover - runs in the forked child
    os.write(2, f"unable to start container process: {reason}\n".encode())
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
def _provided(root: str, aside: str) -> Iterator[None]:
    """The step's /dev nodes and the pod's name files in `root`, and afterwards what was
    there before, where the step left them alone."""
    dev, etc = os.path.join(root, "dev"), os.path.join(root, "etc")
    dev_before, etc_before = _open_directory(dev), _open_directory(etc)
    made = [_make_device(dev, name, *numbers) for name, numbers in _DEVICES.items()]
    os.makedirs(aside, exist_ok=True)
    placed = [_place(etc, name, aside) for name in _PROVIDED]
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


def _place(etc: str, name: str, aside: str) -> tuple[int, bytes] | None:
    """Put the pod's /etc/`name` in the root (the root's own moved aside): its inode and
    content, or None when there is nothing to give or nowhere to put it."""
    content = _read_bytes(os.path.join("/etc", name))
    if content is None or not _is_directory(etc):
        return None
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
