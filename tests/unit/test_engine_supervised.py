"""Supervised containers against a scripted cluster: the end of the program comes from the
supervisor's record (not the pod watch), read-write binds are written back before a wait
returns, a broken wait is issued again, signals reach the program through the supervisor,
and so does a SIGKILL (kill, a stop past its timeout), which leaves the pod and its files."""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from engine_fake import SLEEP_PROCESSES, FakeCluster

from kubedock import engine as engines
from kubedock import kube
from kubedock.engine import Container, ContainerConfig, Engine, Mount
from kubedock.engine._supervision import parse_exit_record, supervised_argv
from kubedock.registry import ImageConfig

# An end an hour from now, to the nanosecond: kubedock's clock saw the start before it.
FINISHED = int(datetime.now(UTC).timestamp() + 3600) * 1_000_000_000 + 207950152
RECORD = b'{"exitCode": 3, "finishedAt": %d, "oomKilled": true}\n' % FINISHED
KILLED = b'{"exitCode": 137, "finishedAt": %d, "oomKilled": false}\n' % FINISHED


class _Waiting(kube.ExecChannel):
    """The supervisor's `wait`: its record once the program has ended, or cut short."""

    can_close_stdin = False

    def __init__(self, cluster: SupervisedCluster) -> None:
        self._cluster = cluster
        self.exit_code: int | None = None
        self.status_message = None
        self.start_failure = None

    async def receive(self) -> tuple[int, bytes] | None:
        if self.exit_code is not None:
            return None
        while self._cluster.record is None and not self._cluster.cut_waits:
            await self._cluster.changed.wait()
        if self._cluster.cut_waits:
            self._cluster.cut_waits -= 1
            return None  # the session ended without the process's status
        self.exit_code = 0
        return 1, self._cluster.record or b""

    async def send_stdin(self, data: bytes) -> None:
        raise trio.BrokenResourceError

    async def close_stdin(self) -> None:
        pass

    async def resize(self, width: int, height: int) -> None:
        pass


class SupervisedCluster(FakeCluster):
    def __init__(self) -> None:
        super().__init__()
        self.record: bytes | None = None
        self.cut_waits = 0
        self.changed = trio.Event()
        self.waits = 0
        # What the supervisor's `end` does: kills the program ("kills"), answers as one that
        # has no `end` ("usage", exit code 64), never answers ("stalls"), or is not let run
        # ("refused").
        self.end = "kills"
        # The tar that a copy out of the pod gives, by path.
        self.archives: dict[str, bytes] = {}

    def end_program(self, record: bytes = RECORD) -> None:
        self.record = record
        self.changed.set()

    def run_again(self) -> None:
        """The next pod's program runs on."""
        self.record = None
        self.changed = trio.Event()

    def cut_wait(self) -> None:
        self.cut_waits += 1
        self.changed.set()
        self.changed = trio.Event()

    @contextlib.asynccontextmanager
    async def exec(
        self, pod: str, argv: Sequence[str], *, stdin: bool = False, stdout: bool = True,
        stderr: bool = True, tty: bool = False, container: str = kube.MAIN,
    ) -> AsyncIterator[Any]:
        if argv[1:2] == ["wait"]:
            self.calls.append(("exec", " ".join(argv)))
            self.waits += 1
            yield _Waiting(self)
            return
        if argv[1:2] == ["end"] and self.end != "usage":
            async with self._call("exec", " ".join(argv)):
                self._pod(pod)
                if self.end == "refused":
                    raise kube.KubeError("pods/exec is forbidden", status=403)
            if self.end == "stalls":
                await trio.sleep_forever()
            if self.record is None:
                self.end_program(KILLED)
            yield _Waiting(self)
            return
        async with super().exec(pod, argv, stdin=stdin, stdout=stdout, stderr=stderr, tty=tty,
                                container=container) as channel:
            yield channel


def _tar(entries: dict[str, bytes | None]) -> bytes:
    """A tar of directories (None) and files, as the pod's `archive get` writes it."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.mtime = 1796000000
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                archive.addfile(info, io.BytesIO(content))
    return out.getvalue()


@pytest.fixture
def cluster() -> SupervisedCluster:
    cluster = SupervisedCluster()

    def output(argv: Sequence[str]) -> bytes:
        if "archive" in argv and "get" in argv:
            return cluster.archives.get(argv[-1], b"")
        if argv[0] == "stat":  # the image's: mode (hex), size, mtime
            return b"81a4 2 1796000000\n"
        return b""

    cluster.exec_output = output
    cluster.exec_exit_code = lambda argv: 64 if argv[1:2] == ["end"] else 0
    return cluster


async def new_engine(nursery: trio.Nursery, cluster: FakeCluster, policy: str) -> Engine:
    settings = kube.PodSettings(namespace="tests", instance_id="a1b2c3d4e5f6",
                                init_image="kubedock/kubedock:0.1.0")
    engine = Engine(cluster, settings, nursery=nursery, start_timeout=30, expose="pod-ip",
                    expose_host="127.0.0.1", fail_fast_after=0,
                    keep_exited_files=policy)  # type: ignore[arg-type]
    await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
    return engine


def image(**defaults: Any) -> ImageConfig:
    return ImageConfig(id="sha256:" + "0" * 64, os="linux", architecture="amd64", variant="",
                       created="", author="", diff_ids=(), defaults=defaults)


async def started(engine: Engine, **config: Any) -> Container:
    container = engine.create("app", ContainerConfig(
        image="busybox:1.36", image_config=image(Cmd=["sh"]), **config))
    await engine.start(container)
    return container


def main_of(cluster: FakeCluster, container: Container) -> dict[str, Any]:
    pod = cluster.pods[container.pod_name or ""]
    return next(c for c in pod["spec"]["containers"] if c["name"] == kube.MAIN)


async def test_the_exit_comes_from_the_supervisors_record(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: SupervisedCluster,
) -> None:
    engine = await new_engine(nursery, cluster, "always")
    container = await started(engine, cmd=("sh", "-c", "exit 3"))
    supervisor = f"{kube.TOOLS_DIR}/supervise"
    assert main_of(cluster, container)["command"] == [
        supervisor, "run", kube.STATE_DIR, "sh", "-c", "exit 3"]
    assert "args" not in main_of(cluster, container)
    pod_spec = cluster.pods[container.pod_name or ""]["spec"]
    # No init container: a first container copies the supervisor in before `main` starts.
    installer, _ = pod_spec["containers"]
    assert installer == {
        "name": kube.INSTALLER, "image": "kubedock/kubedock:0.1.0",
        "command": ["/opt/kubedock/supervise", "idle"],
        "lifecycle": {"postStart": {"exec": {"command": [
            "/opt/kubedock/supervise", "install", supervisor]}}},
        "volumeMounts": [{"name": "kubedock-tools", "mountPath": kube.TOOLS_DIR}]}
    assert {"name": "kubedock-state", "mountPath": kube.STATE_DIR} in main_of(
        cluster, container)["volumeMounts"]
    assert "initContainers" not in pod_spec
    before = len(engine.events.history())
    await trio.sleep(5)
    assert container.status == "running"  # the pod's main runs on: only the record tells
    cluster.end_program()
    await engine.wait(container, "not-running")
    assert (container.status, container.exit_code, container.oom_killed) == ("exited", 3, True)
    # The record's time, being later than when kubedock learnt of the end.
    assert container.finished_at == datetime.fromtimestamp(FINISHED // 1_000_000_000, UTC
                                                           ).replace(microsecond=207950)
    assert [event.action for event in engine.events.history()[before:]] == ["die"]
    # The pod stays with the container's files: they can be copied out until the removal.
    assert cluster.called("delete_pod") == []
    assert (await engines.stat_path(engine, container, "/etc/motd")).size == 2
    pod = container.pod_name
    await engine.remove(container, force=False)
    assert cluster.called("delete_pod") == [pod]


async def test_read_write_binds_are_written_back_before_the_wait_returns(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: SupervisedCluster,
    tmp_path: Path,
) -> None:
    source = tmp_path / "shared"
    source.mkdir()
    (source / "removed.txt").write_text("gone in the container")
    (source / "kept.txt").write_text("same")
    read_only = tmp_path / "config"
    read_only.mkdir()
    engine = await new_engine(nursery, cluster, "auto")
    container = await started(engine, cmd=("touch", "/mnt/new.txt"), mounts=(
        Mount("bind", "/mnt", str(source)), Mount("bind", "/etc/app", str(read_only),
                                                  read_only=True)))
    assert main_of(cluster, container)["command"][:2] == [
        f"{kube.TOOLS_DIR}/kubedock/supervise", "run"]
    cluster.archives["/mnt"] = _tar({"mnt": None, "mnt/kept.txt": b"same",
                                     "mnt/new.txt": b"", "mnt/sub": None,
                                     "mnt/sub/deep.txt": b"deeper"})
    cluster.archives["/etc/app"] = _tar({"app": None, "app/written.txt": b"no"})
    cluster.end_program()
    await engine.wait(container, "not-running")
    assert sorted(str(path.relative_to(source)) for path in source.rglob("*")) == [
        "kept.txt", "new.txt", "sub", "sub/deep.txt"]
    assert (source / "sub" / "deep.txt").read_text() == "deeper"
    assert os.listdir(read_only) == []
    assert [path for path in os.listdir(tmp_path) if path.startswith(".kubedock-")] == []


async def test_a_broken_wait_is_issued_again(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: SupervisedCluster,
) -> None:
    engine = await new_engine(nursery, cluster, "always")
    container = await started(engine)
    await trio.sleep(1)
    cluster.cut_wait()
    await trio.sleep(1)
    assert container.status == "running"
    cluster.end_program()
    await engine.wait(container, "not-running")
    assert (cluster.waits, container.exit_code) == (2, 3)


async def test_a_program_that_really_ends_is_still_seen_by_the_watch(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: SupervisedCluster,
) -> None:
    engine = await new_engine(nursery, cluster, "always")
    container = await started(engine)
    cluster.set_main(container.pod_name or "", {"terminated": {
        "exitCode": 137, "reason": "Error", "finishedAt": "2026-11-30T01:00:01+00:00"}})
    await engine.wait(container, "not-running")
    assert (container.exit_code, container.files_kept) == (137, False)
    with pytest.raises(engines.Conflict):
        await engines.stat_path(engine, container, "/etc/motd")


async def test_signals_reach_the_program_through_the_supervisor(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: SupervisedCluster,
) -> None:
    engine = await new_engine(nursery, cluster, "always")
    container = await started(engine)
    await engine.kill(container, "SIGUSR1")
    assert f"{kube.TOOLS_DIR}/supervise kill 10" in cluster.called("exec")


def actions(engine: Engine, since: int) -> list[str]:
    return [f"{event.action} {event.attributes.get('signal') or event.attributes.get('exitCode')}"
            .rstrip(" None") for event in engine.events.history()[since:]]


async def test_a_kill_ends_the_program_and_keeps_the_files(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: SupervisedCluster,
) -> None:
    engine = await new_engine(nursery, cluster, "always")
    container = await started(engine, cmd=("sleep", "300"))
    before = len(engine.events.history())
    await engine.kill(container, "9")
    # Dead when the kill returns, as with Docker; learnt from the supervisor's record.
    assert (container.status, container.exit_code, container.files_kept) == ("exited", 137, True)
    assert container.finished_at == datetime.fromtimestamp(FINISHED // 1_000_000_000, UTC
                                                           ).replace(microsecond=207950)
    assert f"{kube.TOOLS_DIR}/supervise end {kube.STATE_DIR}" in cluster.called("exec")
    assert actions(engine, before) == ["kill 9", "die 137"]
    assert cluster.called("delete_pod") == []
    assert (await engines.stat_path(engine, container, "/etc/motd")).size == 2
    pod = container.pod_name
    cluster.run_again()
    await engine.start(container)
    assert (container.status, cluster.called("delete_pod")) == ("running", [pod])
    await engine.remove(container, force=True)
    assert cluster.called("delete_pod") == [pod, pod]  # a pod of the same name each run


async def test_a_stop_past_its_timeout_ends_the_program_through_the_supervisor(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: SupervisedCluster,
) -> None:
    engine = await new_engine(nursery, cluster, "always")
    container = await started(engine, cmd=("sleep", "300"))
    before = len(engine.events.history())
    began = trio.current_time()
    await engine.stop(container, 1)  # `sleep` takes no SIGTERM: the supervisor passes none on
    assert 1 <= trio.current_time() - began < 5
    assert (container.status, container.exit_code, container.files_kept) == ("exited", 137, True)
    assert cluster.called("exec")[-2:] == [f"{kube.TOOLS_DIR}/supervise kill 15",
                                           f"{kube.TOOLS_DIR}/supervise end {kube.STATE_DIR}"]
    assert actions(engine, before) == ["kill 15", "kill 9", "die 137", "stop"]
    assert cluster.called("delete_pod") == []


async def test_a_restart_past_its_timeout_runs_the_program_in_a_new_pod(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: SupervisedCluster,
) -> None:
    engine = await new_engine(nursery, cluster, "always")
    container = await started(engine, cmd=("sleep", "300"))
    pod = container.pod_name

    async def next_run() -> None:
        await engine.wait(container, "next-exit")
        cluster.run_again()

    nursery.start_soon(next_run)
    await engine.restart(container, 1)
    assert (container.status, container.exits, cluster.called("delete_pod")) == (
        "running", 1, [pod])
    assert f"{kube.TOOLS_DIR}/supervise end {kube.STATE_DIR}" in cluster.called("exec")


async def test_a_stop_signal_sigkill_ends_the_program_at_once(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: SupervisedCluster,
) -> None:
    engine = await new_engine(nursery, cluster, "always")
    container = await started(engine, cmd=("sleep", "300"), stop_signal="SIGKILL")
    before = len(engine.events.history())
    began = trio.current_time()
    await engine.stop(container, 30)
    assert trio.current_time() - began < 5
    assert (container.exit_code, container.files_kept) == (137, True)
    assert actions(engine, before) == ["kill 9", "die 137", "stop"]


@pytest.mark.parametrize("end", ["usage", "stalls", "refused"])
async def test_a_supervisor_that_cannot_kill_leaves_it_to_the_pods_deletion(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: SupervisedCluster,
    end: str,
) -> None:
    engine = await new_engine(nursery, cluster, "always")
    killed = await started(engine, cmd=("sleep", "300"))
    stopped = engine.create("other", ContainerConfig(
        image="busybox:1.36", image_config=image(Cmd=["sleep", "300"])))
    await engine.start(stopped)
    cluster.end = end
    began = trio.current_time()
    await engine.kill(killed, "KILL")
    assert trio.current_time() - began < 15
    assert (killed.status, killed.exit_code, killed.files_kept) == ("exited", 137, False)
    began = trio.current_time()
    await engine.stop(stopped, 1)
    assert trio.current_time() - began < 15
    assert (stopped.status, stopped.exit_code, stopped.files_kept) == ("exited", 137, False)
    assert len(cluster.called("delete_pod")) == 2


async def test_unsupervised_containers_stay_as_they_were(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: SupervisedCluster,
) -> None:
    engine = await new_engine(nursery, cluster, "auto")
    container = await started(engine, cmd=("true",))
    assert main_of(cluster, container).get("args") == ["true"]
    assert [c["name"] for c in cluster.pods[container.pod_name or ""]["spec"]["containers"]
            ] == [kube.MAIN]
    assert container.supervisor is None


# -- which containers, and the record ---------------------------------------------------------

def config(**fields: Any) -> ContainerConfig:
    fields.setdefault("image_config", image(Entrypoint=["/entry"], Cmd=["serve"],
                                            Volumes={"/data": {}}))
    return ContainerConfig(image="app", **fields)


@pytest.mark.parametrize(("fields", "policy", "has_setup", "argv"), [
    ({}, "auto", False, ()),
    ({}, "auto", True, ("/entry", "serve")),
    ({}, "always", False, ("/entry", "serve")),
    ({}, "never", True, ()),
    # The image's own VOLUME does not count; one the request asks for does.
    ({"mounts": (Mount("volume", "/data/", "v1", anonymous=True),)}, "auto", False, ()),
    ({"mounts": (Mount("volume", "/vol1", "v2", anonymous=True),)}, "auto", False,
     ("/entry", "serve")),
    ({"mounts": (Mount("tmpfs", "/scratch"),)}, "auto", False, ("/entry", "serve")),
    # Docker's resolution: a request's entrypoint drops the image's cmd.
    ({"entrypoint": ("sh", "-c")}, "always", False, ("sh", "-c")),
    ({"entrypoint": ("sh", "-c"), "cmd": ("true",)}, "always", False, ("sh", "-c", "true")),
    ({"cmd": ("other",)}, "always", False, ("/entry", "other")),
    ({"entrypoint": ()}, "always", False, ("serve",)),
    # --init has pause as PID 1; an image kubedock knows nothing of cannot be resolved.
    ({"init": True}, "always", False, ()),
    ({"image_config": None}, "always", False, ()),
])
def test_which_containers_are_supervised(fields: dict[str, Any], policy: Any, has_setup: bool,
                                         argv: tuple[str, ...]) -> None:
    assert supervised_argv(config(**fields), policy, has_setup) == argv


def test_exit_record() -> None:
    record = parse_exit_record(RECORD)
    assert record is not None
    assert (record.exit_code, record.oom_killed) == (3, True)
    assert record.finished_at.timestamp() == pytest.approx(FINISHED / 1e9)
    for broken in (b"", b'{"exitCode": 3', b'{"exitCode": "3", "finishedAt": 1, '
                   b'"oomKilled": false}', b"[]", b'{"exitCode": 1}'):
        assert parse_exit_record(broken) is None


def test_a_program_the_supervisor_cannot_execute_fails_the_start() -> None:
    observation = kube.observe({"metadata": {"name": "p"}, "status": {
        "phase": "Failed", "containerStatuses": [{"name": kube.MAIN, "state": {"terminated": {
            "exitCode": 127, "reason": "Error",
            "message": 'kubedock-supervise: exec: "nosuch": executable file not found in $PATH',
        }}}]}})
    assert (observation.fatal, observation.reason, observation.message) == (
        True, "StartError", 'exec: "nosuch": executable file not found in $PATH')


def test_mirror_replaces_what_differs_only(tmp_path: Path) -> None:
    from kubedock.engine._writeback import mirror

    fresh, target = tmp_path / "fresh", tmp_path / "target"
    fresh.mkdir()
    target.mkdir()
    (fresh / "same.txt").write_text("same")
    (target / "same.txt").write_text("same")
    os.utime(target / "same.txt", (1, 1))
    (fresh / "link").symlink_to("same.txt")
    (target / "link").symlink_to("elsewhere")
    (fresh / "was-a-dir").write_text("now a file")
    (target / "was-a-dir").mkdir()
    (target / "was-a-dir" / "inner").write_text("x")
    inode = (target / "same.txt").stat().st_ino
    mirror(str(fresh), str(target))
    assert (target / "same.txt").stat().st_ino == inode  # content alike: left, times taken
    assert (target / "same.txt").stat().st_mtime == (fresh / "same.txt").stat().st_mtime
    assert os.readlink(target / "link") == "same.txt"
    assert (target / "was-a-dir").read_text() == "now a file"
    # A bind of one file.
    (tmp_path / "one").write_text("new")
    (tmp_path / "bound").write_text("old")
    mirror(str(tmp_path / "one"), str(tmp_path / "bound"))
    assert (tmp_path / "bound").read_text() == "new"


async def test_a_restarted_kubedock_learns_the_end_of_an_adopted_program(
    autojump_clock: trio.testing.MockClock, cluster: SupervisedCluster,
) -> None:
    async with trio.open_nursery() as first:  # ends without cleanup, as after kill -9
        engine = await new_engine(first, cluster, "always")
        await started(engine)
        first.cancel_scope.cancel()
    cluster.end_program()
    async with trio.open_nursery() as second:
        engine = await new_engine(second, cluster, "always")
        assert await engine.adopt() == 1
        (container,) = engine.containers()
        assert container.supervisor == f"{kube.TOOLS_DIR}/supervise"
        await engine.wait(container, "not-running")
        assert (container.status, container.exit_code, container.files_kept) == (
            "exited", 3, True)
        second.cancel_scope.cancel()


class _EndlessLogs:
    """A supervised pod's log: a follow never ends (the pod runs on); a line the follow has
    not delivered yet is there for the read that comes after."""

    def __init__(self) -> None:
        self.lines = [b"2026-11-30T00:49:01.000000001Z first\n"]
        self.follows = 0

    async def split_streams_supported(self) -> bool:
        return False

    @contextlib.asynccontextmanager
    async def logs(self, pod: str, *, follow: bool = False, **_: Any
                   ) -> AsyncIterator[AsyncIterator[bytes]]:
        served = list(self.lines)

        async def chunks() -> AsyncIterator[bytes]:
            for line in served:
                yield line
            if follow:
                self.follows += 1
                await trio.sleep_forever()

        yield chunks()


async def test_a_followed_log_ends_with_the_supervised_program(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from kubedock.engine._logs import LogRequest, send_logs

    logs = _EndlessLogs()
    container = Container(id="c" * 64, name="app", created=datetime.now(UTC),
                          config=ContainerConfig(image="busybox"), status="running",
                          pod_name="pod", supervisor="/s")
    send, receive = trio.open_memory_channel[tuple[int, bytes]](10)
    received: list[bytes] = []

    async def read() -> None:
        async for _, data in receive:
            received.append(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        nursery.start_soon(send_logs, logs, container, LogRequest(follow=True), send)
        await trio.sleep(5)
        assert (logs.follows, received, container.log_followers) == (1, [b"first\n"], 1)
        logs.lines.append(b"2026-11-30T00:49:02.000000001Z last\n")
        container.status, container.files_kept = "exited", True
        container.notify()
    assert received == [b"first\n", b"last\n"]
    assert container.log_followers == 0


async def test_a_removal_lets_the_followers_of_the_log_read_the_rest(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: SupervisedCluster,
) -> None:
    """docker-py's run: the log followed, wait, remove, and only then the log read."""
    engine = await new_engine(nursery, cluster, "always")
    container = await started(engine, cmd=("echo", "done"))
    container.log_followers = 1  # reading the rest of the log after the exit
    cluster.end_program()
    await engine.wait(container, "not-running")
    nursery.start_soon(partial(engine.remove, container, force=False))
    await trio.sleep(3)
    assert cluster.called("delete_pod") == []
    pod = container.pod_name
    container.log_followers = 0
    container.notify()
    await trio.sleep(1)
    assert cluster.called("delete_pod") == [pod] and container.removed


async def test_top_shows_the_program_not_the_supervisor(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, cluster: SupervisedCluster,
) -> None:
    import json

    from kubedock.engine._top import container_top

    engine = await new_engine(nursery, cluster, "always")
    container = await started(engine, cmd=("sleep", "60"))
    supervisor = container.supervisor or ""
    process = json.loads(SLEEP_PROCESSES)["processes"][0]
    listing = json.loads(SLEEP_PROCESSES)
    listing["processes"] = [
        {**process, "pid": 1, "args": [supervisor, "run", kube.STATE_DIR, "sleep", "60"]},
        {**process, "pid": 7, "ppid": 1, "args": ["sleep", "60"]},
        {**process, "pid": 8, "args": [supervisor, "wait", kube.STATE_DIR]},
    ]
    cluster.exec_output = lambda argv: json.dumps(listing).encode()
    titles, processes = await container_top(engine, container, "")
    assert [row[titles.index("PID")] for row in processes] == ["7"]
