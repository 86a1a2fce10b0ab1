"""Docker's classic builder, interpreted by kubedock: each instruction changes the stage's image
config or adds a layer; only RUN needs the sandbox, opened at the first RUN that the cache does
not answer.

Every step's result is cached for the life of the kubedock instance under a key made of the
previous step's key, the instruction as expanded and, for COPY and ADD, the digest of the layer
the context gives: a rebuild of an unchanged Dockerfile runs nothing.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import copy
import hashlib
import itertools
import json
import posixpath
import re
import secrets
import shutil
import tarfile
import tempfile
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import attrs
import trio

from ..podside._users import UserError, resolve_user
from ..registry import host_platform_of_this_machine
from ._context import (
    BuildContext,
    ContextError,
    CopyOptions,
    LayerStack,
    digest_file,
    file_chunks,
    is_url,
)
from ._dockerfile import (
    KNOWN,
    Dockerfile,
    DockerfileError,
    Instruction,
    exec_form_of,
    parse_dockerfile,
    split_pairs,
)
from ._sandbox import Sandbox, SandboxFactory, StepCommand, StepNotStarted
from ._words import SubstitutionError, expand_word, expand_words

UNCOMPRESSED_LAYER = "application/vnd.oci.image.layer.v1.tar"
_DEFAULT_SHELL = ("/bin/sh", "-c")
_DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Build args every RUN gets without an ARG (Docker's built-in ones).
_PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                        "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})
# How many results of one step the cache keeps (rebuilds with --no-cache add one each).
_RESULTS_PER_STEP = 4
# What Docker's classic builder puts around each piece of a RUN's stderr.
_STDERR_COLOUR = ("\x1b[91m", "\x1b[0m")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_NANOSECONDS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                "m": 60_000_000_000, "h": 3_600_000_000_000}


class BuildFailed(Exception):
    """A build that stops; `message` is what Docker says, `code` the failing RUN's exit code
    (None for every other failure, as Docker gives none)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@attrs.frozen
class Layer:
    """One layer of an image: in a registry repository (a base image's) or a file kubedock
    made (uncompressed, its digest is its diff id)."""

    diff_id: str
    digest: str
    size: int
    media_type: str
    path: Path | None = None
    repository: Any = None  # where a base layer's blob is (the image source's business)


@attrs.frozen
class BaseImage:
    id: str
    config: Mapping[str, Any]  # the whole image config document
    layers: tuple[Layer, ...]


@attrs.frozen
class BuiltImage:
    id: str
    config: bytes
    layers: tuple[Layer, ...]


class ImageAccess(Protocol):
    async def base(self, name: str, *, pull: bool) -> BaseImage:
        """The image FROM names (raises BuildFailed with Docker's words when there is none)."""

    def open_layer(self, layer: Layer) -> AbstractAsyncContextManager[AsyncIterable[bytes]]:
        """A base layer's blob, streamed."""

    async def known_config(self, name: str) -> Mapping[str, Any] | None:
        """The config document of an image known here by `name` (no pull), None when none
        is."""


@attrs.frozen
class BuildOptions:
    dockerfile: str = "Dockerfile"
    build_args: Mapping[str, str | None] = attrs.field(factory=dict)
    labels: Mapping[str, str] = attrs.field(factory=dict)
    target: str = ""
    no_cache: bool = False
    # Docker's --cache-from: a step's cached result is used only when it is in the chain of
    # one of these images.
    cache_from: tuple[str, ...] = ()
    # Names and addresses a RUN finds in /etc/hosts (not part of the cache key, as in Docker).
    extra_hosts: tuple[tuple[str, str], ...] = ()
    pull: bool = False
    # Docker's `rm` and `forcerm`: whether the output says a step's container is removed
    # after a step that succeeded, and also after one that failed.
    remove: bool = True
    force_remove: bool = False


@attrs.define
class _State:
    """A stage's image as built so far."""

    document: dict[str, Any]  # the image config document
    layers: list[Layer]
    key: str  # the cache key of the step that made it


class LayerCache:
    """Step results by cache key, and the layer files they name: one directory per kubedock
    instance, made at the first layer and removed when the process exits.

    The files take at most `max_bytes` between builds: when the last build in progress ends
    (see `hold`), the least recently used go, and with them the steps that name them (a file
    no step names, such as one of a failed build, goes first)."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self._directory: Path | None = None
        # The latest results of each step, newest last (with --cache-from an older one may be
        # the one in the chain of the image given).
        self._steps: dict[str, list[_State]] = {}
        self._max_bytes = max_bytes
        self._clock = itertools.count(1)
        self._last_used: dict[Path, int] = {}
        self._holds = 0

    def get(self, key: str, accept: Callable[[_State], bool] = lambda state: True
            ) -> _State | None:
        """The newest result of the step that `accept` takes."""
        for state in reversed(self._steps.get(key, [])):
            if accept(state):
                self._use(*state.layers)
                return copy.deepcopy(state)
        return None

    def put(self, state: _State) -> None:
        self._use(*state.layers)
        results = self._steps.setdefault(state.key, [])
        results.append(copy.deepcopy(state))
        del results[:-_RESULTS_PER_STEP]

    def new_layer_path(self) -> Path:
        return Path(tempfile.mkstemp(dir=self._ensure_directory(), suffix=".tar")[1])

    def blob_path(self, digest: str) -> Path:
        """Where a downloaded base layer is kept."""
        path = self._ensure_directory() / f"blob-{digest.removeprefix('sha256:')}"
        self._last_used[path] = next(self._clock)
        return path

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """No file goes while a build holds the cache (it reads its layers until they are
        pushed); the last one to let go evicts what is over the cap."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if self._holds == 0:
                self.evict()

    def evict(self) -> int:
        """Removes the least recently used files until the rest fit the cap; the bytes freed."""
        if self._max_bytes is None or self._directory is None:
            return 0
        sizes = {path: path.stat().st_size for path in self._directory.iterdir()}
        named = {layer.path for results in self._steps.values() for state in results
                 for layer in state.layers}
        total, freed = sum(sizes.values()), 0
        gone: set[Path] = set()
        for path in sorted(sizes, key=lambda path: self._last_used.get(path, 0)
                           if path in named or path.name.startswith("blob-") else 0):
            if total - freed <= self._max_bytes:
                break
            path.unlink(missing_ok=True)
            self._last_used.pop(path, None)
            freed += sizes[path]
            gone.add(path)
        if gone:
            kept = {key: [state for state in results
                          if not any(layer.path in gone for layer in state.layers)]
                    for key, results in self._steps.items()}
            self._steps = {key: results for key, results in kept.items() if results}
        # Paths handed out that never became files (a download that failed).
        self._last_used = {path: tick for path, tick in self._last_used.items()
                           if path in sizes and path not in gone}
        return freed

    def _use(self, *layers: Layer) -> None:
        """The layers' files are the most recently used."""
        tick = next(self._clock)
        for layer in layers:
            if layer.path is not None:
                self._last_used[layer.path] = tick

    def _ensure_directory(self) -> Path:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="kubedock-build-"))
            atexit.register(shutil.rmtree, self._directory, True)
        return self._directory

    def clear(self) -> int:
        """Forgets every step and removes the layer files; the bytes freed."""
        freed = 0
        if self._directory is not None:
            freed = sum(path.stat().st_size for path in self._directory.iterdir())
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
        self._steps.clear()
        self._last_used.clear()
        return freed


Emit = Callable[[str], Awaitable[None]]


def _image_id(document: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(config_bytes(document)).hexdigest()


def config_bytes(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _scratch() -> dict[str, Any]:
    platform = host_platform_of_this_machine()  # the nodes' (kubedock's own, as for pulls)
    return {"architecture": platform.architecture, "os": platform.os,
            "config": {"Env": [_DEFAULT_PATH]},
            "rootfs": {"type": "layers", "diff_ids": []}, "history": []}


def parse_duration(text: str, flag: str) -> int:
    """A Go duration (``30s``, ``1m30s``) in nanoseconds."""
    position, total = 0, 0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += int(float(match.group(1)) * _NANOSECONDS[match.group(2)])
        position = match.end()
    if position != len(text) or not text:
        raise BuildFailed(f"Error parsing {flag}: time: invalid duration \"{text}\"")
    return total


class Builder:
    def __init__(self, dockerfile: Dockerfile, context: BuildContext, options: BuildOptions,
                 images: ImageAccess, sandboxes: SandboxFactory, cache: LayerCache,
                 emit: Emit, *, emit_id: Emit | None = None) -> None:
        """`emit` takes the build's output text; `emit_id` the image id each stage ends with
        (Docker's `aux` messages)."""
        self._dockerfile = dockerfile
        self._context = context
        self._options = options
        self._images = images
        self._sandboxes = sandboxes
        self._cache = cache
        self._emit = emit
        self._emit_id = emit_id
        self._stages: dict[str, _State] = {}
        # The id each named stage ended with, as shown (a stage of FROM alone: its base's).
        self._stage_ids: dict[str, str] = {}
        self._stage_list: list[_State] = []
        self._sandbox: Sandbox | None = None
        self._sandbox_holds: tuple[int, int] | None = None  # (stage index, layers applied)
        self._used_args: set[str] = set()
        # ENTRYPOINT clears the CMD a stage inherited, not one it set itself (as Docker).
        self._cmd_set_in_stage = False
        self._exit = AsyncExitStack()
        self._cache_sources: list[Mapping[str, Any]] = []

    async def build(self) -> BuiltImage:
        for name in self._options.cache_from:
            # As Docker: an image not known here is no source (and no error).
            source = await self._images.known_config(name)
            if source is not None:
                self._cache_sources.append(source)
        async with self._exit:
            try:
                state = await self._run()
            except (SubstitutionError, DockerfileError, ContextError) as error:
                raise BuildFailed(str(error)) from None
        document = state.document
        unused = sorted(set(self._options.build_args) - self._used_args - _PROXY_ARGS)
        if unused:
            await self._emit(f"[Warning] One or more build-args [{' '.join(unused)}] were not "
                             "consumed\n")
        return BuiltImage(_image_id(document), config_bytes(document), tuple(state.layers))

    def check(self) -> None:
        """What can be refused before anything is built (Docker answers it as an error
        response, not in the build's output)."""
        self._stages_to_build()

    def _stages_to_build(self) -> tuple[list[Instruction], list[list[Instruction]]]:
        global_args: list[Instruction] = []
        stages: list[list[Instruction]] = []
        for instruction in self._dockerfile.instructions:
            if instruction.keyword not in KNOWN:
                raise BuildFailed(f"dockerfile parse error line {instruction.line}: unknown "
                                  f"instruction: {instruction.keyword.upper()}")
            if instruction.keyword == "onbuild":
                _check_trigger(instruction)
            if instruction.keyword == "from":
                stages.append([instruction])
            elif not stages:
                if instruction.keyword != "arg":
                    raise BuildFailed("Please provide a source image with `from` prior to "
                                      "commit")
                global_args.append(instruction)
            else:
                stages[-1].append(instruction)
        if not stages:
            raise BuildFailed("failed to parse Dockerfile: file with no instructions")
        target = self._options.target
        if target:
            names = [_stage_name(stage[0]) for stage in stages]
            if target.lower() not in names:
                raise BuildFailed(f"failed to reach build target {target} in Dockerfile")
            stages = stages[:names.index(target.lower()) + 1]
        return global_args, stages

    async def _run(self) -> _State:
        global_args, stages = self._stages_to_build()
        # As Docker: the build's labels are LABEL steps of their own at the end of the last
        # stage built, in name order, their values taken as they are.
        labels = {_build_label(name, value): (name, value)
                  for name, value in sorted(self._options.labels.items())}
        total = len(global_args) + sum(map(len, stages)) + len(labels)
        step = 0
        meta: dict[str, str] = {}
        escape = self._dockerfile.escape
        for instruction in global_args:
            step += 1
            await self._emit_step(step, total, instruction)
            name, value = self._arg(instruction, meta, {})
            if value is not None:
                meta[name] = value
        state: _State | None = None
        for index, stage in enumerate(stages):
            args: dict[str, str] = {}
            self._cmd_set_in_stage = False
            last = index == len(stages) - 1
            for instruction in [*stage, *(labels if last else [])]:
                step += 1
                await self._emit_step(step, total, instruction)
                if instruction.keyword == "from":
                    state, shown_id = await self._from(index, instruction, args, meta)
                elif instruction in labels:
                    assert state is not None
                    label = labels[instruction]
                    state = await self._cached_change(state, instruction, dict([label]),
                                                      _labelled(label))
                    shown_id = _image_id(state.document)
                else:
                    assert state is not None
                    state = await self._step(index, state, instruction, args, escape, meta)
                    shown_id = _image_id(state.document)
                await self._emit(f" ---> {shown_id[7:19]}\n")
            assert state is not None
            if shown_id and self._emit_id is not None:  # a stage of scratch alone has none
                await self._emit_id(shown_id)
            self._stage_list.append(state)
            name = _stage_name(stage[0])
            if name:
                self._stages[name] = state
                self._stage_ids[name] = shown_id
        assert state is not None
        return state

    def _cached(self, key: str) -> _State | None:
        if self._options.no_cache:
            return None
        if not self._options.cache_from:
            return self._cache.get(key)
        return self._cache.get(key, lambda state: any(
            _in_chain(state.document, source) for source in self._cache_sources))

    async def _emit_step(self, step: int, total: int, instruction: Instruction) -> None:
        # Docker sends the line's end as a message of its own.
        await self._emit(f"Step {step}/{total} : {instruction.original}")
        await self._emit("\n")

    def _arg(self, instruction: Instruction, scope: Mapping[str, str],
             declared: Mapping[str, str]) -> tuple[str, str | None]:
        """An ARG's value: the build arg given, else its default expanded in `scope`, else
        the value `declared` before (a global ARG named again in a stage)."""
        name, equals, default = instruction.text.partition("=")
        name = name.strip()
        if not name or any(char.isspace() for char in name):
            raise BuildFailed("ARG requires exactly one argument")
        self._used_args.add(name)
        given = self._options.build_args.get(name)
        if given is not None:
            return name, given
        if equals:
            return name, expand_word(default, scope, self._dockerfile.escape)
        return name, declared.get(name)

    async def _from(self, stage: int, instruction: Instruction, args: dict[str, str],
                    meta: Mapping[str, str]) -> tuple[_State, str]:
        """The stage's start, its base's ONBUILD triggers run, and the image id Docker shows
        for it (none for scratch)."""
        state, base_id = await self._base(instruction, meta)
        triggers = state.document["config"].get("OnBuild") or []
        if not triggers:
            return state, base_id
        # Triggers run once: the stage's image does not pass them on.
        state.document["config"]["OnBuild"] = None
        plural = "s" if len(triggers) != 1 else ""
        for text in (f"# Executing {len(triggers)} build trigger", plural, "\n"):
            await self._emit(text)  # as Docker sends them, piece by piece
        for trigger in triggers:
            instruction = _trigger_instruction(trigger)
            state = await self._step(stage, state, instruction, args, self._dockerfile.escape,
                                     meta)
        return state, _image_id(state.document)

    async def _base(self, instruction: Instruction, meta: Mapping[str, str]
                    ) -> tuple[_State, str]:
        platform = instruction.flag("platform")
        if platform:
            raise BuildFailed("FROM --platform is not supported by kubedock's builder "
                              "(it builds for the nodes' platform)")
        words = instruction.text.split()
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise BuildFailed("FROM requires either one or three arguments")
        name = expand_word(words[0], meta, self._dockerfile.escape)
        if name.lower() in self._stages:
            earlier = self._stages[name.lower()]
            return (_State(copy.deepcopy(earlier.document), list(earlier.layers), earlier.key),
                    self._stage_ids[name.lower()])
        if name == "scratch":
            document = _scratch()
            return _State(document, [], _key("scratch")), ""
        base = await self._images.base(name, pull=self._options.pull)
        document = copy.deepcopy(dict(base.config))
        document.setdefault("config", {})
        document["config"] = dict(document["config"] or {})
        return _State(document, list(base.layers), _key("from", base.id)), base.id

    async def _step(self, stage: int, state: _State, instruction: Instruction,
                    args: dict[str, str], escape: str, meta: Mapping[str, str]) -> _State:
        keyword = instruction.keyword
        config = state.document["config"]
        env = _env_map(config.get("Env") or [])
        scope = {**args, **env}
        if keyword == "arg":
            name, value = self._arg(instruction, scope, meta)
            if value is not None:
                args[name] = value
            return await self._cached_change(state, instruction, (name, value), lambda c: None)
        if keyword in ("copy", "add"):
            return await self._copy(state, instruction, scope)
        if keyword == "run":
            return await self._run_step(stage, state, instruction, args, env)
        change = self._config_change(instruction, scope, escape, config)
        return await self._cached_change(state, instruction, change[0], change[1])

    def _config_change(self, instruction: Instruction, scope: Mapping[str, str], escape: str,
                       config: Mapping[str, Any]
                       ) -> tuple[object, Callable[[dict[str, Any]], None]]:
        keyword, text = instruction.keyword, instruction.text
        if keyword == "env":
            pairs = [(expand_word(n, scope, escape), expand_word(v, scope, escape))
                     for n, v in split_pairs(text, escape, keyword)]
            return pairs, lambda c: c.__setitem__("Env", _set_env(c.get("Env") or [], pairs))
        if keyword == "label":
            labels = {expand_word(n, scope, escape): expand_word(v, scope, escape)
                      for n, v in split_pairs(text, escape, keyword)}
            return labels, _labelled(*labels.items())
        if keyword == "workdir":
            path = expand_word(text, scope, escape)
            path = posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", path))
            return path, lambda c: c.__setitem__("WorkingDir", path)
        if keyword == "user":
            user = expand_word(text, scope, escape)
            return user, lambda c: c.__setitem__("User", user)
        if keyword == "stopsignal":
            signal = expand_word(text, scope, escape)
            return signal, lambda c: c.__setitem__("StopSignal", signal)
        if keyword == "expose":
            ports = [p if "/" in p else f"{p}/tcp" for p in expand_words(text, scope, escape)]
            return ports, lambda c: c.__setitem__(
                "ExposedPorts", {**(c.get("ExposedPorts") or {}), **{p: {} for p in ports}})
        if keyword == "volume":
            volumes = list(instruction.exec_form or expand_words(text, scope, escape))
            return volumes, lambda c: c.__setitem__(
                "Volumes", {**(c.get("Volumes") or {}), **{v: {} for v in volumes}})
        if keyword in ("cmd", "entrypoint"):
            command = self._command(instruction, config)
            field = "Cmd" if keyword == "cmd" else "Entrypoint"

            def set_command(c: dict[str, Any]) -> None:
                c[field] = command
                if keyword == "entrypoint" and not self._cmd_set_in_stage:
                    c["Cmd"] = None
            if keyword == "cmd":
                self._cmd_set_in_stage = True
            return command, set_command
        if keyword == "shell":
            if instruction.exec_form is None:
                raise BuildFailed("SHELL requires the arguments to be in JSON form")
            shell = list(instruction.exec_form)
            return shell, lambda c: c.__setitem__("Shell", shell)
        if keyword == "healthcheck":
            check = self._healthcheck(instruction)
            return check, lambda c: c.__setitem__("Healthcheck", check)
        if keyword == "maintainer":
            return text, lambda c: None  # the image's author, set with the document
        if keyword == "onbuild":
            return text, lambda c: c.__setitem__("OnBuild", [*(c.get("OnBuild") or []), text])
        raise BuildFailed(f"{keyword.upper()} is not supported by kubedock's builder")

    def _command(self, instruction: Instruction, config: Mapping[str, Any]) -> list[str]:
        if instruction.exec_form is not None:
            return list(instruction.exec_form)
        return [*(config.get("Shell") or _DEFAULT_SHELL), instruction.text]

    def _healthcheck(self, instruction: Instruction) -> dict[str, Any]:
        text = instruction.text
        word, _, rest = text.partition(" ")
        if word.upper() == "NONE":
            if rest.strip() or instruction.flags:
                raise BuildFailed("HEALTHCHECK NONE takes no arguments")
            return {"Test": ["NONE"]}
        if word.upper() != "CMD":
            raise BuildFailed(f"Unknown type \"{word}\" in HEALTHCHECK (try CMD)")
        rest = rest.strip()
        exec_form = exec_form_of(rest)
        test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", rest]
        check: dict[str, Any] = {"Test": test}
        for flag, value in instruction.flags:
            field = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                     "start-interval": "StartInterval", "retries": "Retries"}.get(flag)
            if field is None:
                raise BuildFailed(f"Unknown flag: {flag}")
            if value is None:
                raise BuildFailed(f"Missing a value on flag: {flag}")
            if field == "Retries":
                if not value.isdigit() or int(value) < 1:
                    raise BuildFailed("--retries must be at least 1")
                check[field] = int(value)
            else:
                nanoseconds = parse_duration(value, f"--{flag}")
                if nanoseconds:
                    check[field] = nanoseconds
        return check

    async def _cached_change(self, state: _State, instruction: Instruction, change: object,
                             apply: Callable[[dict[str, Any]], None]) -> _State:
        key = _key(state.key, instruction.keyword, change)
        cached = self._cached(key)
        if cached is not None:
            await self._emit(" ---> Using cache\n")
            return cached
        # Docker commits a config change through a container it makes and removes.
        step_id = secrets.token_hex(6)
        await self._emit(f" ---> Running in {step_id}\n")
        document = copy.deepcopy(state.document)
        apply(document["config"])
        if instruction.keyword == "maintainer":
            document["author"] = instruction.text
        _history(document, f"/bin/sh -c #(nop) {instruction.original}", empty=True)
        result = _State(document, state.layers, key)
        self._cache.put(result)
        await self._removed(step_id, succeeded=True)
        return result

    async def _copy(self, state: _State, instruction: Instruction, scope: Mapping[str, str]
                    ) -> _State:
        keyword = instruction.keyword.upper()
        escape = self._dockerfile.escape
        options = await self._copy_options(instruction, state)
        words = list(instruction.exec_form) if instruction.exec_form is not None \
            else expand_words(instruction.text, scope, escape)
        if len(words) < 2:
            raise BuildFailed(f"{keyword} requires at least two arguments, but only one was "
                              "provided. Destination could not be determined.")
        *sources, destination = words
        if any(map(is_url, sources)):
            if keyword == "ADD":
                raise BuildFailed("ADD from a URL is not supported by kubedock's builder")
            raise BuildFailed("source can't be a URL for COPY")
        workdir = state.document["config"].get("WorkingDir") or "/"
        directory_known = destination in (".", "./") or posixpath.normpath(
            posixpath.join(workdir, destination)) == posixpath.normpath(workdir)
        absolute = posixpath.join(workdir, destination)
        if destination.endswith("/") and not absolute.endswith("/"):
            absolute += "/"
        path = self._cache.new_layer_path()
        origin = instruction.flag("from")
        if origin is None:
            await trio.to_thread.run_sync(self._context.copy_layer, sources, absolute,
                                          directory_known, options, path)
        else:
            stack = await self._stack(expand_word(origin, scope, escape))
            try:
                await trio.to_thread.run_sync(stack.copy_layer, sources, absolute,
                                              directory_known, options, path)
            finally:
                stack.close()
        diff_id = await trio.to_thread.run_sync(digest_file, path)
        key = _key(state.key, instruction.keyword, options.mode, options.uid, options.gid,
                   diff_id)
        cached = self._cached(key)
        if cached is not None:
            path.unlink()
            await self._emit(" ---> Using cache\n")
            return cached
        layer = Layer(diff_id, diff_id, path.stat().st_size, UNCOMPRESSED_LAYER, path=path)
        document = copy.deepcopy(state.document)
        document["rootfs"]["diff_ids"].append(diff_id)
        _history(document, f"/bin/sh -c #(nop) {instruction.original}", empty=False)
        result = _State(document, [*state.layers, layer], key)
        self._cache.put(result)
        return result

    async def _stack(self, origin: str) -> LayerStack:
        """The files of `COPY --from`: an earlier stage (by name or index), else an image."""
        if origin.lower() in self._stages:
            layers = self._stages[origin.lower()].layers
        elif origin.isdigit() and int(origin) < len(self._stage_list):
            layers = self._stage_list[int(origin)].layers
        else:
            layers = list((await self._images.base(origin, pull=self._options.pull)).layers)
        return await self._stack_of(layers)

    async def _stack_of(self, layers: Sequence[Layer]) -> LayerStack:
        paths = [await self._local(layer) for layer in layers]
        return await trio.to_thread.run_sync(LayerStack, paths)

    async def _local(self, layer: Layer) -> Path:
        """A layer as a file: a base image's is downloaded once per instance."""
        if layer.path is not None:
            return layer.path
        path = self._cache.blob_path(layer.digest)
        if not path.exists():
            partial = self._cache.new_layer_path()
            async with self._images.open_layer(layer) as content, \
                    await trio.open_file(partial, "wb") as file:
                async for chunk in content:
                    await file.write(chunk)
            partial.rename(path)
        return path

    async def _copy_options(self, instruction: Instruction, state: _State) -> CopyOptions:
        uid = gid = mode = None
        for flag, value in instruction.flags:
            if flag == "from" and instruction.keyword == "copy" and value:
                continue
            if value is None:
                raise BuildFailed(f"Missing a value on flag: {flag}")
            if flag == "chown":
                uid, gid = await self._owner(value, state)
            elif flag == "chmod":
                try:
                    mode = int(value, 8)
                except ValueError:
                    raise BuildFailed(f"invalid chmod parameter: {value}") from None
            else:
                raise BuildFailed(f"Unknown flag: {flag}")
        return CopyOptions(uid, gid, mode, extract_archives=instruction.keyword == "add")

    async def _owner(self, spec: str, state: _State) -> tuple[int, int]:
        """`--chown` ids; names are looked up in the stage's /etc/passwd and /etc/group.
        Without a group the gid is the uid, as Docker has it."""
        user, _, group = spec.partition(":")
        if user.isdigit() and (not group or group.isdigit()):
            return int(user), int(group or user)
        stack = await self._stack_of(state.layers)
        try:
            passwd, groups = stack.read_text("etc/passwd"), stack.read_text("etc/group")
        finally:
            stack.close()
        try:
            resolved = resolve_user(spec, passwd, groups)
        except UserError as error:
            raise BuildFailed(f"unable to convert uid/gid chown string to host mapping: "
                              f"{error}") from None
        return resolved.uid, resolved.gid if group else resolved.uid

    async def _run_step(self, stage: int, state: _State, instruction: Instruction,
                        args: Mapping[str, str], env: Mapping[str, str]) -> _State:
        for flag, _ in instruction.flags:
            raise BuildFailed(f"RUN --{flag} is not supported by kubedock's builder")
        config = state.document["config"]
        argv = list(instruction.exec_form) if instruction.exec_form is not None \
            else [*(config.get("Shell") or _DEFAULT_SHELL), instruction.text]
        environment = [*((n, v) for n, v in args.items() if n not in env), *env.items()]
        command = StepCommand(tuple(argv), tuple(environment), config.get("User") or "",
                              config.get("WorkingDir") or "/")
        key = _key(state.key, "run", attrs.asdict(command))
        # As Docker: proxy settings given as build args reach every RUN, declared or not,
        # and leave the cache key alone (an image does not depend on the proxy it came by).
        proxies = [(name, value) for name, value in self._options.build_args.items()
                   if name in _PROXY_ARGS and value is not None and name not in args
                   and name not in env]
        command = attrs.evolve(command, env=(*command.env, *proxies),
                               extra_hosts=self._options.extra_hosts)
        cached = self._cached(key)
        if cached is not None:
            await self._emit(" ---> Using cache\n")
            return cached
        step_id = secrets.token_hex(6)  # Docker names its step container here
        await self._emit(f" ---> Running in {step_id}\n")
        sandbox = await self._prepared_sandbox(stage, state)

        stdout, stderr = _StepOutput(self._emit), _StepOutput(self._emit, _STDERR_COLOUR)
        try:
            code = await sandbox.run(command, stdout.write, stderr.write)
        except StepNotStarted as error:
            await self._removed(step_id, succeeded=False)
            raise BuildFailed(error.message) from None
        await stdout.close()
        await stderr.close()
        if code != 0:
            await self._removed(step_id, succeeded=False)
            raise BuildFailed(f"The command '{' '.join(argv)}' returned a non-zero code: {code}",
                              code)
        path = self._cache.new_layer_path()
        async with await trio.open_file(path, "wb") as file:

            async def write(data: bytes) -> None:
                await file.write(data)
            await sandbox.snapshot(write)
        document = copy.deepcopy(state.document)
        layers = list(state.layers)
        # As Docker: a step that changed nothing adds no layer, only its history entry.
        empty = await trio.to_thread.run_sync(_holds_nothing, path)
        if empty:
            path.unlink()
        else:
            diff_id = await trio.to_thread.run_sync(digest_file, path)
            layers.append(Layer(diff_id, diff_id, path.stat().st_size, UNCOMPRESSED_LAYER,
                                path=path))
            document["rootfs"]["diff_ids"].append(diff_id)
        shown_by = " ".join(argv) if instruction.exec_form is None else \
            f"/bin/sh -c #(nop) {instruction.original}"
        _history(document, shown_by, empty=empty)
        result = _State(document, layers, key)
        self._cache.put(result)
        self._sandbox_holds = (stage, len(result.layers))
        await self._removed(step_id, succeeded=True)
        return result

    async def _removed(self, step_id: str, *, succeeded: bool) -> None:
        if self._options.force_remove or (succeeded and self._options.remove):
            await self._emit(f"Removing intermediate container {step_id}\n")

    async def _prepared_sandbox(self, stage: int, state: _State) -> Sandbox:
        """The sandbox holding the stage's filesystem as `state` has it."""
        if self._sandbox is None:
            self._sandbox = await self._exit.enter_async_context(self._sandboxes())
        holds = self._sandbox_holds
        applied = 0
        if holds is not None and holds[0] == stage and holds[1] <= len(state.layers):
            applied = holds[1]
        else:
            await self._sandbox.reset()
        for layer in state.layers[applied:]:
            async with self._layer_content(layer) as content:
                await self._sandbox.apply_layer(content)
        self._sandbox_holds = (stage, len(state.layers))
        return self._sandbox

    def _layer_content(self, layer: Layer) -> AbstractAsyncContextManager[AsyncIterable[bytes]]:
        if layer.path is None:
            return self._images.open_layer(layer)
        return _file_content(layer.path)


class _StepOutput:
    """One of a RUN's output streams as build messages: decoded as UTF-8 across its pieces (a
    character may arrive split), each piece wrapped as Docker's classic builder wraps the
    stream's (stderr in red)."""

    def __init__(self, emit: Emit, colour: tuple[str, str] = ("", "")) -> None:
        self._emit = emit
        self._colour = colour
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    async def write(self, data: bytes) -> None:
        await self._send(self._decoder.decode(data))

    async def close(self) -> None:
        """Sends a character the step left unfinished."""
        await self._send(self._decoder.decode(b"", True))

    async def _send(self, text: str) -> None:
        if text:
            start, end = self._colour
            await self._emit(f"{start}{text}{end}")


@contextlib.asynccontextmanager
async def _file_content(path: Path) -> AsyncIterator[AsyncIterable[bytes]]:
    yield file_chunks(path)


def _holds_nothing(path: Path) -> bool:
    with tarfile.open(path) as archive:
        return archive.next() is None


def _in_chain(document: Mapping[str, Any], image: Mapping[str, Any]) -> bool:
    """Whether `image` was built on the image of `document` (its history and layers go on
    from there: the history's times make that exact)."""
    history, layers = document.get("history") or [], document["rootfs"]["diff_ids"]
    image_layers = (image.get("rootfs") or {}).get("diff_ids") or []
    return ((image.get("history") or [])[:len(history)] == history
            and image_layers[:len(layers)] == layers)


def _build_label(name: str, value: str) -> Instruction:
    """A label of the build's options as the LABEL step Docker adds for it (line 0: not in the
    Dockerfile)."""
    return Instruction("label", f"{name}={value}", (), None, 0, f"LABEL {name}={value}")


def _labelled(*labels: tuple[str, str]) -> Callable[[dict[str, Any]], None]:
    def apply(config: dict[str, Any]) -> None:
        config["Labels"] = {**(config.get("Labels") or {}), **dict(labels)}
    return apply


def _stage_name(instruction: Instruction) -> str:
    words = instruction.text.split()
    return words[2].lower() if len(words) == 3 and words[1].lower() == "as" else ""


def _check_trigger(instruction: Instruction) -> None:
    """What Docker refuses in an ONBUILD when it parses the Dockerfile."""
    where = f"dockerfile parse error line {instruction.line}"
    if not instruction.text:
        raise BuildFailed(f"{where}: ONBUILD requires at least one argument")
    keyword = instruction.text.split()[0].upper()
    if keyword == "ONBUILD":
        raise BuildFailed(f"{where}: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if keyword in ("FROM", "MAINTAINER"):
        raise BuildFailed(f"{where}: {keyword} isn't allowed as an ONBUILD trigger")


def _trigger_instruction(trigger: str) -> Instruction:
    """A base image's ONBUILD trigger as the instruction it is (checked only now: the base
    may come from any builder)."""
    instructions = parse_dockerfile(trigger).instructions
    if len(instructions) != 1 or instructions[0].keyword not in KNOWN - {"from", "onbuild"}:
        keyword = instructions[0].keyword.upper() if instructions else trigger
        raise BuildFailed(f"unknown instruction: {keyword}")
    return instructions[0]


def _env_map(env: Sequence[str]) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in env)


def _set_env(env: Sequence[str], pairs: Sequence[tuple[str, str]]) -> list[str]:
    values = _env_map(env)
    for name, value in pairs:
        values[name] = value
    return [f"{name}={value}" for name, value in values.items()]


def _history(document: dict[str, Any], created_by: str, *, empty: bool) -> None:
    created = _now()
    document["created"] = created
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if empty:
        entry["empty_layer"] = True
    document.setdefault("history", []).append(entry)
