"""Inside a running container with no tool of the image (issues 10 and 11): copying in and out of
an image without shell, tar or stat, exec as other users, any signal and `docker top`, against
kubedock (its toolbox, added to the pod on first need) and the Docker engine."""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container
from kubedock_server import Kubedock, docker_cli

pytestmark = [pytest.mark.cluster]


def _cli(target: Kubedock, *args: str) -> subprocess.CompletedProcess[bytes]:
    return docker_cli(target, *args, timeout=300)


def _ok(target: Kubedock, *args: str) -> str:
    result = _cli(target, *args)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout.decode()


@pytest.fixture
def client(target: Kubedock) -> Iterator[docker.DockerClient]:
    result = docker.DockerClient(base_url=target.host, timeout=300)
    yield result
    result.close()


def _started(client: docker.DockerClient, image: str, *command: str, user: str = ""
             ) -> Iterator[Container]:
    container = client.containers.run(image, list(command) or None, detach=True, user=user)
    try:
        yield container
    finally:
        container.remove(force=True)


@pytest.fixture
def noshell(client: docker.DockerClient) -> Iterator[Container]:
    yield from _started(client, "kubedock/noshell:1")


@pytest.fixture
def sleeper(client: docker.DockerClient) -> Iterator[Container]:
    yield from _started(client, "busybox:1.36", "sleep", "600")


def _tar(*entries: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for entry in entries:
            archive.addfile(entry, io.BytesIO(data) if entry.isfile() else None)
    return buffer.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, uid: int = 0,
           size: int = 0, link: str = "") -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type, entry.mode, entry.uid, entry.gid, entry.size = kind, mode, uid, uid, size
    entry.linkname, entry.mtime = link, 1_700_000_000
    return entry


def _members(chunks: Iterator[bytes]) -> list[tuple[str, int, int, int, str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        listing = []
        for member in archive:
            file = archive.extractfile(member) if member.isfile() else None
            # Docker's (Go's) headers carry the file type bits in the mode too.
            listing.append((member.name, member.mode & 0o7777, member.uid, int(member.mtime),
                            member.linkname, file.read() if file else b""))
        return listing


def test_docker_py_copies_into_and_out_of_an_image_without_tar(target: Kubedock,
                                                               noshell: Container) -> None:
    """Ownership, modes, time stamps and links survive both ways, as with Docker."""
    body = b"owned by 1000\n"
    archive = _tar(_entry("tree", tarfile.DIRTYPE, 0o750, 1000),
                   _entry("tree/file.txt", mode=0o640, uid=1000, size=len(body)),
                   _entry("tree/link", tarfile.SYMTYPE, 0o777, link="file.txt"), data=body)
    assert noshell.put_archive("/tmp", archive)
    chunks, stat = noshell.get_archive("/tmp/tree")
    assert (stat["name"], stat["mode"] & 0o777) == ("tree", 0o750)
    assert sorted(_members(chunks)) == [
        ("tree", 0o750, 1000, 1_700_000_000, "", b""),
        ("tree/file.txt", 0o640, 1000, 1_700_000_000, "", body),
        ("tree/link", 0o777, 0, 1_700_000_000, "file.txt", b""),
    ]
    _, stat = noshell.get_archive("/data/link-to-hello")
    # Docker resolves the link in the container; kubedock's program says what the link holds.
    assert stat["linkTarget"] == ("/data/hello.txt" if target.reference else "hello.txt")
    with pytest.raises(docker.errors.NotFound):
        noshell.get_archive("/data/missing")
    with pytest.raises(docker.errors.NotFound):
        noshell.put_archive("/no/such/dir", archive)


def test_docker_cp_both_ways_without_tar(target: Kubedock, noshell: Container,
                                         tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("copied in\n")
    _ok(target, "cp", str(tmp_path / "in.txt"), f"{noshell.id}:/tmp/in.txt")
    _ok(target, "cp", f"{noshell.id}:/tmp/in.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "copied in\n"
    _ok(target, "cp", f"{noshell.id}:/data", str(tmp_path / "data"))
    assert (tmp_path / "data/nested/deeper.txt").read_text() == "a file two levels down\n"
    assert (tmp_path / "data/link-to-hello").readlink() == Path("hello.txt")


def test_copy_into_a_container_of_another_user(client: docker.DockerClient) -> None:
    for container in _started(client, "kubedock/noshell:1", user="1000:1000"):
        assert container.put_archive("/tmp", _tar(_entry("mine.txt", size=3), data=b"hi\n"))
        chunks, _ = container.get_archive("/tmp/mine.txt")
        assert _members(chunks)[0][5] == b"hi\n"


def test_exec_as_other_users(target: Kubedock, sleeper: Container) -> None:
    name = sleeper.id
    assert _ok(target, "exec", "-u", "1000:1000", name, "id") == \
        "uid=1000(user) gid=1000(user) groups=1000(user)\n"
    assert _ok(target, "exec", "-u", "nobody", name, "id") == \
        "uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)\n"
    assert _ok(target, "exec", "-u", "user", "-w", "/tmp", "-e", "A=b", name, "sh", "-c",
               'echo "$(pwd) $HOME $A $PATH"') == \
        "/tmp /home/user b /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    assert _ok(target, "exec", "-u", "0", name, "id", "-u") == "0\n"


def test_exec_as_another_user_with_a_terminal_and_input(target: Kubedock,
                                                       sleeper: Container) -> None:
    assert sleeper.exec_run(["id", "-u"], user="nobody", tty=True).output == b"65534\r\n"
    echoed = docker_cli(target, "exec", "-i", "-u", "1000", sleeper.id, "cat", input=b"piped\n")
    assert (echoed.returncode, echoed.stdout) == (0, b"piped\n"), echoed.stderr


@pytest.mark.parametrize(("user", "message"), [
    ("nosuch", "unable to find user nosuch: no matching entries in passwd file"),
    ("0:nosuch", "unable to find group nosuch: no matching entries in group file"),
])
def test_exec_as_an_unknown_user_fails_as_with_docker(
        target: Kubedock, client: docker.DockerClient, sleeper: Container, user: str,
        message: str) -> None:
    exec_id = client.api.exec_create(sleeper.id, ["id"], user=user)["Id"]
    output = client.api.exec_start(exec_id)
    # Docker 20.10 now and then ends the stream before the runtime's message.
    assert output in ((f"{message}\r\n".encode(), b"") if target.reference
                      else (f"{message}\r\n".encode(),))
    inspected = client.api.exec_inspect(exec_id)
    assert (inspected["Running"], inspected["ExitCode"]) == (False, 126)
    assert [line.split()[-1] for line in _ok_top(client, sleeper)] == ["600"]


def _ok_top(client: docker.DockerClient, container: Container) -> list[str]:
    return [" ".join(row) for row in client.api.top(container.id)["Processes"]]


def test_exec_as_a_user_in_an_image_without_shell(target: Kubedock, noshell: Container) -> None:
    _ok(target, "exec", "-d", "-u", "1000:1000", noshell.id, "/usr/bin/sleep-forever")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = _ok(target, "top", noshell.id, "-o", "pid,uid,gid,args").splitlines()[1:]
        if len(rows) == 2:
            break
        time.sleep(0.2)
    assert sorted(row.split()[1:] for row in rows) == [
        ["0", "0", "/usr/bin/sleep-forever"], ["1000", "1000", "/usr/bin/sleep-forever"]]
    refused = _cli(target, "exec", "-u", "nosuch", noshell.id, "/usr/bin/sleep-forever")
    assert refused.returncode == 126
    assert b"unable to find user nosuch: no matching entries in passwd file" in refused.stdout


def test_signals_without_kill_in_the_image(target: Kubedock, client: docker.DockerClient,
                                           noshell: Container) -> None:
    """The no-shell image's program ignores SIGUSR1 (PID 1 without a handler) and exits 0 on
    SIGINT; an unknown signal is refused and changes nothing."""
    _ok(target, "kill", "-s", "USR1", noshell.id)
    _ok(target, "kill", "-s", "SIGUSR2", noshell.id)
    refused = _cli(target, "kill", "-s", "NOSUCH", noshell.id)
    assert refused.returncode != 0 and b"Invalid signal: NOSUCH" in refused.stderr
    noshell.reload()
    assert noshell.status == "running"
    _ok(target, "kill", "-s", "2", noshell.id)
    assert noshell.wait(timeout=60)["StatusCode"] == 0


def test_signal_reaches_a_trap(client: docker.DockerClient) -> None:
    for container in _started(client, "busybox:1.36", "sh", "-c",
                              "trap 'echo got USR1' USR1; echo ready; "
                              "while true; do sleep 0.1; done"):
        _wait_for_log(container, b"ready")
        container.kill("SIGUSR1")
        _wait_for_log(container, b"got USR1")


def _wait_for_log(container: Container, text: bytes) -> None:
    deadline = time.monotonic() + 60
    while text not in container.logs():
        assert time.monotonic() < deadline, container.logs()
        time.sleep(0.2)


def test_top_formats(client: docker.DockerClient, sleeper: Container) -> None:
    listing = client.api.top(sleeper.id)
    assert listing["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert [(row[0], row[5], row[7]) for row in listing["Processes"]] == \
        [("root", "?", "sleep 600")]
    listing = client.api.top(sleeper.id, ps_args="aux")
    assert listing["Titles"] == ["USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT",
                                 "START", "TIME", "COMMAND"]
    assert [(row[0], row[7], row[10]) for row in listing["Processes"]] == \
        [("root", "Ss", "sleep 600")]
    listing = client.api.top(sleeper.id, ps_args="-o pid,user,comm")
    assert (listing["Titles"], [row[1:] for row in listing["Processes"]]) == \
        (["PID", "USER", "COMMAND"], [["root", "sleep"]])
    assert sleeper.top()["Processes"][0][-1] == "sleep 600"


@pytest.mark.parametrize(("ps_args", "message"), [
    ("bogus", "ps: error: unsupported option (BSD syntax)"),
    ("-o user=PID", 'specifying "user=PID" is not allowed'),
    ("-o user", "Couldn't find PID field in ps output"),
])
def test_top_refuses_what_ps_refuses(client: docker.DockerClient, sleeper: Container,
                                     ps_args: str, message: str) -> None:
    with pytest.raises(docker.errors.APIError) as refused:
        client.api.top(sleeper.id, ps_args=ps_args)
    assert message in str(refused.value.explanation)


def test_top_of_a_stopped_container(client: docker.DockerClient) -> None:
    container = client.containers.create("busybox:1.36", ["true"])
    try:
        with pytest.raises(docker.errors.APIError) as refused:
            container.top()
        assert refused.value.status_code == 409
        assert "is not running" in str(refused.value.explanation)
    finally:
        container.remove(force=True)
