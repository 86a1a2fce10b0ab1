"""The build sandbox's pod against the scripted cluster: made on first use, one exec per
operation, deleted when left, also when cancelled."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
from engine_fake import FakeCluster

from kubedock import kube
from kubedock.build import (
    SandboxFailed,
    StepCommand,
    StepNotStarted,
    open_sandbox,
    sandbox_pod,
)
from kubedock.podside import buildwire

SETTINGS = kube.PodSettings(namespace="default", instance_id="inst1",
                            init_image="kubedock/kubedock:0.1.0", request_cpu="100m",
                            labels={"team": "a"})
STEP = StepCommand(argv=("/bin/sh", "-c", "echo hi"), env=(("A", "1"),), user="app",
                   workdir="/src")


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_pod_is_kubedock_idling_as_root_on_an_empty_dir() -> None:
    pod = sandbox_pod(SETTINGS, "ab" * 32)
    assert pod["metadata"]["name"] == "kubedock-build-abababababab"
    assert pod["metadata"]["labels"] == {"team": "a", "kubedock": "true", "kubedock.id": "inst1",
                                         "kubedock.containerid": "abababababab"}
    [main] = pod["spec"]["containers"]
    assert (main["image"], main["command"], main["args"]) == (
        "kubedock/kubedock:0.1.0", ["/kubedock"], ["toolbox", "idle"])
    assert main["securityContext"] == {"runAsUser": 0}
    assert main["resources"] == {"requests": {"cpu": "100m"}}
    [mount] = main["volumeMounts"]
    assert mount["mountPath"] == "/.kubedock/build"
    assert {"name": mount["name"], "emptyDir": {}} in pod["spec"]["volumes"]
    assert pod["spec"]["terminationGracePeriodSeconds"] == 0


async def test_unused_sandbox_makes_no_pod() -> None:
    cluster = FakeCluster()
    async with open_sandbox(cluster, SETTINGS) as sandbox:
        await sandbox.reset()
    assert cluster.called("create_pod") == []


def _replies(*frames: tuple[bytes, bytes]) -> bytes:
    return b"".join(buildwire.frame(kind, payload) for kind, payload in frames)


async def test_one_session_for_all_operations_and_the_pod_goes_at_the_end() -> None:
    cluster = FakeCluster()
    cluster.exec_output = lambda argv: _replies(
        (buildwire.END, b"0"),  # apply
        (buildwire.OUTPUT, b"hi"), (buildwire.STDERR, b"oops\n"), (buildwire.OUTPUT, b"\n"),
        (buildwire.END, b"3"),  # run
        (buildwire.OUTPUT, b"layer"), (buildwire.END, b"0"),  # snapshot
        (buildwire.END, b"0"),  # reset
    )
    output, errors, layer = bytearray(), bytearray(), bytearray()

    async def take_output(data: bytes) -> None:
        output.extend(data)

    async def take_errors(data: bytes) -> None:
        errors.extend(data)

    async def take_layer(data: bytes) -> None:
        layer.extend(data)

    async with open_sandbox(cluster, SETTINGS) as sandbox:
        await sandbox.apply_layer(_chunks(b"a", b"b"))
        assert await sandbox.run(STEP, take_output, take_errors) == 3
        await sandbox.snapshot(take_layer)
        await sandbox.reset()
        [pod] = cluster.pods
    assert (bytes(output), bytes(errors), bytes(layer)) == (b"hi\n", b"oops\n", b"layer")
    assert cluster.called("exec") == ["/kubedock buildstep /.kubedock/build serve"]
    assert cluster.called("create_pod") == [pod] and cluster.called("delete_pod") == [pod]
    assert cluster.pods == {}


NOT_FOUND = (b'failed to create shim task: OCI runtime create failed: runc create failed: '
             b'unable to start container process: exec: "nosuch": executable file not found '
             b'in $PATH: unknown\n')


async def _run_replying(*frames: tuple[bytes, bytes]) -> tuple[int | str, bytes]:
    """The step's exit code, or the message of its not starting, and its output (stderr
    marked `E:`)."""
    cluster = FakeCluster()
    cluster.exec_output = lambda argv: _replies(*frames)
    output = bytearray()

    async def take_output(data: bytes) -> None:
        output.extend(data)

    async def take_errors(data: bytes) -> None:
        output.extend(b"E:" + data)

    async with open_sandbox(cluster, SETTINGS) as sandbox:
        try:
            return await sandbox.run(STEP, take_output, take_errors), bytes(output)
        except StepNotStarted as error:
            return error.message, bytes(output)


@pytest.mark.parametrize("kind", [buildwire.STDERR, buildwire.OUTPUT])  # OUTPUT: an older pod
async def test_a_program_that_does_not_start_is_no_output_but_an_error(kind: bytes) -> None:
    # The pod's line arrives in pieces.
    result = await _run_replying((kind, NOT_FOUND[:20]), (kind, NOT_FOUND[20:]),
                                 (buildwire.END, b"127"))
    assert result == (NOT_FOUND[:-1].decode(), b"")


async def test_held_output_is_released_stream_by_stream_in_order() -> None:
    result = await _run_replying((buildwire.STDERR, NOT_FOUND[:20]), (buildwire.OUTPUT, b"x\n"),
                                 (buildwire.STDERR, b"y\n"), (buildwire.END, b"127"))
    assert result == (127, b"E:" + NOT_FOUND[:20] + b"x\nE:y\n")


@pytest.mark.parametrize(("output", "code"), [
    (NOT_FOUND, b"0"),  # a step may print it and succeed
    (NOT_FOUND + b"more\n", b"127"),  # ... or say more
    (b"failed to create shim task: x", b"127"),  # ... or not end its line
    (b"fail\n", b"126"),
    (b"", b"127"),
])
async def test_output_that_only_looks_like_it_is_output(output: bytes, code: bytes) -> None:
    frames = [(buildwire.OUTPUT, output[:10]), (buildwire.OUTPUT, output[10:])]
    assert await _run_replying(*frames, (buildwire.END, code)) == (int(code), output)


async def test_failed_operation_says_so() -> None:
    cluster = FakeCluster()
    cluster.exec_output = lambda argv: _replies((buildwire.ERROR, b"apply: bad layer"),
                                                (buildwire.END, b"1"))
    async with open_sandbox(cluster, SETTINGS) as sandbox:
        with pytest.raises(SandboxFailed, match="apply failed: apply: bad layer"):
            await sandbox.apply_layer(_chunks(b"x"))
    assert cluster.pods == {}


async def test_session_that_ends_breaks_the_sandbox() -> None:
    cluster = FakeCluster()
    async with open_sandbox(cluster, SETTINGS) as sandbox:
        with pytest.raises(SandboxFailed, match="session ended"):
            await sandbox.snapshot(_ignore)
        with pytest.raises(SandboxFailed, match="session ended"):
            await sandbox.reset()
    assert cluster.pods == {}


async def _ignore(data: bytes) -> None:
    pass


@pytest.mark.parametrize("state", [{"waiting": {"reason": "InvalidImageName",
                                                "message": "bad"}}, None])
async def test_pod_that_does_not_start(state: dict[str, object] | None,
                                       autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    cluster.main_on_create = state
    async with open_sandbox(cluster, SETTINGS) as sandbox:
        for _ in range(2):  # the second use does not make another pod
            with pytest.raises(SandboxFailed, match="InvalidImageName: bad" if state
                               else "did not start within 120 s"):
                await sandbox.apply_layer(_chunks())
    assert len(cluster.called("create_pod")) == 1 and cluster.pods == {}


async def test_cancelled_build_deletes_the_pod(autojump_clock: trio.testing.MockClock) -> None:
    cluster = FakeCluster()
    cluster.exec_stalled = True
    with trio.move_on_after(1):
        async with open_sandbox(cluster, SETTINGS) as sandbox:
            await sandbox.run(STEP, _ignore, _ignore)
    assert len(cluster.called("delete_pod")) == 1 and cluster.pods == {}


def test_without_an_init_image_run_is_refused() -> None:
    from kubedock.engine import Unsupported

    with pytest.raises(Unsupported, match="initimage"):
        sandbox_pod(kube.PodSettings(namespace="default", instance_id="i"), "ab" * 32)
