"""`kubedock archive stat|get|put`, run as the pod runs it: a process with pipes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from kubedock import podside


def archive(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "kubedock", "archive", *args], input=stdin,
                          capture_output=True, timeout=60, check=False)


def test_stat_reads_the_link_itself(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("abc")
    (tmp_path / "link").symlink_to("file")
    done = archive("stat", str(tmp_path / "link"))
    assert done.returncode == 0, done.stderr
    fields = json.loads(done.stdout)
    assert fields["linkTarget"] == "file"
    assert fields["mode"] & 0o170000 == 0o120000


def test_stat_of_a_missing_path() -> None:
    done = archive("stat", "/no/such/path")
    assert done.returncode == podside.NOT_FOUND
    assert b"no such file" in done.stderr


def test_get_names_the_basename_and_keeps_links(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub/deep.txt").write_text("deep\n")
    (tree / "link").symlink_to("sub/deep.txt")
    done = archive("get", str(tree) + "/")
    assert done.returncode == 0, done.stderr
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        members = {member.name: member for member in tar}
    assert set(members) == {"tree", "tree/sub", "tree/sub/deep.txt", "tree/link"}
    assert members["tree/link"].issym() and members["tree/link"].linkname == "sub/deep.txt"


def test_put_extracts_and_refuses_what_it_cannot(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("a/b.txt")
        info.size, info.mode = 2, 0o640
        tar.addfile(info, io.BytesIO(b"hi"))
    done = archive("put", str(tmp_path), stdin=buffer.getvalue())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a/b.txt").read_bytes() == b"hi"
    assert (tmp_path / "a/b.txt").stat().st_mode & 0o777 == 0o640
    assert archive("put", str(tmp_path / "missing")).returncode == podside.NOT_FOUND
    not_a_dir = archive("put", str(tmp_path / "a/b.txt"))
    assert not_a_dir.returncode == podside.NOT_A_DIRECTORY


def test_tool_argv_runs_the_program_through_its_own_loader() -> None:
    assert podside.tool_argv("/.kubedock/bin", "stat", "/x") == [
        "/.kubedock/bin/ld.so", "--library-path", "/.kubedock/bin/kubedock/_internal",
        "/.kubedock/bin/kubedock/kubedock", "archive", "stat", "/x",
    ]


def test_a_refused_put_still_reads_its_whole_archive(tmp_path: Path) -> None:
    """The kubelet stops reading an exec's stdin once its process is gone, and stdin is not
    closed at the end of the archive: a refusal must not leave the sender with data."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("big")
        info.size = 4 * 1024 * 1024
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    (tmp_path / "file").write_bytes(b"")
    for target, refused in ((tmp_path / "missing", podside.NOT_FOUND),
                            (tmp_path / "file", podside.NOT_A_DIRECTORY)):
        with subprocess.Popen([sys.executable, "-m", "kubedock", "archive", "put", str(target)],
                              stdin=subprocess.PIPE, stderr=subprocess.PIPE) as process:
            assert process.stdin is not None
            process.stdin.write(buffer.getvalue())  # BrokenPipeError if it stopped reading
            process.stdin.flush()
            assert process.wait(timeout=60) == refused
            process.stdin.close()
