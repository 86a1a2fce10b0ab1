"""The docker CLI with a terminal: ``docker run -it`` and ``docker exec -it`` driven through a
pseudo-terminal, against kubedock and against the Docker engine."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kubedock_server import Kubedock, docker_cli

pytestmark = pytest.mark.cluster

# Long enough for a pod to be scheduled and its image pulled on a busy two-core machine.
STARTUP_SECONDS = 120
ANSWER_SECONDS = 30
# busybox sh's prompt; line editing follows it with escape sequences (a cursor position query).
PROMPT = rb"/ # "


class Terminal:
    """The master side of a pseudo-terminal whose slave side is a docker CLI's stdin, stdout and
    stderr: what the CLI prints is read here, and keystrokes written here are typed into it."""

    def __init__(self, master: int, process: subprocess.Popen[bytes]) -> None:
        self.master = master
        self.process = process
        self.transcript = b""
        self._unread = 0  # where in the transcript the next `expect` starts looking

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def expect(self, pattern: bytes, timeout: float = ANSWER_SECONDS) -> re.Match[bytes]:
        """Read until the output not yet matched has ``pattern``, and consume it up to there.

        The output arrives in pieces of any size, so the match is on what accumulated."""
        deadline = time.monotonic() + timeout
        while not (found := re.compile(pattern, re.MULTILINE).search(self.transcript,
                                                                      self._unread)):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise AssertionError(f"{pattern!r} did not appear; the terminal showed "
                                     f"{self.transcript!r}")
        self._unread = found.end()
        return found

    def _read(self, timeout: float) -> bool:
        """Add what the CLI prints within ``timeout`` to the transcript; False at its end."""
        readable, _, _ = select.select([self.master], [], [], timeout)
        if not readable:
            return True
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: every process holding the slave side has closed it
            return False
        self.transcript += data
        return bool(data)

    def resize(self, rows: int, columns: int) -> None:
        """Change the window size and tell the CLI, as a terminal emulator does.

        The CLI runs in a session of its own without a controlling terminal, so the kernel does
        not send it SIGWINCH itself."""
        set_window_size(self.master, rows, columns)
        self.process.send_signal(signal.SIGWINCH)

    def exit_code(self, timeout: float = ANSWER_SECONDS) -> int:
        """Wait for the CLI to end, reading what it still prints so it never blocks on a full
        terminal."""
        deadline = time.monotonic() + timeout
        while (code := self.process.poll()) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the docker CLI did not exit; the terminal showed "
                                     f"{self.transcript!r}")
            if not self._read(min(remaining, 0.1)):
                time.sleep(0.05)
        return code


def set_window_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


@contextmanager
def docker_in_terminal(target: Kubedock, *args: str, rows: int = 31,
                       columns: int = 97) -> Iterator[Terminal]:
    master, slave = os.openpty()
    try:
        set_window_size(master, rows, columns)
        try:
            process = subprocess.Popen(["docker", *args], stdin=slave, stdout=slave,
                                       stderr=slave, env=target.env(), start_new_session=True)
        finally:
            os.close(slave)  # left to the CLI alone, so reading the master fails once it ends
        try:
            yield Terminal(master, process)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    finally:
        os.close(master)


def check_shell(terminal: Terminal) -> None:
    """A shell with a terminal of the window's size from its start, then of the size the window
    is changed to."""
    terminal.expect(PROMPT, timeout=STARTUP_SECONDS)
    terminal.type(b"tty; stty size; echo $((6*7))\r")
    terminal.expect(rb"^/dev/pts/\d+\r\n31 97\r\n42\r\n")
    terminal.expect(PROMPT)
    resize_shell(terminal, 40, 120)
    terminal.expect(PROMPT)


def resize_shell(terminal: Terminal, rows: int, columns: int) -> None:
    """Resize the window until the shell sees the new size: the CLI forwards it on its own
    time, and may not listen for SIGWINCH yet when the shell is already up."""
    wanted = f"{rows} {columns}".encode()
    deadline = time.monotonic() + ANSWER_SECONDS
    while True:
        terminal.resize(rows, columns)
        terminal.type(b"stty size\r")
        if terminal.expect(rb"^(\d+ \d+)\r\n")[1] == wanted:
            return
        assert time.monotonic() < deadline, terminal.transcript
        time.sleep(0.2)


def unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


def test_run_interactive_shell(target: Kubedock) -> None:
    name = unique("run-it")
    try:
        with docker_in_terminal(target, "run", "-it", "--rm", "--name", name,
                                "busybox:1.36", "sh") as terminal:
            check_shell(terminal)
            terminal.type(b"exit 3\r")
            assert terminal.exit_code() == 3, terminal.transcript
    finally:
        docker_cli(target, "rm", "-f", name)


def test_exec_interactive_shell(target: Kubedock) -> None:
    name = unique("exec-it")
    started = docker_cli(target, "run", "-d", "--name", name, "busybox:1.36", "sleep", "300")
    assert started.returncode == 0, started.stderr
    try:
        with docker_in_terminal(target, "exec", "-it", name, "sh") as terminal:
            check_shell(terminal)
            terminal.type(b"\x04")  # Ctrl-D: end of input, the shell exits
            assert terminal.exit_code() == 0, terminal.transcript
    finally:
        docker_cli(target, "rm", "-f", name)


def test_run_interactive_input_is_raw(target: Kubedock) -> None:
    """Keys go to the container's terminal as typed: it echoes them, hands lines to the
    process, and turns Ctrl-C into SIGINT for it."""
    name = unique("run-cat")
    # cat runs under sh: as the container's first process it would be immune to SIGINT. A
    # Ctrl-C typed before the container has started stops it first, and Docker fails the run.
    try:
        with docker_in_terminal(target, "run", "-it", "--rm", "--name", name, "busybox:1.36",
                                "sh", "-c", "echo started; cat; exit $?") as terminal:
            terminal.expect(rb"started", timeout=STARTUP_SECONDS)
            terminal.type(b"half")
            terminal.expect(rb"half")
            terminal.type(b" a line\r")
            terminal.expect(rb"^half a line\r\n")  # cat's copy, after the terminal's echo
            terminal.type(b"\x03")
            assert terminal.exit_code() == 130, terminal.transcript
    finally:
        docker_cli(target, "rm", "-f", name)
