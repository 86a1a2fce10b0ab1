"""`docker build` end to end: the docker CLI (classic builder), docker-py and
testcontainers-python against kubedock on the local cluster, the reference engine's classic
builder as the spec of the image config."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import docker
import pytest
from kubedock_server import Kubedock, docker_cli

pytestmark = pytest.mark.cluster

NO_RUN = """\
ARG BASE=busybox:1.36
FROM $BASE
ARG GREETING=hello
ENV GREETING=$GREETING WHO=kubedock
COPY greet.sh /app/
WORKDIR /app
EXPOSE 8080
HEALTHCHECK --interval=5s --retries=2 CMD test -f /app/greet.sh
LABEL built.by=test
CMD ["sh", "/app/greet.sh"]
"""
GREET = b'echo "$GREETING from $WHO in $(pwd)"\n'
EDGES = """\
FROM busybox:1.36
ENV legacy value with  spaces
ENV A=1 \\
    B="x y"
LABEL "k 1"="v 1" k2=v2
EXPOSE 80/udp 443
VOLUME ["/data"]
VOLUME /a /b
STOPSIGNAL SIGINT
USER 1000:1000
WORKDIR /w
WORKDIR sub/$A
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/bin/echo"]
CMD echo $B
HEALTHCHECK --interval=1m30s --timeout=3s --start-period=2s --retries=3 CMD ["true"]
"""
COMPARED = ("Env", "Cmd", "Entrypoint", "ExposedPorts", "Healthcheck", "WorkingDir", "Labels",
            "User", "Volumes", "StopSignal", "Shell", "OnBuild")


def _context(tmp_path: Path, dockerfile: str, files: dict[str, bytes]) -> Path:
    tmp_path.joinpath("Dockerfile").write_text(dockerfile)
    for name, data in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return tmp_path


def test_config_instructions_give_the_config_docker_gives(
        kubedock: Kubedock, docker_oracle: str, tmp_path: Path) -> None:
    oracle = Kubedock(docker_oracle, 0, "", "", kubedock.log, reference=True)
    context = _context(tmp_path, EDGES, {})
    for server in (kubedock, oracle):
        code, output = _build(server, "-t", "edges:1", str(context))
        assert code == 0, output
    assert _config(kubedock, "edges:1") == _config(oracle, "edges:1")


def _build(server: Kubedock, *args: str) -> tuple[int, str]:
    done = docker_cli(server, "build", *args)
    return done.returncode, done.stdout.decode() + done.stderr.decode()


def _config(server: Kubedock, image: str) -> dict[str, Any]:
    done = docker_cli(server, "image", "inspect", image)
    assert done.returncode == 0, done.stderr
    [document] = json.loads(done.stdout)
    config: dict[str, Any] = document["Config"]
    return {key: config.get(key) for key in COMPARED}


def _layer_count(server: Kubedock, image: str) -> int:
    done = docker_cli(server, "image", "inspect", "--format", "{{len .RootFS.Layers}}", image)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_cli_build_without_run_gives_the_config_docker_gives_and_runs(
        kubedock: Kubedock, docker_oracle: str, tmp_path: Path) -> None:
    oracle = Kubedock(docker_oracle, 0, "", "", kubedock.log, reference=True)
    context = _context(tmp_path, NO_RUN, {"greet.sh": GREET})
    code, output = _build(kubedock, "-t", "demo-norun:1", "--build-arg", "GREETING=hi",
                          str(context))
    assert code == 0, output
    assert "Step 10/10 : CMD [\"sh\", \"/app/greet.sh\"]" in output
    assert "Successfully tagged demo-norun:1" in output
    code, expected = _build(oracle, "-t", "demo-norun:1", "--build-arg", "GREETING=hi",
                            str(context))
    assert code == 0, expected
    assert _config(kubedock, "demo-norun:1") == _config(oracle, "demo-norun:1")
    ran = docker_cli(kubedock, "run", "--rm", "demo-norun:1")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == b"hi from kubedock in /app\n"


def test_a_rebuild_uses_the_cache(kubedock: Kubedock, tmp_path: Path) -> None:
    context = _context(tmp_path, NO_RUN, {"greet.sh": GREET})
    assert _build(kubedock, "-t", "demo-cache:1", str(context))[0] == 0
    code, output = _build(kubedock, "-t", "demo-cache:1", str(context))
    assert code == 0, output
    assert output.count(" ---> Using cache") == 8


def test_docker_py_builds_tagged_and_untagged_images(client: docker.DockerClient,
                                                     tmp_path: Path) -> None:
    context = _context(tmp_path, NO_RUN, {"greet.sh": GREET})
    image, logs = client.images.build(path=str(context), tag="demo-py:1",
                                      buildargs={"GREETING": "hey"})
    assert any("Successfully tagged demo-py:1" in line.get("stream", "") for line in logs)
    assert image.tags == ["demo-py:1"]
    assert client.containers.run("demo-py:1", remove=True) == b"hey from kubedock in /app\n"
    untagged, _ = client.images.build(path=str(context), buildargs={"GREETING": "yo"})
    assert client.containers.run(untagged.id, remove=True) == b"yo from kubedock in /app\n"


def test_testcontainers_python_builds_and_runs(kubedock: Kubedock, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.image import DockerImage
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    monkeypatch.setenv("DOCKER_HOST", kubedock.host)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    context = _context(tmp_path, NO_RUN, {"greet.sh": GREET + b"sleep 30\n"})
    with DockerImage(path=str(context)) as image, \
            DockerContainer(str(image)).waiting_for(
                LogMessageWaitStrategy("hello from kubedock in /app")):
        pass


def test_refused_options_are_named(kubedock: Kubedock, tmp_path: Path) -> None:
    context = _context(tmp_path, "FROM busybox:1.36\n", {})
    code, output = _build(kubedock, "--memory", "64m", str(context))
    assert code != 0
    assert "build option memory=67108864 is not supported by kubedock's builder" in output


DEMO = """\
FROM busybox:1.36
ARG GREETING=hello
COPY greet.sh /app/
RUN echo "built with $GREETING" > /app/built.txt && chmod 755 /app/greet.sh
ENV WHO=kubedock
EXPOSE 8080
HEALTHCHECK --interval=5s CMD test -f /app/built.txt
CMD ["sh", "-c", "cat /app/built.txt; /app/greet.sh"]
"""
DEMO_GREET = b'#!/bin/sh\necho "greetings from $WHO"\n'


def _sandbox_pods(kubedock: Kubedock, cluster: Any) -> list[str]:
    """The build sandbox pods of the module's kubedock."""
    pods = json.loads(cluster.kubectl("-n", kubedock.namespace, "get", "pods", "-o",
                                      "json").stdout)["items"]
    return [pod["metadata"]["name"] for pod in pods
            if pod["metadata"]["name"].startswith("kubedock-build-")]


def test_run_builds_what_the_dockerfile_says(kubedock: Kubedock, cluster: Any,
                                              tmp_path: Path) -> None:
    context = _context(tmp_path, DEMO, {"greet.sh": DEMO_GREET})
    code, output = _build(kubedock, "-t", "demo:1", "--build-arg", "GREETING=hi",
                          str(context))
    assert code == 0, output
    ran = docker_cli(kubedock, "run", "--rm", "demo:1")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == b"built with hi\ngreetings from kubedock\n"
    config = _config(kubedock, "demo:1")
    assert config["ExposedPorts"] == {"8080/tcp": {}}
    assert config["Healthcheck"]["Test"] == ["CMD-SHELL", "test -f /app/built.txt"]
    assert "WHO=kubedock" in config["Env"]
    assert _sandbox_pods(kubedock, cluster) == []
    started = time.monotonic()
    code, output = _build(kubedock, "-t", "demo:1", "--build-arg", "GREETING=hi",
                          str(context))
    assert code == 0 and output.count(" ---> Using cache") == 7, output
    assert time.monotonic() - started < 10


def test_multi_stage_with_target(kubedock: Kubedock, tmp_path: Path) -> None:
    context = _context(tmp_path, """\
FROM busybox:1.36 AS base
RUN echo base > /stage
FROM base AS test
RUN echo test >> /stage
CMD ["cat", "/stage"]
FROM busybox:1.36 AS final
CMD ["echo", "final"]
""", {})
    code, output = _build(kubedock, "-t", "staged:test", "--target", "test", str(context))
    assert code == 0, output
    assert "Step 5/5" in output
    ran = docker_cli(kubedock, "run", "--rm", "staged:test")
    assert ran.stdout == b"base\ntest\n", ran.stderr


def test_a_failing_run_fails_the_build_with_its_output(
        kubedock: Kubedock, cluster: Any, docker_oracle: str, tmp_path: Path) -> None:
    context = _context(tmp_path, "FROM busybox:1.36\nRUN echo going wrong; exit 3\n", {})
    code, output = _build(kubedock, str(context))
    assert code == 3  # the step's exit code, as the docker CLI exits with Docker's too
    assert "going wrong" in output
    assert "The command '/bin/sh -c echo going wrong; exit 3' returned a non-zero code: 3" \
        in output
    oracle = Kubedock(docker_oracle, 0, "", "", kubedock.log, reference=True)
    expected_code, expected = _build(oracle, str(context))
    assert expected_code == code
    assert expected.splitlines()[-1] == output.splitlines()[-1]
    assert _sandbox_pods(kubedock, cluster) == []


def test_a_client_that_goes_away_leaves_no_pod(kubedock: Kubedock, cluster: Any,
                                               tmp_path: Path) -> None:
    context = _context(tmp_path, "FROM busybox:1.36\nRUN echo started; sleep 300\n", {})
    process = subprocess.Popen(["docker", "build", "--no-cache", str(context)],
                               env=kubedock.env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    assert process.stdout is not None
    with process.stdout:
        try:
            for line in process.stdout:
                if line.strip() == b"started":  # the step runs
                    break
            assert _sandbox_pods(kubedock, cluster) != []
        finally:
            process.kill()
            process.wait()
    deadline = time.monotonic() + 60
    while _sandbox_pods(kubedock, cluster) and time.monotonic() < deadline:
        time.sleep(1)
    assert _sandbox_pods(kubedock, cluster) == []


ONBUILD_PARENT = """\
FROM busybox:1.36
ONBUILD ENV T=1
ONBUILD RUN echo "trigger $T"
CMD ["true"]
"""
ONBUILD_CHILD = """\
FROM onbuild-parent:1
LABEL l=1
RUN printf 'h\\303\\251llo\\n'
RUN ["nosuchbinary"]
"""


def _stream(server: str, path: Path, **options: Any) -> list[Any]:
    """docker-py's raw build JSON, ids as placeholders (a step container's and an image's
    ids are 12 hex digits; `aux` has the whole image id). The step containers are removed
    (docker-py keeps them by default), so that the reference engine keeps none."""
    api = docker.APIClient(base_url=server, timeout=120)
    try:
        lines = list(api.build(path=str(path), nocache=True, decode=True,
                               **{"forcerm": True, **options}))
    finally:
        api.close()
    text = re.sub(r"sha256:[0-9a-f]{64}", "<id>", json.dumps(lines))
    return json.loads(re.sub(r"\b[0-9a-f]{12}\b", "<short>", text))  # type: ignore[no-any-return]


def test_onbuild_triggers_and_step_lines_stream_as_the_reference_engine_s(
        client: docker.DockerClient, kubedock: Kubedock, docker_oracle: str,
        tmp_path: Path) -> None:
    parent, child = tmp_path / "parent", tmp_path / "child"
    for path, dockerfile in ((parent, ONBUILD_PARENT), (child, ONBUILD_CHILD)):
        path.mkdir()
        _context(path, dockerfile, {})
    oracle = Kubedock(docker_oracle, 0, "", "", kubedock.log, reference=True)
    for server in (kubedock, oracle):
        code, output = _build(server, "-t", "onbuild-parent:1", str(parent))
        assert code == 0, output
    assert _config(kubedock, "onbuild-parent:1") == _config(oracle, "onbuild-parent:1")
    expected = _stream(docker_oracle, child)
    streamed = _stream(kubedock.host, child)
    assert streamed == expected
    assert {"stream": "trigger 1\n"} in streamed and {"stream": "h\u00e9llo\n"} in streamed
    assert "executable file not found" in streamed[-1]["error"]


STAGES = """\
FROM busybox:1.36 AS base
RUN echo out; sleep 0.5; echo err >&2; sleep 0.5; printf 'h\\303\\251\\n' >&2
FROM base AS test
LABEL a=b
RUN echo test >> /stage
FROM scratch AS empty
FROM busybox:1.36 AS final
CMD ["echo", "final"]
"""


def test_stages_labels_and_stderr_stream_as_the_reference_engine_s(
        client: docker.DockerClient, kubedock: Kubedock, docker_oracle: str,
        tmp_path: Path) -> None:
    _context(tmp_path, STAGES, {})
    oracle = Kubedock(docker_oracle, 0, "", "", kubedock.log, reference=True)
    labelled = {"tag": "staged-labels:1", "target": "test",
                "labels": {"z": "$A", "k 1": 'v "q"', "e": ""}}
    expected = _stream(docker_oracle, tmp_path, **labelled)
    streamed = _stream(kubedock.host, tmp_path, **labelled)
    assert streamed == expected
    # The label steps, and stderr in red piece by piece, each stage's id as `aux`.
    assert {"stream": "Step 7/8 : LABEL k 1=v \"q\""} in streamed
    assert {"stream": "\x1b[91merr\n\x1b[0m"} in streamed
    assert {"stream": "\x1b[91mh\u00e9\n\x1b[0m"} in streamed
    assert sum("aux" in line for line in streamed) == 2
    assert _config(kubedock, "staged-labels:1") == _config(oracle, "staged-labels:1")
    # The first RUN changes nothing: no layer, as with Docker.
    assert _layer_count(kubedock, "staged-labels:1") == _layer_count(oracle, "staged-labels:1")
    assert _stream(kubedock.host, tmp_path) == _stream(docker_oracle, tmp_path)


def test_add_host_entries_end_a_run_s_hosts_file(kubedock: Kubedock, docker_oracle: str,
                                                 tmp_path: Path) -> None:
    context = _context(tmp_path, "FROM busybox:1.36\n"
                       "RUN ping -c1 extra.test && cp /etc/hosts /hosts-file\n"
                       'CMD ["cat", "/hosts-file"]\n', {})
    oracle = Kubedock(docker_oracle, 0, "", "", kubedock.log, reference=True)
    for server in (kubedock, oracle):
        code, output = _build(server, "-t", "added-hosts:1", "--no-cache", "--add-host",
                              "extra.test:127.0.0.1", "--add-host", "six.test:::1", str(context))
        assert code == 0, output
    ran = docker_cli(kubedock, "run", "--rm", "added-hosts:1")
    assert ran.returncode == 0, ran.stderr
    expected = docker_cli(oracle, "run", "--rm", "added-hosts:1").stdout
    # Docker's own name line follows the added ones; the pod's comes before them.
    assert expected.splitlines()[-3:-1] == ran.stdout.splitlines()[-2:] == [
        b"127.0.0.1\textra.test", b"::1\tsix.test"]


def test_quiet_failing_build_streams_as_the_reference_engine_s(
        client: docker.DockerClient, kubedock: Kubedock, docker_oracle: str,
        tmp_path: Path) -> None:
    _context(tmp_path, "FROM busybox:1.36 AS a\nRUN echo a > /a\nFROM a\nRUN exit 2\n", {})
    # -q holds the output back, and sends it all the same when the build fails.
    streamed = _stream(kubedock.host, tmp_path, quiet=True)
    assert streamed == _stream(docker_oracle, tmp_path, quiet=True)
    assert {"aux": {"ID": "<id>"}} in streamed and streamed[-1]["errorDetail"]["code"] == 2
