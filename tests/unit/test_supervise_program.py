"""build/images/recipes/supervise.c on this machine: the end of the program is recorded only
once what it left in the pipe of its output has been read, or after a bound when nobody reads."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "build" / "images" / "recipes" / "supervise.c"
# The supervisor's bound on waiting for a pipe nobody reads.
DRAIN_SECONDS = 2


@pytest.fixture(scope="module")
def supervise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("gcc")
    if compiler is None:
        pytest.skip("no gcc to build the supervisor with")
    program = tmp_path_factory.mktemp("supervise") / "supervise"
    subprocess.run([compiler, "-Os", "-Wall", "-Wextra", "-Werror", "-o", str(program),
                    str(SOURCE)], check=True)
    return program


@pytest.fixture
def output() -> Iterator[tuple[int, int]]:
    """A pipe for the program's output: (read end, write end)."""
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):  # the write end goes to the supervisor
            os.close(fd)


def _supervised(supervise: Path, state: Path, script: str,
                write_end: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([str(supervise), "run", str(state), "sh", "-c", script],
                               stdin=subprocess.DEVNULL, stdout=write_end, stderr=write_end)
    os.close(write_end)
    return process


def _until_ended(marker: Path) -> None:
    """Until the program is about to end: its last command makes `marker`."""
    deadline = time.monotonic() + 10
    while not marker.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _record_after(state: Path, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while not (state / "exit").exists():
        assert time.monotonic() < deadline, "no exit record"
        time.sleep(0.01)
    return (state / "exit").read_text()


def _end(process: subprocess.Popen[bytes]) -> int:
    """The supervisor's exit code once SIGTERM ends it: the program's."""
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=10)


def test_the_end_is_recorded_once_the_output_is_read(
    supervise: Path, tmp_path: Path, output: tuple[int, int]
) -> None:
    read_end, write_end = output
    state, marker = tmp_path / "state", tmp_path / "ended"
    state.mkdir()
    process = _supervised(supervise, state, f"echo out; echo err >&2; : > {marker}", write_end)
    try:
        _until_ended(marker)
        time.sleep(0.3)
        assert not (state / "exit").exists(), "recorded before the output was read"
        assert os.read(read_end, 100) == b"out\nerr\n"
        assert '"exitCode": 0' in _record_after(state, 1)
    finally:
        assert _end(process) == 0


def test_a_pipe_nobody_reads_holds_the_end_back_only_for_a_while(
    supervise: Path, tmp_path: Path, output: tuple[int, int]
) -> None:
    _, write_end = output
    began = time.monotonic()
    process = _supervised(supervise, tmp_path, "echo unread; exit 3", write_end)
    try:
        assert '"exitCode": 3' in _record_after(tmp_path, DRAIN_SECONDS + 5)
        assert time.monotonic() - began >= DRAIN_SECONDS
    finally:
        assert _end(process) == 3
