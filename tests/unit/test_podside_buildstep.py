"""`kubedock buildstep`: a build step chrooted into a root filesystem, as the sandbox pod runs
it (here the root holds a static busybox; chroot and mknod need root)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

BUSYBOX = shutil.which("busybox")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or BUSYBOX is None or b"statically linked" not in subprocess.run(
        ["file", "-L", BUSYBOX or "/"], capture_output=True, check=False).stdout,
    reason="needs root and a static busybox")


def _buildstep(state: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "kubedock", "buildstep", str(state), *args],
                          input=stdin, capture_output=True, check=False, timeout=60)


def _run(state: Path, *argv: str, env: tuple[tuple[str, str], ...] = (), user: str = "",
         workdir: str = "/") -> tuple[int, bytes]:
    step = json.dumps({"argv": argv, "env": env, "user": user, "workdir": workdir})
    done = _buildstep(state, "run", step)
    return done.returncode, done.stdout


@pytest.fixture
def state(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    assert BUSYBOX is not None
    shutil.copy(BUSYBOX, root / "bin/busybox")
    for tool in ("sh", "echo", "id", "env", "rm", "cat", "ls", "sleep", "true", "pwd"):
        os.symlink("busybox", root / "bin" / tool)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                     "app:x:1000:1000::/home/app:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    (root / "etc/hosts").write_text("127.0.0.1 image-own\n")
    assert _buildstep(tmp_path, "snapshot").returncode == 0  # the starting point
    return tmp_path


def _snapshot(state: Path) -> list[str]:
    done = _buildstep(state, "snapshot")
    assert done.returncode == 0, done.stderr
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        return archive.getnames()


def test_output_and_exit_code(state: Path) -> None:
    code, output = _run(state, "/bin/sh", "-c", "echo out; echo err >&2; exit 3")
    assert (code, output) == (3, b"out\nerr\n")


def test_programs_missing_or_not_executable(state: Path) -> None:
    (state / "root/bin/plain").write_text("not a program")
    assert _run(state, "nothere")[0] == 127
    assert _run(state, "/bin/nothere")[0] == 127
    code, output = _run(state, "/bin/plain")
    assert code == 126 and b"permission denied" in output


def test_user_names_resolve_in_the_root(state: Path) -> None:
    code, output = _run(state, "/bin/sh", "-c", "id -u; id -G; echo $HOME; pwd",
                        user="app", workdir="/work/dir")
    assert (code, output) == (0, b"1000\n1000 2000\n/home/app\n/work/dir\n")
    assert _run(state, "id", user="nobody")[0] == 126
    assert _run(state, "/bin/sh", "-c", "id -u; id -g", user="5:7") == (0, b"5\n7\n")


def test_environment_is_the_given_one(state: Path) -> None:
    code, output = _run(state, "env", env=(("B", "2"), ("A", "x y")))
    assert code == 0
    assert sorted(output.decode().splitlines()) == [
        "A=x y", "B=2", "HOME=/root",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def test_devices_and_name_files_only_during_the_step(state: Path) -> None:
    code, output = _run(state, "/bin/sh", "-c",
                        "echo x > /dev/null && ls /dev && cat /etc/hosts")
    assert code == 0
    assert output.startswith(b"full\nnull\nrandom\ntty\nurandom\nzero\n")
    assert b"image-own" not in output
    assert (state / "root/etc/hosts").read_text() == "127.0.0.1 image-own\n"
    assert not (state / "root/dev").exists()
    assert _snapshot(state) == []


def test_snapshot_after_a_step(state: Path) -> None:
    assert _run(state, "/bin/sh", "-c", "echo hi > /x; rm /bin/true; echo 1 > /etc/hosts")[0] == 0
    assert _snapshot(state) == ["bin", "bin/.wh.true", "etc/hosts", "x"]
    assert (state / "root/etc/hosts").read_text() == "1\n"


def test_processes_left_behind_do_not_hold_the_step(state: Path) -> None:
    started = time.monotonic()
    code, output = _run(state, "/bin/sh", "-c", "sleep 30 & echo started")
    assert (code, output) == (0, b"started\n")
    assert time.monotonic() - started < 10


def test_reset_and_apply(state: Path) -> None:
    assert _buildstep(state, "reset").returncode == 0
    assert os.listdir(state / "root") == []
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as archive:
        archive.addfile(tarfile.TarInfo("f"), io.BytesIO())
    assert _buildstep(state, "apply", stdin=layer.getvalue()).returncode == 0
    assert _snapshot(state) == []
    bad = _buildstep(state, "apply", stdin=b"not a tar")
    assert bad.returncode == 1 and b"not a tar archive" in bad.stderr
