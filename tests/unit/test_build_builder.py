"""The builder against a fake sandbox and a fake image source: configs, layers, stages, the
cache and errors."""

from __future__ import annotations

import contextlib
import io
import json
import re
import tarfile
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubedock.build import (
    BaseImage,
    BuildContext,
    Builder,
    BuildFailed,
    BuildOptions,
    BuiltImage,
    Layer,
    LayerCache,
    StepCommand,
    StepNotStarted,
    parse_dockerfile,
)

BASE_CONFIG = {"architecture": "amd64", "os": "linux",
               "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
               "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "b" * 64]},
               "history": [{"created_by": "base"}]}
BASE_LAYER = Layer("sha256:" + "b" * 64, "sha256:" + "c" * 64, 10,
                   "application/vnd.oci.image.layer.v1.tar+gzip", repository="library/busybox")


def _base_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in {"etc/os": b"base", "etc/gone": b"x", "bin/tool": b"t",
                           "etc/passwd": b"app:x:1000:1001::/home/app:/bin/sh\n",
                           "etc/group": b"staff:x:50:\n"}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


BASE_TAR = _base_tar()


class FakeImages:
    def __init__(self) -> None:
        self.asked: list[tuple[str, bool]] = []
        self.triggers: list[str] = []  # the base image's OnBuild
        self.known: dict[str, Any] = {}  # config documents of images known by name

    async def base(self, name: str, *, pull: bool) -> BaseImage:
        self.asked.append((name, pull))
        if name.startswith("nosuch"):
            raise BuildFailed(f"pull access denied for {name}")
        config = {**BASE_CONFIG, "config": {**BASE_CONFIG["config"],  # type: ignore[dict-item]
                                            "OnBuild": self.triggers or None}}
        return BaseImage("sha256:" + "a" * 64, config, (BASE_LAYER,))

    @contextlib.asynccontextmanager
    async def open_layer(self, layer: Layer) -> AsyncIterator[AsyncIterable[bytes]]:
        async def chunks() -> AsyncIterator[bytes]:
            yield BASE_TAR
        yield chunks()

    async def known_config(self, name: str) -> Any:
        return self.known.get(name)


class FakeSandbox:
    def __init__(self, log: list[Any], exit_code: int, extra: dict[str, bytes],
                 output: list[bytes] | None, not_started: str | None) -> None:
        self.extra = extra
        self.log = log
        self.exit_code = exit_code
        self.output = output
        self.not_started = not_started
        self.runs = 0
        self.changes = True  # whether a RUN changes the filesystem

    async def reset(self) -> None:
        self.log.append("reset")

    async def apply_layer(self, source: AsyncIterable[bytes]) -> None:
        self.log.append(("apply", b"".join([chunk async for chunk in source])[:10]))

    async def run(self, command: StepCommand, stdout: Callable[[bytes], Awaitable[None]],
                  stderr: Callable[[bytes], Awaitable[None]]) -> int:
        self.runs += 1
        self.log.append(("run", command))
        if self.not_started is not None:
            raise StepNotStarted(self.not_started)
        for piece in self.output or [b"out of " + command.argv[-1].encode() + b"\n"]:
            # b"E:" marks a piece of stderr.
            await (stderr(piece[2:]) if piece.startswith(b"E:") else stdout(piece))
        return self.exit_code

    async def snapshot(self, sink: Callable[[bytes], Awaitable[None]]) -> None:
        await sink(_tar({f"ran-{self.runs}": b"x", **self.extra} if self.changes else {}))


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1700000000, 0o640
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.cache = LayerCache()
        self.images = FakeImages()
        self.log: list[Any] = []
        self.opened = 0
        self.exit_code = 0
        self.snapshot_extra: dict[str, bytes] = {}
        self.run_output: list[bytes] | None = None  # what each RUN prints, piece by piece
        self.not_started: str | None = None  # why a RUN's program does not start
        self.run_changes = True  # whether a RUN changes the filesystem
        # The last build's output, message by message, and the ids it announced as `<aux id>`.
        self.messages: list[str] = []

    @contextlib.asynccontextmanager
    async def sandboxes(self) -> AsyncIterator[FakeSandbox]:
        self.opened += 1
        self.log.append("open")
        sandbox = FakeSandbox(self.log, self.exit_code, self.snapshot_extra, self.run_output,
                              self.not_started)
        sandbox.changes = self.run_changes
        try:
            yield sandbox
        finally:
            self.log.append("close")

    async def build(self, dockerfile: str, files: dict[str, bytes] | None = None,
                    **options: Any) -> tuple[BuiltImage, str]:
        context_path = self.tmp_path / "context.tar"
        context_path.write_bytes(_tar({"Dockerfile": dockerfile.encode(), **(files or {})}))
        output: list[str] = []
        self.messages = []

        async def emit(text: str) -> None:
            output.append(text)
            self.messages.append(text)

        async def emit_id(image_id: str) -> None:
            self.messages.append(f"<aux {image_id}>")

        with context_path.open("rb") as file:
            context = BuildContext(file)
            context.use_dockerignore()
            try:
                built = await Builder(parse_dockerfile(dockerfile), context,
                                      BuildOptions(**options), self.images,
                                      self.sandboxes, self.cache, emit,
                                      emit_id=emit_id).build()
            finally:
                context.close()
        return built, "".join(output)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.cache.clear()


def _config(built: BuiltImage) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(built.config)
    return document


DEMO = """\
ARG BASE=busybox:1.36
FROM $BASE AS first
ARG WHO=world
ENV GREETING="hi ${WHO}" OTHER=${UNSET:-dflt}
LABEL a=b
COPY a.txt /app/
WORKDIR /app
EXPOSE 8080
HEALTHCHECK --interval=5s CMD cat /app/a.txt
CMD ["cat", "/app/a.txt"]
"""


async def test_a_build_without_run_makes_the_config_docker_makes(harness: Harness) -> None:
    built, output = await harness.build(DEMO, {"a.txt": b"hello\n"},
                                        build_args={"WHO": "you", "NOPE": "x"})
    config = _config(built)["config"]
    # As the reference engine's inspect shows the same build.
    assert config["Env"] == ["PATH=/bin", "GREETING=hi you", "OTHER=dflt"]
    assert config["ExposedPorts"] == {"8080/tcp": {}}
    assert config["Cmd"] == ["cat", "/app/a.txt"]
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "cat /app/a.txt"],
                                     "Interval": 5000000000}
    assert config["WorkingDir"] == "/app" and config["Labels"] == {"a": "b"}
    assert harness.images.asked == [("busybox:1.36", False)]
    assert harness.opened == 0  # no RUN, no sandbox
    assert output.startswith("Step 1/10 : ARG BASE=busybox:1.36\n"
                             "Step 2/10 : FROM $BASE AS first\n ---> ")
    assert output.endswith("[Warning] One or more build-args [NOPE] were not consumed\n")
    assert built.id.startswith("sha256:")
    assert built.layers[0] == BASE_LAYER and len(built.layers) == 2
    diff_ids = _config(built)["rootfs"]["diff_ids"]
    assert diff_ids == [BASE_LAYER.diff_id, built.layers[1].diff_id]


async def test_a_copy_layer_holds_the_files_with_their_parents(harness: Harness) -> None:
    built, _ = await harness.build("FROM busybox:1.36\nCOPY --chown=5:6 a.txt dir /app/\n"
                                   "COPY a.txt /renamed\n",
                                   {"a.txt": b"hello\n", "dir/inner/b": b"b"})
    first, second = (layer.path for layer in built.layers[1:])
    assert first is not None and second is not None
    with tarfile.open(first) as layer:
        members = {m.name: m for m in layer.getmembers()}
    assert sorted(members) == ["app", "app/a.txt", "app/inner", "app/inner/b"]
    assert members["app"].isdir() and members["app"].uid == 0
    assert (members["app/a.txt"].uid, members["app/a.txt"].gid) == (5, 6)
    assert members["app/a.txt"].mode == 0o640 and members["app/a.txt"].mtime == 1700000000
    with tarfile.open(second) as layer:
        assert [m.name for m in layer.getmembers()] == ["renamed"]
        extracted = layer.extractfile("renamed")
        assert extracted is not None and extracted.read() == b"hello\n"


async def test_dockerignore_hides_files_from_copy(harness: Harness) -> None:
    with pytest.raises(BuildFailed, match="file not found in build context"):
        await harness.build("FROM x\nCOPY secret /\n",
                            {".dockerignore": b"secret\n", "secret": b"s"})


async def test_run_opens_the_sandbox_applies_the_layers_and_keeps_a_snapshot(
        harness: Harness) -> None:
    built, output = await harness.build(
        "FROM busybox:1.36\nARG V=1\nENV E=2\nCOPY a.txt /\nUSER 7\nRUN echo $V\n"
        "RUN [\"true\"]\n", {"a.txt": b"a"})
    assert harness.log[:4] == ["open", "reset", ("apply", BASE_TAR[:10]), harness.log[3]]
    commands = [entry[1] for entry in harness.log if entry[0] == "run"]
    assert commands[0] == StepCommand(("/bin/sh", "-c", "echo $V"),
                                      (("V", "1"), ("PATH", "/bin"), ("E", "2")), "7", "/")
    assert commands[1].argv == ("true",)
    # The second RUN needs no layer applied again: the sandbox holds the stage.
    assert [e for e in harness.log if e == "reset"] == ["reset"]
    assert harness.log[-1] == "close"
    assert "out of echo $V\n" in output
    assert len(built.layers) == 4


async def test_an_unchanged_rebuild_runs_nothing(harness: Harness) -> None:
    dockerfile = "FROM busybox:1.36\nCOPY a.txt /\nRUN make\nCMD [\"x\"]\n"
    first, _ = await harness.build(dockerfile, {"a.txt": b"a"})
    second, output = await harness.build(dockerfile, {"a.txt": b"a"})
    assert second.id == first.id and harness.opened == 1
    assert output.count(" ---> Using cache\n") == 3
    changed, _ = await harness.build(dockerfile, {"a.txt": b"b"})
    assert changed.id != first.id and harness.opened == 2
    await harness.build(dockerfile, {"a.txt": b"a"}, no_cache=True)
    assert harness.opened == 3


async def test_a_failing_run_fails_the_build_with_its_code(harness: Harness) -> None:
    harness.exit_code = 3
    with pytest.raises(BuildFailed) as raised:
        await harness.build("FROM busybox:1.36\nRUN false\n")
    assert raised.value.message == "The command '/bin/sh -c false' returned a non-zero code: 3"
    assert raised.value.code == 3
    assert harness.log[-1] == "close"


async def test_stages_and_target(harness: Harness) -> None:
    dockerfile = ("FROM busybox:1.36 AS base\nENV STAGE=base\n"
                  "FROM base AS test\nENV STAGE=test\nCMD [\"test\"]\n"
                  "FROM scratch AS final\nCMD [\"final\"]\n")
    built, output = await harness.build(dockerfile, target="test")
    config = _config(built)["config"]
    assert config["Env"] == ["PATH=/bin", "STAGE=test"] and config["Cmd"] == ["test"]
    assert "Step 5/5" in output
    final, _ = await harness.build(dockerfile)
    assert _config(final)["config"]["Cmd"] == ["final"] and final.layers == ()
    with pytest.raises(BuildFailed, match="failed to reach build target nosuch"):
        await harness.build(dockerfile, target="nosuch")


async def test_entrypoint_resets_an_inherited_cmd(harness: Harness) -> None:
    built, _ = await harness.build("FROM busybox:1.36\nENTRYPOINT [\"/x\"]\n")
    assert _config(built)["config"]["Cmd"] is None
    built, _ = await harness.build("FROM busybox:1.36\nCMD [\"a\"]\nENTRYPOINT /x\n")
    config = _config(built)["config"]
    assert config["Cmd"] == ["a"] and config["Entrypoint"] == ["/bin/sh", "-c", "/x"]


@pytest.mark.parametrize(("dockerfile", "message"), [
    ("FROM --platform=linux/arm64 x\n", "FROM --platform is not supported"),
    ("FROM x\nADD http://example.invalid/a /\n", "ADD from a URL is not supported"),
    ("FROM x\nCOPY --from=nosuch a /\n", "pull access denied for nosuch"),
    ("FROM x\nADD --from=x a /\n", "Unknown flag: from"),
    ("FROM x\nRUN --mount=type=cache,target=/c true\n", "RUN --mount is not supported"),
    ("FROM x\nFOO bar\n", "unknown instruction: FOO"),
    ("ENV A=1\nFROM x\n", "Please provide a source image with `from` prior to commit"),
    ("FROM nosuch\n", "pull access denied for nosuch"),
    ("FROM x\nENV A=${B-c}\n", "missing ':' in substitution"),
    ("ARG A=${B-c}\nFROM x\n", "missing ':' in substitution"),
])
async def test_what_cannot_be_built_is_refused_by_name(harness: Harness, dockerfile: str,
                                                       message: str) -> None:
    with pytest.raises(BuildFailed, match=message.replace("(", r"\(")):
        await harness.build(dockerfile)


async def test_copy_from_a_stage_reads_its_layers_whiteouts_applied(harness: Harness) -> None:
    # The sandbox's snapshot of the first RUN deletes etc/gone and adds ran-1.
    harness.snapshot_extra = {"etc/.wh.gone": b""}
    built, _ = await harness.build(
        "FROM busybox:1.36 AS builder\nRUN make\n"
        "FROM scratch\nCOPY --from=builder /etc /copied/\nCOPY --from=0 ran-1 /\n"
        "COPY --from=busybox:1.36 /bin/tool /t\n")
    layers = [layer.path for layer in built.layers]
    names = []
    for path in layers:
        assert path is not None
        with tarfile.open(path) as layer:
            names.append([m.name for m in layer.getmembers()])
    assert names == [["copied", "copied/group", "copied/os", "copied/passwd"], ["ran-1"], ["t"]]


@pytest.mark.parametrize(("chown", "owner"), [("app", (1000, 1000)), ("app:staff", (1000, 50)),
                                              ("7:staff", (7, 50)), ("7", (7, 7))])
async def test_chown_names_are_the_stage_s(harness: Harness, chown: str,
                                           owner: tuple[int, int]) -> None:
    built, _ = await harness.build(f"FROM busybox:1.36\nCOPY --chown={chown} a /\n",
                                   {"a": b"a"})
    assert built.layers[1].path is not None
    with tarfile.open(built.layers[1].path) as layer:
        [member] = layer.getmembers()
    assert (member.uid, member.gid) == owner


async def test_chown_of_an_unknown_user_fails(harness: Harness) -> None:
    with pytest.raises(BuildFailed, match="unable to find user nobody"):
        await harness.build("FROM busybox:1.36\nCOPY --chown=nobody a /\n", {"a": b"a"})


async def test_add_extracts_a_local_archive_and_copies_other_files(harness: Harness) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as packed:
        info = tarfile.TarInfo("inner/x")
        info.size = 1
        packed.addfile(info, io.BytesIO(b"x"))
    built, _ = await harness.build("FROM busybox:1.36\nADD pack.tgz plain /opt/\n",
                                   {"pack.tgz": archive.getvalue(), "plain": b"p"})
    assert built.layers[1].path is not None
    with tarfile.open(built.layers[1].path) as layer:
        assert sorted(m.name for m in layer.getmembers()) == [
            "opt", "opt/inner", "opt/inner/x", "opt/plain"]


async def test_maintainer_is_the_author(harness: Harness) -> None:
    built, _ = await harness.build("FROM busybox:1.36\nMAINTAINER Ann <ann@example.org>\n")
    assert _config(built)["author"] == "Ann <ann@example.org>"


def _shape(messages: list[str]) -> list[str]:
    """The messages with the step containers' and images' ids as placeholders (one id per
    step container, checked to be the same in its two lines)."""
    shaped, containers, shown = [], {}, ""
    for message in messages:
        if message.startswith("<aux "):
            assert message[12:24] == shown  # a stage's id is the one its last step showed
            message = "<aux>"
        shown = message[6:18]
        message = re.sub(r"^ ---> [0-9a-f]{12}\n$", " ---> <image>\n", message)
        match = re.match(r"^( ---> Running in |Removing intermediate container )([0-9a-f]{12})\n$",
                         message)
        if match:
            number = containers.setdefault(match.group(2), len(containers))
            message = f"{match.group(1)}<c{number}>\n"
        shaped.append(message)
    return shaped


async def test_each_kind_of_step_says_what_the_reference_engine_says(harness: Harness) -> None:
    dockerfile = ("ARG B=busybox:1.36\nFROM $B\nENV A=1\nCOPY a.txt /\nRUN make\n"
                  "FROM scratch\nLABEL l=1\n")
    await harness.build(dockerfile, {"a.txt": b"a"})
    # As the reference engine's classic builder sent it.
    assert _shape(harness.messages) == [
        "Step 1/7 : ARG B=busybox:1.36", "\n",
        "Step 2/7 : FROM $B", "\n", " ---> <image>\n",
        "Step 3/7 : ENV A=1", "\n", " ---> Running in <c0>\n",
        "Removing intermediate container <c0>\n", " ---> <image>\n",
        "Step 4/7 : COPY a.txt /", "\n", " ---> <image>\n",
        "Step 5/7 : RUN make", "\n", " ---> Running in <c1>\n", "out of make\n",
        "Removing intermediate container <c1>\n", " ---> <image>\n", "<aux>",
        "Step 6/7 : FROM scratch", "\n", " ---> \n",
        "Step 7/7 : LABEL l=1", "\n", " ---> Running in <c2>\n",
        "Removing intermediate container <c2>\n", " ---> <image>\n", "<aux>"]
    assert harness.messages[4] == " ---> aaaaaaaaaaaa\n"  # the base image's id
    await harness.build(dockerfile, {"a.txt": b"a"})
    assert _shape(harness.messages)[5:] == [
        "Step 3/7 : ENV A=1", "\n", " ---> Using cache\n", " ---> <image>\n",
        "Step 4/7 : COPY a.txt /", "\n", " ---> Using cache\n", " ---> <image>\n",
        "Step 5/7 : RUN make", "\n", " ---> Using cache\n", " ---> <image>\n", "<aux>",
        "Step 6/7 : FROM scratch", "\n", " ---> \n",
        "Step 7/7 : LABEL l=1", "\n", " ---> Using cache\n", " ---> <image>\n", "<aux>"]


async def test_build_labels_are_steps_at_the_end_of_the_target_stage(harness: Harness) -> None:
    dockerfile = "FROM busybox:1.36 AS one\nENV A=1\nFROM one AS two\nFROM scratch\n"
    built, _ = await harness.build(dockerfile, target="two",
                                   labels={"z": "$A", "k 1": 'v "q"', "e": ""})
    # As the reference engine sent it: name order, values as they are.
    assert _shape(harness.messages)[-19:] == [
        "Step 3/6 : FROM one AS two", "\n", " ---> <image>\n",
        "Step 4/6 : LABEL e=", "\n", " ---> Running in <c1>\n",
        "Removing intermediate container <c1>\n", " ---> <image>\n",
        "Step 5/6 : LABEL k 1=v \"q\"", "\n", " ---> Running in <c2>\n",
        "Removing intermediate container <c2>\n", " ---> <image>\n",
        "Step 6/6 : LABEL z=$A", "\n", " ---> Running in <c3>\n",
        "Removing intermediate container <c3>\n", " ---> <image>\n", "<aux>"]
    document = _config(built)
    assert document["config"]["Labels"] == {"e": "", "k 1": 'v "q"', "z": "$A"}
    assert [entry["created_by"] for entry in document["history"][-3:]] == [
        "/bin/sh -c #(nop) LABEL e=", '/bin/sh -c #(nop) LABEL k 1=v "q"',
        "/bin/sh -c #(nop) LABEL z=$A"]
    assert harness.messages[-1] == f"<aux {built.id}>"


async def test_run_output_is_decoded_across_its_pieces(harness: Harness) -> None:
    # "é" is two bytes; the second piece starts with the second.
    harness.run_output = [b"h\xc3", b"\xa9llo \xff\n", b"\xe2\x82"]
    await harness.build("FROM busybox:1.36\nRUN printf x\n")
    assert "".join(harness.messages).count("héllo \ufffd\n\ufffd") == 1


async def test_run_stderr_comes_in_red_piece_by_piece(harness: Harness) -> None:
    harness.run_output = [b"out\n", b"E:err \xc3", b"E:\xa9\n", b"E:\xe2", b"more\n"]
    await harness.build("FROM busybox:1.36\nRUN printf x\n")
    assert harness.messages[6:11] == ["out\n", "\x1b[91merr \x1b[0m", "\x1b[91m\u00e9\n\x1b[0m",
                                     "more\n", "\x1b[91m\ufffd\x1b[0m"]


async def test_a_failing_run_says_nothing_more(harness: Harness) -> None:
    harness.exit_code = 2
    with pytest.raises(BuildFailed):
        await harness.build("FROM busybox:1.36\nRUN [\"false\"]\n")
    assert _shape(harness.messages)[-2:] == [" ---> Running in <c0>\n", "out of false\n"]


async def test_a_run_whose_program_does_not_start_is_a_plain_error(harness: Harness) -> None:
    harness.not_started = 'failed to create shim task: ... exec: "nosuch": ...: unknown'
    with pytest.raises(BuildFailed) as raised:
        await harness.build("FROM busybox:1.36\nRUN [\"nosuch\"]\n")
    assert (raised.value.message, raised.value.code) == (harness.not_started, None)
    assert harness.log[-1] == "close"


async def test_onbuild_keeps_its_trigger_as_written(harness: Harness) -> None:
    built, _ = await harness.build("FROM busybox:1.36\nONBUILD RUN make\n"
                                   "ONBUILD   run  echo  \"x\"  $T\n")
    assert _config(built)["config"]["OnBuild"] == ["RUN make", 'run  echo  "x"  $T']
    assert harness.opened == 0


async def test_a_base_image_s_triggers_run_after_from(harness: Harness) -> None:
    harness.images.triggers = ["ENV T=1", "COPY a.txt /f", "run  echo  $T"]
    dockerfile = "FROM busybox:1.36\nLABEL l=1\n"
    built, _ = await harness.build(dockerfile, {"a.txt": b"a"})
    config = _config(built)["config"]
    assert config["OnBuild"] is None and config["Env"] == ["PATH=/bin", "T=1"]
    assert [e[1].argv for e in harness.log if e[0] == "run"] == [("/bin/sh", "-c", "echo  $T")]
    assert len(built.layers) == 3  # COPY's and RUN's
    # As the reference engine sent it: the triggers' steps, one image id after them all.
    assert _shape(harness.messages)[:13] == [
        "Step 1/2 : FROM busybox:1.36", "\n", "# Executing 3 build trigger", "s", "\n",
        " ---> Running in <c0>\n", "Removing intermediate container <c0>\n",
        " ---> Running in <c1>\n", "out of echo  $T\n", "Removing intermediate container <c1>\n",
        " ---> <image>\n", "Step 2/2 : LABEL l=1", "\n"]
    again, _ = await harness.build(dockerfile, {"a.txt": b"a"})
    assert again.id == built.id
    assert _shape(harness.messages)[5:9] == [" ---> Using cache\n"] * 3 + [" ---> <image>\n"]


async def test_a_stage_s_triggers_run_in_the_stage_from_it(harness: Harness) -> None:
    built, _ = await harness.build("FROM busybox:1.36 AS base\nONBUILD ENV T=1\n"
                                   "FROM base\nCMD [\"x\"]\n")
    config = _config(built)["config"]
    assert config["Env"] == ["PATH=/bin", "T=1"] and config["OnBuild"] is None
    assert "# Executing 1 build trigger" in harness.messages and "s" not in harness.messages


async def test_a_trigger_that_is_no_instruction_fails_the_build(harness: Harness) -> None:
    harness.images.triggers = ["NOPE x"]
    with pytest.raises(BuildFailed) as raised:
        await harness.build("FROM busybox:1.36\n")
    assert (raised.value.message, raised.value.code) == ("unknown instruction: NOPE", None)


@pytest.mark.parametrize(("trigger", "message"), [
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD from x", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD MAINTAINER x", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("ONBUILD", "ONBUILD requires at least one argument"),
])
async def test_onbuild_refuses_what_docker_refuses_before_building(
        harness: Harness, trigger: str, message: str) -> None:
    # Docker answers these with a 400, as for unknown instructions.
    dockerfile = f"FROM busybox:1.36\n{trigger}\n"
    with pytest.raises(BuildFailed) as raised:
        Builder(parse_dockerfile(dockerfile), None, BuildOptions(), harness.images,  # type: ignore[arg-type]
                harness.sandboxes, harness.cache, _no_output).check()
    assert raised.value.message == f"dockerfile parse error line 2: {message}"


async def test_heredocs_are_refused_as_the_classic_builder_does(harness: Harness) -> None:
    # The classic builder knows no heredocs: their first line is an unknown instruction.
    dockerfile = "FROM busybox:1.36\nRUN <<EOF\necho hi\nEOF\n"
    with pytest.raises(BuildFailed) as raised:
        Builder(parse_dockerfile(dockerfile), None, BuildOptions(), harness.images,  # type: ignore[arg-type]
                harness.sandboxes, harness.cache, _no_output).check()
    assert raised.value.message == "dockerfile parse error line 3: unknown instruction: ECHO"


async def _no_output(text: str) -> None:
    raise AssertionError(f"unexpected output {text!r}")


@pytest.mark.parametrize(("options", "removed"), [
    ({}, [True, False, False]),
    ({"remove": False}, [False, False, False]),
    ({"remove": False, "force_remove": True}, [True, True, True]),
])
async def test_removing_step_containers_is_said_as_rm_and_forcerm_ask(
        harness: Harness, options: dict[str, bool], removed: list[bool]) -> None:
    said = []
    harness.exit_code = 1
    for dockerfile, not_started in (("ENV A=1", None), ("RUN make", None),
                                    ("RUN [\"x\"]", "failed to create shim task: ...")):
        harness.not_started = not_started
        with contextlib.suppress(BuildFailed):  # the RUN steps fail
            await harness.build(f"FROM busybox:1.36\n{dockerfile}\n", **options)
        said.append("Removing intermediate container <c0>\n" in _shape(harness.messages))
    assert said == removed


COPY_A = "FROM busybox:1.36\nCOPY a.txt /\n"
COPY_B = "FROM busybox:1.36\nCOPY b.txt /\n"


async def _capped(harness: Harness, layers: float) -> None:
    """Gives the harness a cache with room for this many COPY layers."""
    built, _ = await harness.build(COPY_A, {"a.txt": b"a" * 100})
    layer = built.layers[-1]
    assert layer.path is not None
    harness.cache.clear()
    harness.cache = LayerCache(max_bytes=int(layer.size * layers))


def _directory(built: BuiltImage) -> Path:
    path = built.layers[-1].path
    assert path is not None
    return path.parent


async def _cached_steps(harness: Harness, dockerfile: str, name: str) -> int:
    _, output = await harness.build(dockerfile, {name: b"a" * 100})
    return output.count("Using cache")


async def test_the_least_recently_used_layers_go_over_the_cap(harness: Harness) -> None:
    await _capped(harness, 1.5)
    with harness.cache.hold():
        built, _ = await harness.build(COPY_A, {"a.txt": b"a" * 100})
    directory = _directory(built)
    with harness.cache.hold():
        await harness.build(COPY_B, {"b.txt": b"a" * 100})
        assert len(list(directory.iterdir())) == 2  # nothing goes during a build
    assert len(list(directory.iterdir())) == 1
    assert await _cached_steps(harness, COPY_B, "b.txt") == 1
    # A's layer went, and the step that names it.
    assert await _cached_steps(harness, COPY_A, "a.txt") == 0


async def test_a_layer_a_cache_hit_used_stays(harness: Harness) -> None:
    await _capped(harness, 2.5)
    for dockerfile, name in ((COPY_A, "a.txt"), (COPY_B, "b.txt"), (COPY_A, "a.txt"),
                             ("FROM busybox:1.36\nCOPY c.txt /\n", "c.txt")):
        with harness.cache.hold():
            await _cached_steps(harness, dockerfile, name)
    assert await _cached_steps(harness, COPY_A, "a.txt") == 1  # B went, not A, used after it
    assert await _cached_steps(harness, COPY_B, "b.txt") == 0


async def test_files_no_step_names_go_first(harness: Harness) -> None:
    await _capped(harness, 1.5)
    with harness.cache.hold():
        built, _ = await harness.build(COPY_A, {"a.txt": b"a" * 100})
        directory = _directory(built)
        harness.cache.new_layer_path().write_bytes(b"x" * 10_000)  # as a failed build leaves
    assert len(list(directory.iterdir())) == 1
    assert await _cached_steps(harness, COPY_A, "a.txt") == 1


async def test_cache_from_uses_only_steps_in_the_given_images_chains(harness: Harness) -> None:
    dockerfile = "FROM busybox:1.36\nENV FOO=bar\nRUN touch baz\nCOPY a.txt /\n"
    files = {"a.txt": b"a"}
    built, _ = await harness.build(dockerfile, files)
    harness.images.known = {"built:1": _config(built), "busybox:1.36": BASE_CONFIG}
    # As the reference engine: the steps of the image given are used, an image not known is
    # no source, nor one that only shares the base.
    for cache_from, cached in ((["built:1"], 3), (["nosuchtag"], 0), (["busybox:1.36"], 0),
                               (["nosuchtag", "built:1"], 3)):
        _, output = await harness.build(dockerfile, files, cache_from=tuple(cache_from))
        assert output.count("Using cache") == cached, cache_from
    partial, _ = await harness.build(dockerfile.replace("COPY a.txt", "COPY b.txt"),
                                     {**files, "b.txt": b"b"})
    harness.images.known["partial:1"] = _config(partial)
    _, output = await harness.build(dockerfile, files, cache_from=("partial:1",))
    assert output.count("Using cache") == 2  # ENV and RUN, which partial:1 was built on


async def test_extra_hosts_go_to_each_run_and_not_into_the_cache_key(harness: Harness) -> None:
    hosts = (("a.test", "127.0.0.1"),)
    await harness.build("FROM busybox:1.36\nRUN make\n", extra_hosts=hosts)
    [command] = [entry[1] for entry in harness.log if entry[0] == "run"]
    assert command.extra_hosts == hosts
    _, output = await harness.build("FROM busybox:1.36\nRUN make\n")
    assert output.count("Using cache") == 1  # as Docker: the hosts are not the step's config


async def test_proxy_build_args_reach_every_run_undeclared(harness: Harness) -> None:
    dockerfile = "FROM busybox:1.36\nARG http_proxy\nENV NO_PROXY=env\nRUN make\n"
    _, output = await harness.build(dockerfile, build_args={
        "HTTP_PROXY": "http://p", "http_proxy": "http://declared", "NO_PROXY": "arg",
        "FOO": "1"})
    [command] = [entry[1] for entry in harness.log if entry[0] == "run"]
    # Declared, an ARG as any other; given but not declared, at the end; ENV wins.
    assert command.env == (("http_proxy", "http://declared"), ("PATH", "/bin"),
                           ("NO_PROXY", "env"), ("HTTP_PROXY", "http://p"))
    # As Docker: no warning for them, and no part of the cache key.
    assert output.endswith("[Warning] One or more build-args [FOO] were not consumed\n")
    _, output = await harness.build(dockerfile, build_args={
        "HTTP_PROXY": "http://other", "http_proxy": "http://declared"})
    assert output.count("Using cache") == 3


async def test_a_run_that_changes_nothing_adds_no_layer(harness: Harness) -> None:
    harness.run_changes = False
    built, _ = await harness.build("FROM busybox:1.36\nRUN true\n")
    document = _config(built)
    # As Docker: the history says so, the layers stay the base's.
    assert document["rootfs"]["diff_ids"] == BASE_CONFIG["rootfs"]["diff_ids"]  # type: ignore[index]
    assert document["history"][-1]["empty_layer"] is True
    assert built.layers == (BASE_LAYER,)


async def test_a_stage_of_from_alone_is_its_base_s_id(harness: Harness) -> None:
    await harness.build("FROM busybox:1.36 AS a\nFROM a\nENV X=1\n")
    # As Docker: the base's own id (its config as the registry has it), not a digest of ours.
    assert harness.messages[:8] == [
        "Step 1/3 : FROM busybox:1.36 AS a", "\n", " ---> aaaaaaaaaaaa\n",
        f"<aux sha256:{'a' * 64}>", "Step 2/3 : FROM a", "\n", " ---> aaaaaaaaaaaa\n",
        "Step 3/3 : ENV X=1"]
