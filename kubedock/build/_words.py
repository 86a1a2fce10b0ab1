"""Variable substitution in Dockerfile words, as Docker's shell lexer does it (pure).

Quotes group and are removed, the escape character takes the next character literally (inside
double quotes only before `"`, `$` and itself), and `$X`, `${X}`, `${X:-word}`, `${X-word}`,
`${X:+word}` and `${X:?message}` expand from the variables in scope (the forms without the
colon are refused, as Docker's classic builder does). An unset variable expands to nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

_SPECIAL = "@*#?-$!0"


class SubstitutionError(ValueError):
    """A word Docker refuses to expand; the text is Docker's."""


class _Lexer:
    def __init__(self, text: str, variables: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.position = 0
        self.variables = variables
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.position] if self.position < len(self.text) else ""

    def next(self) -> str:
        char = self.peek()
        self.position += 1 if char else 0
        return char

    def words(self, split: bool) -> list[str]:
        """The text as words: split at unquoted blanks (and in expanded values) when `split`,
        else one word keeping its blanks."""
        words: list[str] = []
        word: list[str] = []
        in_word = False

        def end_word() -> None:
            nonlocal in_word
            if in_word:
                words.append("".join(word))
                word.clear()
                in_word = False

        def add(text: str, *, quoted: bool) -> None:
            nonlocal in_word
            if quoted or not split:
                word.append(text)
                in_word = True
                return
            for char in text:
                if char.isspace():
                    end_word()
                else:
                    word.append(char)
                    in_word = True

        while self.peek():
            char = self.peek()
            if char == "'":
                add(self.single_quoted(), quoted=True)
            elif char == '"':
                add(self.double_quoted(), quoted=True)
            elif char == "$":
                add(self.dollar(), quoted=False)
            else:
                self.next()
                if char == self.escape:
                    if not self.peek():
                        break
                    add(self.next(), quoted=True)
                elif char.isspace() and split:
                    end_word()
                else:
                    add(char, quoted=True)
        end_word()
        return words if split else ["".join(words)]

    def until(self, stop: str) -> str:
        """Text up to the unescaped `stop` (consumed), with quotes and variables processed."""
        result: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise SubstitutionError(f"unexpected end of statement while looking for "
                                        f"matching {stop}")
            if char == stop:
                self.next()
                return "".join(result)
            if char == "'":
                result.append(self.single_quoted())
            elif char == '"':
                result.append(self.double_quoted())
            elif char == "$":
                result.append(self.dollar())
            else:
                self.next()
                if char == self.escape and self.peek():
                    char = self.next()
                result.append(char)

    def single_quoted(self) -> str:
        self.next()
        start = self.position
        end = self.text.find("'", start)
        if end < 0:
            raise SubstitutionError("unexpected end of statement while looking for matching "
                                    "single-quote")
        self.position = end + 1
        return self.text[start:end]

    def double_quoted(self) -> str:
        self.next()
        result: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise SubstitutionError("unexpected end of statement while looking for "
                                        "matching double-quote")
            if char == '"':
                self.next()
                return "".join(result)
            if char == "$":
                result.append(self.dollar())
                continue
            self.next()
            if char == self.escape:
                if not self.peek():
                    continue
                if self.peek() in ('"', "$", self.escape):
                    char = self.next()
            result.append(char)

    def name(self) -> str:
        char = self.peek()
        if char.isdigit():
            start = self.position
            while self.peek().isdigit():
                self.next()
            return self.text[start:self.position]
        if char and char in _SPECIAL:
            return self.next()
        start = self.position
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.next()
        return self.text[start:self.position]

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            return self.variables.get(name, "") if name else "$"
        self.next()
        if not self.peek():
            raise SubstitutionError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise SubstitutionError("syntax error: bad substitution")
        name = self.name()
        char = self.next()
        if not char:
            raise SubstitutionError("syntax error: missing '}'")
        if char == "}":
            return self.variables.get(name, "")
        if char != ":":
            raise SubstitutionError("missing ':' in substitution")
        char = self.next()
        if char not in ("-", "+", "?"):
            raise SubstitutionError(f"unsupported modifier ({char}) in substitution")
        word = self.until("}")
        value = self.variables.get(name, "")
        if char == "-":
            return value or word
        if char == "+":
            return word if value else ""
        if not value:
            raise SubstitutionError(f"{name}: {word or 'is not allowed to be empty'}")
        return value

def expand_word(text: str, variables: Mapping[str, str], escape: str = "\\") -> str:
    """One word, its blanks kept (WORKDIR, USER, FROM, values of ENV and LABEL)."""
    return _expand(text, variables, escape, split=False)[0]


def expand_words(text: str, variables: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Words split at unquoted blanks, as the arguments of COPY, ADD, EXPOSE, VOLUME."""
    return _expand(text, variables, escape, split=True)


def _expand(text: str, variables: Mapping[str, str], escape: str, *, split: bool) -> list[str]:
    try:
        return _Lexer(text, variables, escape).words(split)
    except SubstitutionError as error:
        raise SubstitutionError(f"failed to process {json.dumps(text)}: {error}") from None
