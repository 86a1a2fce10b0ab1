"""The Dockerfile's lines, as Docker's parser reads them (pure).

Parser directives (`# escape=`, `# syntax=`) are read at the top only; comment lines go, also
inside a continued instruction; the escape character at a line's end continues the instruction
on the next line (joined without a space); an instruction's leading `--name=value` words are its
flags; RUN, CMD, ENTRYPOINT, SHELL, COPY, ADD and VOLUME take a JSON array (exec form) or text
(shell form). Variables are not expanded here: which ones are in scope is the builder's matter.
"""

from __future__ import annotations

import json
import re

import attrs

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_FLAG = re.compile(r"^--([a-zA-Z0-9-]+)(?:=(.*))?$")
_JSON_FORMS = frozenset({"run", "cmd", "entrypoint", "shell", "copy", "add", "volume"})
_FLAGGED = frozenset({"from", "run", "copy", "add", "healthcheck"})
KNOWN = frozenset({"from", "arg", "env", "label", "workdir", "user", "expose", "volume", "cmd",
                   "entrypoint", "healthcheck", "shell", "stopsignal", "copy", "add", "run",
                   "maintainer", "onbuild"})


class DockerfileError(ValueError):
    """A Dockerfile Docker's parser refuses; the text says where, as Docker's does."""


@attrs.frozen
class Instruction:
    keyword: str  # lower case
    text: str  # the arguments after the flags, as written (blanks trimmed)
    flags: tuple[tuple[str, str | None], ...]
    exec_form: tuple[str, ...] | None  # the JSON array, for the instructions that take one
    line: int  # where the instruction starts, from 1
    original: str  # the instruction as Docker prints it in "Step n/m : ..."

    def flag(self, name: str) -> str | None:
        return dict(self.flags).get(name)


@attrs.frozen
class Dockerfile:
    escape: str
    instructions: tuple[Instruction, ...]


def parse_dockerfile(source: str) -> Dockerfile:
    lines = source.replace("\r\n", "\n").split("\n")
    escape = "\\"
    index = 0
    directives: set[str] = set()
    while index < len(lines):
        match = _DIRECTIVE.match(lines[index].strip())
        if match is None:
            break
        name = match.group(1).lower()
        if name in directives:
            raise DockerfileError(f"only one {name} parser directive can be used")
        directives.add(name)
        if name == "escape":
            escape = match.group(2)
            if escape not in ("\\", "`"):
                raise DockerfileError(f"invalid escape token '{escape}' does not match ` or \\")
        index += 1
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    instructions = []
    while index < len(lines):
        start = index
        line = lines[index].lstrip()
        index += 1
        if not line.strip() or line.startswith("#"):
            continue
        text, continued = _trim_continuation(line, continuation)
        while continued and index < len(lines):
            following = lines[index]
            index += 1
            if following.lstrip().startswith("#") or not following.strip():
                continue
            part, continued = _trim_continuation(following, continuation)
            text += part
        instructions.append(_instruction(text, start + 1))
    return Dockerfile(escape, tuple(instructions))


def _trim_continuation(line: str, continuation: re.Pattern[str]) -> tuple[str, bool]:
    trimmed = continuation.sub("", line)
    return trimmed, trimmed != line


def _instruction(text: str, line: int) -> Instruction:
    original = text.strip()
    keyword, _, rest = original.partition(" ")
    if "\t" in keyword:
        keyword, _, tail = keyword.partition("\t")
        rest = tail + " " + rest
    keyword = keyword.lower()
    rest = rest.strip()
    flags: list[tuple[str, str | None]] = []
    if keyword in _FLAGGED:
        while rest.startswith("--"):
            word, _, after = rest.partition(" ")
            if word == "--":
                rest = after.strip()
                break
            match = _FLAG.match(word)
            if match is None:
                raise DockerfileError(f"Dockerfile line {line}: bad flag {word!r}")
            flags.append((match.group(1), match.group(2)))
            rest = after.strip()
    exec_form = exec_form_of(rest) if keyword in _JSON_FORMS else None
    return Instruction(keyword, rest, tuple(flags), exec_form, line, original)


def exec_form_of(text: str) -> tuple[str, ...] | None:
    """The words of a JSON array of strings (an instruction's exec form), else None."""
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


def split_pairs(text: str, escape: str, keyword: str) -> list[tuple[str, str]]:
    """ENV and LABEL arguments as (name, value-as-written) pairs: `name=value ...`, or the
    older `name value` that takes the rest of the line as the value."""
    words = _split_keeping_quotes(text, escape)
    if not words:
        raise DockerfileError(f"{keyword.upper()} requires at least one argument")
    if "=" not in words[0]:
        name, _, value = text.partition(" ")
        if not value.strip():
            raise DockerfileError(f"{keyword.upper()} must have two arguments")
        return [(name, value.strip())]
    pairs = []
    for word in words:
        if "=" not in word:
            raise DockerfileError(f"Syntax error - can't find = in {word!r}. "
                                  "Must be of the form: name=value")
        name, _, value = word.partition("=")
        pairs.append((name, value))
    return pairs


def _split_keeping_quotes(text: str, escape: str) -> list[str]:
    """Words at blanks outside quotes; quotes and escapes stay for the substitution."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    index = 0
    while index < len(text):
        char = text[index]
        index += 1
        if char == escape and index < len(text) and quote != "'":
            word.append(char + text[index])
            index += 1
            continue
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char.isspace():
            if word:
                words.append("".join(word))
                word.clear()
            continue
        word.append(char)
    if word:
        words.append("".join(word))
    return words
