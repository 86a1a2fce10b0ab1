"""`kubedock toolbox`: what Docker does inside a container that the image itself cannot.

kubedock adds this program to a running pod on first need, as an ephemeral container that
targets `main`: it then shares `main`'s process namespace, so `main`'s process is the lowest
process id whose root is not the toolbox's own, and that root (`/proc/PID/root`) is `main`'s
file system, mounts included. Every command works from there, with no tool of the image:

    toolbox idle                      the ephemeral container's own process: wait for SIGTERM
    toolbox archive stat|get|put PATH [--no-overwrite-dir-non-dir]
                                      [--serve [--pod-network] [--with-stat]]
                                      `kubedock archive`, inside main's root (chroot)
    toolbox exec USER WORKDIR [NAME=VALUE...] -- COMMAND [ARG...]
                                      run COMMAND in main's root as Docker's exec would: USER
                                      resolved by main's /etc/passwd and /etc/group, WORKDIR
                                      ('' = main's), main's environment plus the given one
    toolbox signal NUMBER             deliver a signal to main's process
    toolbox ps                        main's processes as JSON (for `docker top`)
    toolbox udp-relay PORT            carry the datagrams of UDP port PORT of the pod, framed,
                                      over a TCP connection to the port it writes (see `_udp`)
    toolbox echo PORT                 echo UDP datagrams and TCP connections on PORT (tests)

It needs CAP_SYS_PTRACE (to open the root and /proc entries of processes of other users),
CAP_SYS_CHROOT, CAP_KILL, CAP_SETUID/SETGID and the file capabilities a root copy needs.
A command that cannot start writes Docker's message on stdout and exits 126, as Docker does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence

from . import _archive, _procfs, _users

# Imported before a chroot: afterwards the frozen program cannot load modules any more.
for _module in ("bz2", "grp", "gzip", "lzma", "pwd", "zlib"):
    with contextlib.suppress(ImportError):
        __import__(_module)

CANNOT_START = 126
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RUNTIME_FAILURE = "OCI runtime exec failed: exec failed: unable to start container process: {}: "\
    "unknown"


def run_toolbox(argv: Sequence[str]) -> int:
    if not argv:
        return _usage()
    command, args = argv[0], list(argv[1:])
    if command == "idle":
        return _idle()
    if command == "archive" and args:
        _enter_root(target_pid())
        flags = ("--no-overwrite-dir-non-dir", "--serve", "--pod-network", "--with-stat")
        return _archive.run_archive([arg for arg in args if arg not in flags],
                                    no_overwrite_dir_non_dir=flags[0] in args,
                                    serve=flags[1] in args, pod_network=flags[2] in args,
                                    with_stat=flags[3] in args)
    if command == "exec" and len(args) >= 4 and "--" in args[2:]:
        split = args.index("--", 2)
        return _exec(args[0], args[1], args[2:split], args[split + 1:])
    if command == "signal" and len(args) == 1 and args[0].isdecimal():
        os.kill(target_pid(), int(args[0]))
        return 0
    if command == "ps" and not args:
        print(json.dumps(processes()))
        return 0
    if command in ("udp-relay", "echo") and len(args) == 1 and args[0].isdecimal():
        # Imported here: the wire format costs the other commands' start nothing.
        from ._udp import run_echo, run_udp_relay

        return (run_udp_relay if command == "udp-relay" else run_echo)(int(args[0]))
    return _usage()


def _usage() -> int:
    print("usage: kubedock toolbox idle|archive|exec|signal|ps|udp-relay|echo ...",
          file=sys.stderr)
    return 64


def _idle() -> int:
    signal.signal(signal.SIGTERM, lambda _number, _frame: sys.exit(0))
    while True:
        signal.pause()


def _own_root() -> tuple[int, int]:
    info = os.stat("/")
    return info.st_dev, info.st_ino


def _root_of(pid: int) -> tuple[int, int] | None:
    try:
        info = os.stat(f"/proc/{pid}/root")
    except OSError:  # gone, or a kernel thread
        return None
    return info.st_dev, info.st_ino


def _pids() -> list[int]:
    return sorted(int(name) for name in os.listdir("/proc") if name.isdecimal())


def target_pid() -> int:
    """`main`'s process: the first one that lives in another root than the toolbox."""
    own = _own_root()
    for pid in _pids():
        root = _root_of(pid)
        if root is not None and root != own:
            return pid
    raise SystemExit("kubedock toolbox: no process of the target container is visible")


def _enter_root(pid: int) -> None:
    os.chroot(f"/proc/{pid}/root")
    os.chdir("/")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.read()
    except OSError:
        return None


def _fail(reason: str) -> int:
    os.write(1, (_RUNTIME_FAILURE.format(reason) + "\r\n").encode())
    return CANNOT_START


def _exec(user_spec: str, workdir: str, env: list[str], argv: list[str]) -> int:
    pid = target_pid()
    with open(f"/proc/{pid}/environ", "rb") as file:
        inherited = [item.decode(errors="surrogateescape")
                     for item in file.read().split(b"\0") if b"=" in item]
    _enter_root(pid)
    if not workdir:
        try:
            workdir = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            workdir = "/"
    try:
        user = _users.resolve_user(user_spec, _read("/etc/passwd"), _read("/etc/group"))
    except _users.UserError as error:
        os.write(1, f"{error}\r\n".encode())
        return CANNOT_START
    environment = dict(item.partition("=")[::2] for item in inherited
                       if not item.startswith("HOME="))
    environment.update(item.partition("=")[::2] for item in env if "=" in item)
    environment.setdefault("HOME", user.home)
    environment.setdefault("PATH", _DEFAULT_PATH)
    os.setgroups(list(user.groups))
    os.setgid(user.gid)
    os.setuid(user.uid)
    try:
        os.chdir(workdir)
    except OSError as error:
        return _fail(f'chdir to cwd ("{workdir}") set in config.json failed: '
                     f"{_reason(error)}")
    try:
        os.execvpe(argv[0], argv, environment)
    except FileNotFoundError:
        if "/" in argv[0]:
            return _fail(f'exec: "{argv[0]}": stat {argv[0]}: no such file or directory')
        return _fail(f'exec: "{argv[0]}": executable file not found in $PATH')
    except OSError as error:
        return _fail(f'exec: "{argv[0]}": {_reason(error)}')
    return CANNOT_START  # not reached: execvpe returns only by raising


def _reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def processes() -> dict[str, object]:
    """The target's processes (not the toolbox's own) and the system facts `ps` needs to
    compute times and shares: one JSON document, formatted on kubedock's side."""
    own = _own_root()
    pid = target_pid()
    names = _users.user_names(_read(f"/proc/{pid}/root/etc/passwd"))
    found = []
    for candidate in _pids():
        if candidate == os.getpid() or _root_of(candidate) in (None, own):
            continue
        stat, status = _read(f"/proc/{candidate}/stat"), _read(f"/proc/{candidate}/status")
        try:
            with open(f"/proc/{candidate}/cmdline", "rb") as file:
                cmdline = file.read()
        except OSError:
            continue
        if stat is None or status is None:
            continue
        process = _procfs.parse_stat(stat)
        uid, gid = _procfs.parse_ids(status)
        process.update(uid=uid, gid=gid, user=names.get(uid, str(uid)),
                       args=_procfs.parse_cmdline(cmdline))
        found.append(process)
    return {
        "now": time.time(),
        "boot_time": _procfs.parse_boot_time(_read("/proc/stat") or ""),
        "clock_ticks": os.sysconf("SC_CLK_TCK"),
        "page_size": os.sysconf("SC_PAGE_SIZE"),
        "mem_total_kib": _procfs.parse_mem_total_kib(_read("/proc/meminfo") or ""),
        "processes": found,
    }
