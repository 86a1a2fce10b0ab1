"""`kubedock buildstep`: a build step chrooted into a root filesystem, as the sandbox pod runs
it (here the root holds a static busybox; chroot and mknod need root)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from kubedock.podside import buildwire, chunks

BUSYBOX = shutil.which("busybox")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or BUSYBOX is None or b"statically linked" not in subprocess.run(
        ["file", "-L", BUSYBOX or "/"], capture_output=True, check=False).stdout,
    reason="needs root and a static busybox")


Reply = tuple[int, bytes, bytes]  # status, output, error


def _session(state: Path, *requests: bytes) -> list[Reply]:
    """Replies of one `buildstep STATE serve` session to `requests` (each made by
    `buildwire.request`, an apply followed by its chunks)."""
    done = subprocess.run([sys.executable, "-m", "kubedock", "buildstep", str(state), "serve"],
                          input=b"".join(requests), capture_output=True, check=False,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    frames = buildwire.FrameReader()
    frames.feed(done.stdout)
    replies, output, error = [], bytearray(), bytearray()
    while (frame := frames.next()) is not None:
        kind, payload = frame
        if kind == buildwire.END:
            replies.append((buildwire.end_status(payload), bytes(output), bytes(error)))
            output, error = bytearray(), bytearray()
        else:
            (output if kind == buildwire.OUTPUT else error).extend(payload)
    return replies


def _step(*argv: str, env: tuple[tuple[str, str], ...] = (), user: str = "",
          workdir: str = "/") -> bytes:
    return buildwire.request("run", argv=argv, env=env, user=user, workdir=workdir)


def _run(state: Path, *argv: str, env: tuple[tuple[str, str], ...] = (), user: str = "",
         workdir: str = "/") -> tuple[int, bytes]:
    [(code, output, _)] = _session(state, _step(*argv, env=env, user=user, workdir=workdir))
    return code, output


def _apply(layer: bytes) -> bytes:
    return (buildwire.request("apply") + chunks.chunked(layer[:700]) + chunks.chunked(layer[700:])
            + chunks.END_OF_CHUNKS)


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
    _session(tmp_path, buildwire.request("snapshot"))  # the starting point
    return tmp_path


def _names(layer: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as archive:
        return archive.getnames()


def _snapshot(state: Path) -> list[str]:
    [(status, layer, _)] = _session(state, buildwire.request("snapshot"))
    assert status == 0
    return _names(layer)


def test_output_and_exit_code(state: Path) -> None:
    code, output = _run(state, "/bin/sh", "-c", "echo out; echo err >&2; exit 3")
    assert (code, output) == (3, b"out\nerr\n")


def test_stderr_apart_when_asked(state: Path) -> None:
    request = buildwire.request("run", argv=["/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
                                env=[], user="", workdir="/", stderr_apart=True)
    done = subprocess.run([sys.executable, "-m", "kubedock", "buildstep", str(state), "serve"],
                          input=request, capture_output=True, check=True, timeout=60)
    frames = buildwire.FrameReader()
    frames.feed(done.stdout)
    kinds: dict[bytes, bytes] = {}
    while (frame := frames.next()) is not None:
        kinds[frame[0]] = kinds.get(frame[0], b"") + frame[1]
    assert kinds == {buildwire.OUTPUT: b"out\n", buildwire.STDERR: b"err\n",
                     buildwire.END: b"3"}


def test_programs_missing_or_not_executable(state: Path) -> None:
    (state / "root/bin/plain").write_text("not a program")
    runtime = (b"failed to create shim task: OCI runtime create failed: runc create failed: "
               b"unable to start container process: exec: ")
    assert _run(state, "nothere") == (
        127, runtime + b'"nothere": executable file not found in $PATH: unknown\n')
    assert _run(state, "/bin/nothere") == (
        127, runtime + b'"/bin/nothere": stat /bin/nothere: no such file or directory: unknown\n')
    assert _run(state, "/bin/plain") == (
        126, runtime + b'"/bin/plain": permission denied: unknown\n')
    assert _run(state, "true", user="nosuchuser") == (
        126, b"unable to find user nosuchuser: no matching entries in passwd file\n")


def test_user_names_resolve_in_the_root(state: Path) -> None:
    code, output = _run(state, "/bin/sh", "-c", "id -u; id -G; echo $HOME; pwd",
                        user="app", workdir="/work/dir")
    assert (code, output) == (0, b"1000\n1000 2000\n/home/app\n/work/dir\n")
    assert _run(state, "/bin/sh", "-c", "id -u; id -g", user="5:7") == (0, b"5\n7\n")


def test_environment_is_the_given_one(state: Path) -> None:
    code, output = _run(state, "env", env=(("B", "2"), ("A", "x y")))
    assert code == 0
    assert sorted(output.decode().splitlines()) == [
        "A=x y", "B=2", "HOME=/root", f"HOSTNAME={os.uname().nodename}",
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


def test_extra_hosts_end_the_step_s_hosts_file(state: Path) -> None:
    request = buildwire.request("run", argv=["/bin/sh", "-c", "cat /etc/hosts"], env=[],
                                user="", workdir="/",
                                extra_hosts=[["a.test", "::1"], ["b.test", "127.0.0.1"]])
    [(code, output, _)] = _session(state, request)
    assert code == 0 and output.startswith(Path("/etc/hosts").read_bytes().rstrip(b"\n"))
    assert output.endswith(b"\n::1\ta.test\n127.0.0.1\tb.test\n")
    assert (state / "root/etc/hosts").read_text() == "127.0.0.1 image-own\n"
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


def test_reset_apply_and_snapshot_in_one_session(state: Path) -> None:
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as archive:
        archive.addfile(tarfile.TarInfo("f"), io.BytesIO())
    replies = _session(state, buildwire.request("reset"), _apply(layer.getvalue()),
                       buildwire.request("snapshot"), _step("/bin/sh", "-c", "true"),
                       _apply(b"not a tar" * 100), buildwire.request("snapshot"),
                       buildwire.request("nonsense"))
    assert [status for status, _, _ in replies] == [0, 0, 0, 127, 1, 0, 1]
    assert _names(replies[2][1]) == []
    assert b"not a tar archive" in replies[4][2] and _names(replies[5][1]) == []
    assert replies[6][2] == b"nonsense: unknown operation 'nonsense'"
    assert os.listdir(state / "root") == ["f"]
