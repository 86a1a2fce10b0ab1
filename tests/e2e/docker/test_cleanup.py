"""Ownership and cleanup under fault injection, with kubedock holding only deploy/rbac.yaml.

Every kubedock here runs as the namespace's ``kubedock`` ServiceAccount. Objects are counted
with kubectl (as the admin), never through kubedock itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
from flaky_proxy import FlakyProxy
from kubedock_server import Kubedock, docker_cli, start_kubedock, stop_kubedock

pytestmark = pytest.mark.cluster

KINDS = "pods,services,secrets,configmaps,leases,persistentvolumeclaims"
# Short heartbeats, so that a killed instance is provably gone within seconds.
HEARTBEAT = 3.0
REAPER_INTERVAL = 1.0


@pytest.fixture(scope="module")
def kubeconfig(rbac_kubeconfig: Path) -> Path:
    return rbac_kubeconfig


@pytest.fixture
def launch(cluster: Any, namespace: str, kubeconfig: Path, tmp_path: Path
           ) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], Kubedock, str]]]:
    """Start kubedock instances (restricted, short heartbeat); stopped at the end if alive."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> tuple[subprocess.Popen[bytes], Kubedock, str]:
        process, server = start_kubedock(
            cluster, namespace, tmp_path, "--kubeconfig", str(kubeconfig),
            "--heartbeat", f"{HEARTBEAT:g}s", "--reaper-interval", f"{REAPER_INTERVAL:g}s",
            # Names stay in pod annotations: these tests are about kubedock's own objects, not
            # about the namespace's shared DNS role.
            "--network-names", "external", *extra,
        )
        started.append(process)
        return process, server, instance_id(server)

    yield start
    for process in started:
        if process.poll() is None:
            stop_kubedock(process)


def instance_id(server: Kubedock) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = re.search(r"kubedock ([0-9a-f]{12}) serving", server.log.read_text())
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no instance id in the log: {server.log.read_text()}")


def objects(cluster: Any, namespace: str, selector: str) -> list[str]:
    done = cluster.kubectl("-n", namespace, "get", KINDS, "-l", selector, "-o", "name")
    return done.stdout.split()


def but_the_supervisor(names: list[str]) -> list[str]:
    """`names` less the instance's ConfigMap of kubedock's supervisor, which its first
    supervised container brings about in the background."""
    return [name for name in names if not name.startswith("configmap/kubedock-supervise-")]


def of_instance(instance: str) -> str:
    return f"kubedock=true,kubedock.id={instance}"


def run_sleepers(server: Kubedock, count: int) -> list[str]:
    client = docker.DockerClient(base_url=server.host, timeout=120)
    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            containers = list(pool.map(
                lambda _: client.containers.run("busybox:1.36", ["sleep", "600"], detach=True),
                range(count)))
        return [str(container.id) for container in containers]
    finally:
        client.close()


def create_volume(server: Kubedock, name: str) -> None:
    client = docker.DockerClient(base_url=server.host, timeout=60)
    try:
        client.volumes.create(name)
    finally:
        client.close()


def until(condition: Callable[[], bool], seconds: float) -> float:
    """Wait for `condition`; the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"condition not met within {seconds:g}s")
        time.sleep(0.2)
    return time.monotonic() - start


def test_sigterm_deletes_everything_and_exits_143(
    cluster: Any, namespace: str, launch: Any
) -> None:
    process, server, instance = launch()
    run_sleepers(server, 10)
    create_volume(server, "kept-until-exit")
    assert len([o for o in objects(cluster, namespace, of_instance(instance))
                if o.startswith(("pod/", "persistentvolumeclaim/"))]) == 11
    start = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=60)
    took = time.monotonic() - start
    print(f"SIGTERM with 10 running containers: exit {code} after {took:.2f}s")
    assert code == 128 + signal.SIGTERM, server.log.read_text()[-3000:]
    assert objects(cluster, namespace, of_instance(instance)) == []
    assert took < 10, server.log.read_text()[-3000:]


def test_sigkilled_instance_is_reaped_and_a_live_one_is_not(
    cluster: Any, namespace: str, launch: Any
) -> None:
    _live, live_server, live = launch()
    live_ids = run_sleepers(live_server, 2)
    victim, victim_server, dead = launch()
    run_sleepers(victim_server, 10)
    create_volume(victim_server, "orphaned")
    # 10 pods, 1 lease, 1 claim
    assert len(but_the_supervisor(objects(cluster, namespace, of_instance(dead)))) == 12
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    took = until(lambda: not objects(cluster, namespace, of_instance(dead)), seconds=60)
    print(f"SIGKILLed instance with 10 containers reaped {took:.2f}s after the kill "
          f"(heartbeat {HEARTBEAT:g}s, grace {HEARTBEAT:g}s, reaper every {REAPER_INTERVAL:g}s)")
    assert took < 2 * HEARTBEAT + REAPER_INTERVAL + 5
    client = docker.DockerClient(base_url=live_server.host, timeout=60)
    try:
        for container_id in live_ids:
            assert client.containers.get(container_id).status == "running"
    finally:
        client.close()
    assert len(but_the_supervisor(objects(cluster, namespace, of_instance(live)))) == 3


def test_prune_start_removes_a_dead_instance_at_once(
    cluster: Any, namespace: str, launch: Any
) -> None:
    victim, victim_server, dead = launch("--reapmax", "0")
    run_sleepers(victim_server, 3)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    time.sleep(2 * HEARTBEAT + 0.5)  # provably gone: the heartbeat expired a grace ago
    _process, _server, _alive = launch("--prune-start")
    assert objects(cluster, namespace, of_instance(dead)) == []


def test_abandoned_container_is_reaped_after_reapmax(
    cluster: Any, namespace: str, launch: Any
) -> None:
    _process, server, instance = launch("--reapmax", "5s")
    # A client that dies without cleaning up (what Testcontainers without Ryuk leaves).
    client = subprocess.Popen(["docker", "run", "--name", "abandoned", "busybox:1.36",
                               "sleep", "600"], env=server.env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    until(lambda: any(o.startswith("pod/") for o in
                      objects(cluster, namespace, of_instance(instance))), seconds=60)
    client.kill()
    client.wait()
    started = time.monotonic()
    until(lambda: not [o for o in objects(cluster, namespace, of_instance(instance))
                       if o.startswith("pod/")], seconds=60)
    print(f"abandoned container reaped {time.monotonic() - started:.2f}s after its client died "
          "(--reapmax 5s)")
    listed = subprocess.run(["docker", "ps", "-a", "-q", "--filter", "name=abandoned"],
                            env=server.env(), capture_output=True, text=True, check=True)
    assert listed.stdout.strip() == ""


def test_lock_is_exclusive_and_released_on_exit(
    cluster: Any, namespace: str, kubeconfig: Path, launch: Any
) -> None:
    holder, _server, first = launch("--lock")
    lease = cluster.kubectl("-n", namespace, "get", "lease", "kubedock-lock",
                            "-o", "jsonpath={.spec.holderIdentity}").stdout
    assert lease == first
    started = time.monotonic()
    waiting = subprocess.run(
        [sys.executable, "-m", "kubedock", "server", "--listen-addr", "127.0.0.1:0",
         "--namespace", namespace, "--kubeconfig", str(kubeconfig), "--lock",
         "--lock-timeout", "3s", "--network-names", "external"],
        capture_output=True, text=True, timeout=60, check=False)
    assert waiting.returncode == 1, waiting.stderr
    assert "not acquired within 3s" in waiting.stderr
    assert 3 <= time.monotonic() - started < 20
    assert stop_kubedock(holder) == 128 + signal.SIGTERM
    leases = cluster.kubectl("-n", namespace, "get", "leases", "-o", "name").stdout
    assert "kubedock-lock" not in leases
    _next, _server, second = launch("--lock")
    assert cluster.kubectl("-n", namespace, "get", "lease", "kubedock-lock",
                           "-o", "jsonpath={.spec.holderIdentity}").stdout == second


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert found
    return int(found.group(1))


def test_hundred_cycles_leave_nothing_and_memory_flat(
    cluster: Any, namespace: str, launch: Any
) -> None:
    process, server, instance = launch()
    client = docker.DockerClient(base_url=server.host, timeout=120)
    samples: dict[int, int] = {}
    try:
        for cycle in range(1, 101):
            container = client.containers.run("busybox:1.36", ["sleep", "600"], detach=True)
            assert container.exec_run(["echo", "hi"]).output == b"hi\n"
            container.remove(force=True)
            if cycle in (1, 10, 25, 50, 75, 100):
                samples[cycle] = rss_kib(process.pid)
    finally:
        client.close()
    print("kubedock RSS (KiB) after cycle: " + ", ".join(f"{c}: {k}" for c, k in samples.items()))
    assert [o for o in but_the_supervisor(objects(cluster, namespace, of_instance(instance)))
            if not o.startswith("lease")] == []
    assert samples[100] - samples[25] < 8 * 1024, samples


def proxied(kubeconfig: Path, tmp_path: Path) -> tuple[FlakyProxy, Path]:
    """A `FlakyProxy` to the API server, and a kubeconfig that reaches it through that."""
    config = json.loads(kubeconfig.read_text())
    host, _, port = config["clusters"][0]["cluster"]["server"].removeprefix("https://")\
        .rpartition(":")
    proxy = FlakyProxy((host, int(port)))
    # The API server's certificate names 127.0.0.1 too.
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    through_proxy = tmp_path / "kubeconfig-proxy"
    through_proxy.write_text(json.dumps(config))
    return proxy, through_proxy


def test_api_server_outage_during_logs_follow(
    cluster: Any, namespace: str, kubeconfig: Path, launch: Any, tmp_path: Path
) -> None:
    """All of kubedock's API connections cut and refused for a while, as in a restart."""
    proxy, through_proxy = proxied(kubeconfig, tmp_path)
    try:
        process, server, instance = launch("--kubeconfig", str(through_proxy))
        talker = docker_cli(server, "run", "-d", "busybox:1.36", "sh", "-c",
                            "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done")
        assert talker.returncode == 0, talker.stderr
        short = docker_cli(server, "run", "-d", "busybox:1.36", "sh", "-c", "sleep 5; exit 3")
        assert short.returncode == 0, short.stderr
        talker_id, short_id = talker.stdout.decode().strip(), short.stdout.decode().strip()
        follow = subprocess.Popen(["docker", "logs", "-f", talker_id], env=server.env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1)
        proxy.outage(8)  # the short container exits meanwhile, unseen
        time.sleep(2)
        assert follow.poll() is None, follow.stderr.read() if follow.stderr else ""
        stopped = docker_cli(server, "stop", "-t", "1", talker_id)
        assert stopped.returncode == 0, stopped.stderr
        try:
            out, err = follow.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            follow.kill()
            out, err = follow.communicate()
        lines = out.decode().splitlines()
        print(f"logs -f across the outage: exit {follow.returncode}, {len(lines)} lines, "
              f"stderr {err.decode().strip()!r}")
        assert process.poll() is None, server.log.read_text()[-3000:]
        # Nothing lost, nothing twice: what was logged during the outage came afterwards.
        assert lines == [f"line {i}" for i in range(len(lines))]
        assert len(lines) > 50
        assert follow.returncode == 0

        def exited_with_3() -> bool:
            state = docker_cli(server, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                               short_id)
            return state.stdout.decode().strip() == "exited 3"

        took = until(exited_with_3, seconds=60)
        print(f"state converged {took:.1f}s after the API server came back")
        again = docker_cli(server, "run", "--rm", "busybox:1.36", "echo", "ok")
        assert again.stdout == b"ok\n", again.stderr
        assert stop_kubedock(process) == 128 + signal.SIGTERM
        assert objects(cluster, namespace, of_instance(instance)) == []
        assert "Traceback" not in server.log.read_text(), server.log.read_text()[-4000:]
    finally:
        proxy.close()


def test_half_open_api_connections_end_or_resume_in_bounded_time(
    cluster: Any, namespace: str, kubeconfig: Path, launch: Any, tmp_path: Path
) -> None:
    """Every connection kubedock has to the API server goes silent at once and stays open
    (traffic dropped): a follow resumes on a new connection, an exec and a copy end, each
    within bounded time, and the server serves on."""
    proxy, through_proxy = proxied(kubeconfig, tmp_path)
    client, clients, reader = None, [], None
    try:
        process, server, instance = launch("--kubeconfig", str(through_proxy))
        talker = docker_cli(server, "run", "-d", "busybox:1.36", "sh", "-c",
                            "i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done")
        assert talker.returncode == 0, talker.stderr
        talker_id = talker.stdout.decode().strip()
        follow = subprocess.Popen(["docker", "logs", "-f", talker_id], env=server.env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        lines: list[str] = []
        reader = threading.Thread(target=_read_lines, args=(follow, lines), daemon=True)
        reader.start()
        clients.append(follow)
        execing = subprocess.Popen(["docker", "exec", talker_id, "sleep", "600"],
                                   env=server.env(), stderr=subprocess.DEVNULL)
        clients.append(execing)
        client = docker.DockerClient(base_url=server.host, timeout=300)
        frozen = threading.Event()
        with ThreadPoolExecutor(max_workers=1) as pool:
            copy = pool.submit(client.api.put_archive, talker_id, "/tmp",
                               _archive_sent_across(frozen))
            time.sleep(4)  # lines flow, the exec runs, the copy is under way
            assert execing.poll() is None and not copy.done()
            shown = len(lines)
            proxy.freeze()
            froze = time.monotonic()
            frozen.set()
            # Pings find the sessions dead within 40 s; the silent follow gives up after 60 s.
            execing.wait(timeout=120)
            exec_ended = time.monotonic() - froze
            with pytest.raises(docker.errors.APIError) as copy_failed:
                copy.result(timeout=120)
            copy_ended = time.monotonic() - froze
            until(lambda: len(lines) > shown + 3, seconds=120)
            resumed = time.monotonic() - froze
        print(f"after the freeze: exec ended in {exec_ended:.1f}s ({execing.returncode}), the "
              f"copy failed in {copy_ended:.1f}s ({copy_failed.value}), logs -f resumed in "
              f"{resumed:.1f}s")
        assert exec_ended < 50
        assert copy_ended < 50
        assert resumed < 75
        assert "Kubernetes API unreachable" in str(copy_failed.value)
        # Nothing lost, nothing twice.
        assert lines[:shown + 3] == [f"line {i}" for i in range(shown + 3)]
        assert process.poll() is None, server.log.read_text()[-3000:]
        again = docker_cli(server, "exec", talker_id, "echo", "ok")
        assert again.stdout == b"ok\n", again.stderr
        # A start needs the pod watch, which gives its frozen connection up after 90 s.
        fresh = docker_cli(server, "run", "--rm", "busybox:1.36", "echo", "ok")
        print(f"a new container ran {time.monotonic() - froze:.1f}s after the freeze")
        assert fresh.stdout == b"ok\n", fresh.stderr
        _end_clients(clients, reader)
        client.close()
        assert stop_kubedock(process) == 128 + signal.SIGTERM
        # Within the cleanup's own bound, not by the last resort that ends a stuck shutdown.
        log = server.log.read_text()
        assert "cleanup confirmed" in log and "did not finish" not in log, log[-4000:]
        assert objects(cluster, namespace, of_instance(instance)) == []
        assert "Traceback" not in server.log.read_text(), server.log.read_text()[-4000:]
    finally:
        _end_clients(clients, reader)
        if client is not None:
            client.close()
        proxy.close()


def _end_clients(clients: list[subprocess.Popen[bytes]],
                 reader: threading.Thread | None) -> None:
    """Stop the test's docker clients first: the server's stop is measured on its own."""
    for child in clients:
        child.kill()
        child.wait()
        if child.stdout is not None and reader is not None:
            reader.join()
            child.stdout.close()
    clients.clear()


def _read_lines(process: subprocess.Popen[bytes], into: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        into.append(line.decode().rstrip("\n"))


def _archive_sent_across(frozen: threading.Event) -> Iterator[bytes]:
    """A tar of one file, sent in two parts: the second once `frozen`.

    Small enough for the sockets' buffers to take all of it: a server that answers before it
    has read a whole upload leaves its client stuck in sending (hypercorn keeps the connection).
    """
    size, chunk = 5 * 1024 * 1024, b"\0" * (1024 * 1024)
    yield _tar_header("big", size)
    yield chunk
    frozen.wait()
    for _ in range(size // len(chunk) - 1):
        yield chunk
    yield b"\0" * 1024  # the end-of-archive marker


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.PAX_FORMAT)


BIG = 64 * 1024 * 1024  # bytes: a transfer still under way when the API server goes away
MID_FLIGHT = 2 * 1024 * 1024


def test_api_server_restart_during_exec_port_forward_and_copies(
    cluster: Any, namespace: str, kubeconfig: Path, launch: Any, tmp_path: Path
) -> None:
    """The API server goes away (connections cut, then refused) and comes back while an exec
    streams, a download crosses a port-forward and files are copied in and out: each ends
    with an error its client sees, in bounded time. Meanwhile an exec is refused with the
    reason, a run too (or done once the API server is back), and a port-forward connection
    waits for it. Everything works again afterwards."""
    proxy, through_proxy = proxied(kubeconfig, tmp_path)
    client = None
    try:
        process, server, instance = launch("--kubeconfig", str(through_proxy), "--port-forward")
        client = docker.DockerClient(base_url=server.host, timeout=60)
        web = client.containers.run(
            "busybox:1.36", ["sh", "-c", "mkdir /tmp/in; echo hello > /tmp/hello; "
                             f"head -c {BIG} /dev/zero > /tmp/big; exec httpd -f -p 8080 -h /tmp"],
            detach=True, ports={"8080/tcp": None})
        web.reload()
        port = int(web.ports["8080/tcp"][0]["HostPort"])
        until(lambda: _download(port, "/big", BIG, slowly=None) == BIG, seconds=30)

        outage_begun = threading.Event()
        with ThreadPoolExecutor(max_workers=6) as pool:
            execing = subprocess.Popen(
                ["docker", "exec", str(web.id), "sh", "-c",
                 "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done"],
                env=server.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            exec_lines: list[str] = []
            reader = threading.Thread(target=_read_lines, args=(execing, exec_lines),
                                      daemon=True)
            reader.start()
            downloaded = pool.submit(_download, port, "/big", BIG, slowly=outage_begun)
            copied_out = pool.submit(_copy_out, client, str(web.id), "/tmp/big", outage_begun)
            copied_in = pool.submit(client.api.put_archive, web.id, "/tmp/in",
                                    _archive_sent_across(outage_begun))
            until(lambda: len(exec_lines) > 5, seconds=20)
            time.sleep(1)  # the download and the copies are under way
            assert not (downloaded.done() or copied_out.done() or copied_in.done())
            outage = threading.Thread(target=proxy.outage, args=(6,))
            cut = time.monotonic()
            outage.start()
            time.sleep(0.5)
            outage_begun.set()
            time.sleep(0.5)
            # A connection made while the API server is away waits for it.
            answered = pool.submit(_download, port, "/hello", 6, slowly=None)
            refused = docker_cli(server, "exec", str(web.id), "echo", "hi", timeout=30)
            run_meanwhile = pool.submit(docker_cli, server, "run", "-d", "busybox:1.36", "sleep",
                                        "600", timeout=60)

            received = downloaded.result(timeout=60)
            download_ended = time.monotonic() - cut
            with pytest.raises(requests.exceptions.RequestException) as out_failed:
                copied_out.result(timeout=60)
            out_ended = time.monotonic() - cut
            with pytest.raises(docker.errors.APIError) as in_failed:
                copied_in.result(timeout=60)
            in_ended = time.monotonic() - cut
            try:
                _, exec_err = execing.communicate(timeout=60)
            finally:
                execing.kill()
                reader.join()
            exec_ended = time.monotonic() - cut
            outage.join()
            assert answered.result(timeout=60) == 6
            answered_after = time.monotonic() - cut
            ran = run_meanwhile.result(timeout=60)
            ran_after = time.monotonic() - cut
        print(f"API server restart: the download ended after {download_ended:.1f}s "
              f"({received} of {BIG} bytes), the copy out failed after {out_ended:.1f}s "
              f"({type(out_failed.value).__name__}: {out_failed.value}), the copy in after "
              f"{in_ended:.1f}s ({in_failed.value}), the exec after {exec_ended:.1f}s (exit "
              f"{execing.returncode}, {len(exec_lines)} lines, {exec_err.decode().strip()!r}); "
              f"a connection made during the outage was answered after {answered_after:.1f}s; "
              f"a run during the outage ended after {ran_after:.1f}s (exit {ran.returncode}, "
              f"{ran.stderr.decode().strip()!r})")
        assert received < BIG
        assert "Kubernetes API" in str(in_failed.value)
        assert execing.returncode != 0
        assert exec_err.strip(), "the exec's client is told why it ended"
        assert max(download_ended, out_ended, in_ended, exec_ended) < 40
        assert refused.returncode == 126, refused
        assert refused.stderr.startswith(b"kubedock: exec failed: cannot reach the API server")
        # A run is refused by the cluster it cannot reach, or done once it is back.
        assert ran.returncode == 0 or b"Kubernetes API unreachable" in ran.stderr, ran.stderr

        # Everything works again: the same port, the same container, new containers.
        assert process.poll() is None, server.log.read_text()[-3000:]
        until(lambda: _download(port, "/big", BIG, slowly=None) == BIG, seconds=30)
        assert web.exec_run(["echo", "ok"]).output == b"ok\n"
        client.api.put_archive(web.id, "/tmp", _small_archive())
        stream, _ = client.api.get_archive(web.id, "/tmp/small")
        assert b"small file" in b"".join(stream)
        again = docker_cli(server, "run", "--rm", "busybox:1.36", "echo", "ok")
        assert again.stdout == b"ok\n", again.stderr
        for container in client.containers.list(all=True):
            container.remove(force=True)
        client.close()
        assert stop_kubedock(process) == 128 + signal.SIGTERM
        assert objects(cluster, namespace, of_instance(instance)) == []
        assert "Traceback" not in server.log.read_text(), server.log.read_text()[-4000:]
    finally:
        if client is not None:
            client.close()
        proxy.close()


def _download(port: int, path: str, size: int, slowly: threading.Event | None) -> int:
    """GET `path` from `port`; the body bytes received before the connection ended. With
    `slowly`, read at a trickle until it is set, so that the transfer is still under way
    then."""
    received = 0
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                   timeout=30) as connection:
        connection.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = connection.recv(65536)
            if not data:
                return 0
            head += data
        received = len(head.partition(b"\r\n\r\n")[2])
        while received < size:
            data = connection.recv(65536)
            if not data:
                break
            received += len(data)
            if slowly is not None and not slowly.is_set():
                time.sleep(0.02)
    return received


def _copy_out(client: docker.DockerClient, container_id: str, path: str,
              outage_begun: threading.Event) -> int:
    """Read an archive of `path` slowly until the outage has begun; how much came."""
    stream, _ = client.api.get_archive(container_id, path, chunk_size=65536)
    received = 0
    for chunk in stream:
        received += len(chunk)
        if not outage_begun.is_set():
            time.sleep(0.02)
    return received


def _small_archive() -> bytes:
    content = b"small file\n"
    info = tarfile.TarInfo("small")
    info.size = len(content)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_a_client_gone_mid_start_leaves_the_container_started_and_published(
    cluster: Any, namespace: str, launch: Any
) -> None:
    """The HTTP connection of a start closes while the pod is being made (a client's read
    timeout, a killed CI step): as with Docker, the start completes, ports published."""
    process, server, instance = launch("--port-forward")
    client = docker.DockerClient(base_url=server.host, timeout=60)
    try:
        created = client.api.create_container(
            "busybox:1.36", ["httpd", "-f", "-p", "8080", "-h", "/tmp"], ports=[8080],
            host_config=client.api.create_host_config(port_bindings={8080: None}))
        container_id = created["Id"]
        since = int(time.time())
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            connection.sendall(f"POST /v1.45/containers/{container_id}/start HTTP/1.1\r\n"
                               "Host: docker\r\nContent-Length: 0\r\n\r\n".encode())
            until(lambda: any(o.startswith("pod/") for o in
                              objects(cluster, namespace, of_instance(instance))), seconds=30)
            connection.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                assert connection.recv(1024) == b"", "the start was still under way"
        gone = time.monotonic()

        def published() -> bool:
            state = client.api.inspect_container(container_id)
            return bool(state["State"]["Running"] and state["NetworkSettings"]["Ports"].get(
                "8080/tcp"))

        until(published, seconds=60)
        print(f"started and published {time.monotonic() - gone:.1f}s after its client left")
        ports = client.api.inspect_container(container_id)["NetworkSettings"]["Ports"]
        port = int(ports["8080/tcp"][0]["HostPort"])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert connection.recv(1024).split(b"\r\n")[0].endswith(b" 404 Not Found")
        started = client.api.events(since=since, until=int(time.time()) + 1, decode=True,
                                    filters={"container": container_id, "event": "start"})
        assert len(list(started)) == 1
        client.api.remove_container(container_id, force=True)
        again = docker_cli(server, "run", "--rm", "busybox:1.36", "echo", "ok")
        assert again.stdout == b"ok\n", again.stderr
        client.close()
        assert stop_kubedock(process) == 128 + signal.SIGTERM
        assert objects(cluster, namespace, of_instance(instance)) == []
        assert "Traceback" not in server.log.read_text(), server.log.read_text()[-4000:]
    finally:
        client.close()
