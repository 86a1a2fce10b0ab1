"""`kubedock archive`: copying into and out of a running container with kubedock's own code.

The init container leaves the frozen program in the pod (`install_tools`), so an image
without `tar`, `stat` or a shell still serves `docker cp` both ways: kubedock execs
`<tools>/ld.so --library-path ... <tools>/kubedock/kubedock archive ...`, the C
library travelling with the program, since the image may have none.

    archive stat PATH   one JSON line: mode (st_mode), size, mtime, linkTarget
    archive get PATH    a plain tar of PATH (its basename as the top entry) on stdout
    archive put DIR     extract the plain tar on stdin into the directory DIR

With `--serve`, get and put carry the tar over a connection of kubedock's instead, once the
path has been checked: to a listener on the pod's loopback, or with `--pod-network` on
every address of the pod (see `_served`); get's `--with-stat` says first what `archive stat`
would, so that one exec serves the whole of a `GET archive`.

Exit status: 0 done, 1 a malformed archive or an I/O failure, 2 no such path, 3 not a
directory; the reason is on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import shutil
import socket
import stat
import sys
from collections.abc import Sequence
from functools import partial
from typing import IO, cast

from . import _served
from ._tar import ArchiveError, extract, open_writer, skip

NOT_FOUND = 2
NOT_A_DIRECTORY = 3
LOADER = "ld.so"
PROGRAM = "kubedock/kubedock"
# The frozen program's own library folder. The C library goes there too: the program starts
# again through the loader with LD_LIBRARY_PATH naming this folder alone (a launch through
# the loader's --library-path does not reach that second start).
LIBRARIES = "kubedock/_internal"



def tool_argv(tools: str, *args: str) -> list[str]:
    """The command that runs `kubedock archive args...` from the tools folder in a pod."""
    return [posixpath.join(tools, LOADER), "--library-path", posixpath.join(tools, LIBRARIES),
            posixpath.join(tools, PROGRAM), "archive", *args]


def install_tools(tools: str) -> None:
    """Copy this frozen program and the C library it runs on into `tools`.

    The libraries are every one in the folders this process loaded its C library from: in
    kubedock's image those hold exactly the pieces the program needs (libc's stubs such as
    libdl are needed by name without ever being mapped, so the map alone is not enough).
    """
    if not getattr(sys, "frozen", False):
        raise OSError("only the frozen kubedock can install itself into a pod")
    home = os.path.dirname(os.path.realpath(sys.executable))
    shutil.copytree(home, posixpath.join(tools, posixpath.dirname(PROGRAM)), symlinks=True,
                    dirs_exist_ok=True)
    libraries = posixpath.join(tools, LIBRARIES)
    mapped = _mapped_libraries(home)
    for folder in {os.path.dirname(path) for path in mapped}:
        for entry in os.scandir(folder):
            copy = posixpath.join(libraries, entry.name)
            # Soname links are copied as files; what the build bundles stays the build's.
            if ".so" in entry.name and entry.is_file() and not os.path.lexists(copy):
                shutil.copyfile(entry.path, copy)
    for path in mapped:
        name = os.path.basename(path)
        if name.startswith("ld-linux"):
            shutil.copy2(path, posixpath.join(libraries, name))
            # A link, not a copy: the frozen program finds itself through /proc/self/exe,
            # which names the loader, and it recognises the loader by its real name only.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(posixpath.join(tools, LOADER))
            os.symlink(posixpath.join(LIBRARIES, name), posixpath.join(tools, LOADER))


def _mapped_libraries(home: str) -> set[str]:
    with open("/proc/self/maps") as maps:
        paths = {line.split(None, 5)[5].strip() for line in maps if len(line.split(None, 5)) == 6}
    return {path for path in paths if ".so" in os.path.basename(path)
            and path.startswith("/") and not path.startswith(home + "/")}


def run_archive(argv: Sequence[str], *, no_overwrite_dir_non_dir: bool = False,
                serve: bool = False, pod_network: bool = False, with_stat: bool = False) -> int:
    if len(argv) != 2 or argv[0] not in ("stat", "get", "put"):
        print("usage: kubedock archive stat|get|put PATH", file=sys.stderr)
        return 64
    action, path = argv
    try:
        if action == "stat":
            print(_stat_line(path))
        elif action == "get":
            if with_stat and serve:
                print(_stat_line(path))
            else:
                os.lstat(path)
            if serve:
                _served.serve(lambda connection: _write_tar(path, _served.ChunkWriter(connection)),
                              pod_network=pod_network)
            else:
                with open(1, "wb", closefd=False) as stdout:
                    _write_tar(path, stdout)
        elif serve:
            if (refused := _refusal(path)) is not None:
                return refused
            _served.serve(partial(_extract_served, path, no_overwrite_dir_non_dir),
                          pod_network=pod_network)
        else:
            with open(0, "rb", buffering=0, closefd=False) as stdin:
                if (refused := _refusal(path)) is not None:
                    # Read all the same: the kubelet stops reading an exec's stdin once its
                    # process has gone, and the session would stall under what is left.
                    skip(stdin)
                    return refused
                extract(stdin, path, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir)
    except FileNotFoundError as error:
        print(f"no such file or directory: {error.filename or path}", file=sys.stderr)
        return NOT_FOUND
    except (ArchiveError, OSError) as error:
        print(f"kubedock archive {action}: {error}", file=sys.stderr)
        return 1
    return 0


def _refusal(path: str) -> int | None:
    """Why the directory `path` cannot take an archive (said on stderr), as the exit status;
    None when it can."""
    if os.path.isdir(path):
        return None
    try:
        os.stat(path)
    except FileNotFoundError as error:
        print(f"no such file or directory: {error.filename or path}", file=sys.stderr)
        return NOT_FOUND
    print(f"not a directory: {path}", file=sys.stderr)
    return NOT_A_DIRECTORY


def _stat_line(path: str) -> str:
    info = os.lstat(path)
    return json.dumps({
        "mode": info.st_mode, "size": info.st_size, "mtime": int(info.st_mtime),
        "linkTarget": os.readlink(path) if stat.S_ISLNK(info.st_mode) else "",
    })


def _extract_served(path: str, no_overwrite_dir_non_dir: bool,
                    connection: socket.socket) -> None:
    source = _served.ChunkReader(connection)
    extract(cast(IO[bytes], source), path, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir)
    # What follows the tar's end (padding, the end of the chunks) is read before the
    # connection closes, so that closing it does not reset it under kubedock's last writes.
    while source.read(_served.RECEIVE):
        pass


def _write_tar(path: str, sink: IO[bytes] | _served.ChunkWriter) -> None:
    name = posixpath.basename(path.rstrip("/")) or "."
    with open_writer(cast(IO[bytes], sink)) as archive:
        archive.add(path, arcname=name)
    sink.close()
