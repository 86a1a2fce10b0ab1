"""The Dockerfile parser and word expansion, against what Docker's classic builder does
(cases checked on the reference engine)."""

from __future__ import annotations

import pytest

from kubedock.build._dockerfile import DockerfileError, parse_dockerfile, split_pairs
from kubedock.build._words import SubstitutionError, expand_word, expand_words

SCOPE = {"A": "1", "B": "two words", "EMPTY": ""}


@pytest.mark.parametrize(("text", "expected"), [
    ('"two words"', "two words"),
    ("'single $A'", "single $A"),
    ("\\$A", "$A"),
    ('"esc \\" \\$A \\n"', 'esc " $A \\n'),
    ("${A:+set}", "set"),
    ("${NOPE:+set}", ""),
    ("${NOPE:-dflt}", "dflt"),
    ("${A:-dflt}", "1"),
    ("${A}x$A-y", "1x1-y"),
    ("${EMPTY:-e1}", "e1"),
    ("${EMPTY:+e4}", ""),
    ("/a/$A/b c", "/a/1/b c"),
    ("$", "$"),
    ("a$", "a$"),
    ("${NOPE:-$A}", "1"),
    ('${NOPE:-"x y"}', "x y"),
    ("$NOPE", ""),
])
def test_a_word_expands_as_docker_expands_it(text: str, expected: str) -> None:
    assert expand_word(text, SCOPE) == expected


def test_words_split_at_unquoted_blanks_and_in_expanded_values() -> None:
    assert expand_words('80 ${A}0/udp "a b" $B', SCOPE) == ["80", "10/udp", "a b", "two",
                                                             "words"]
    assert expand_words("", SCOPE) == []


def test_the_backtick_escape_keeps_backslashes() -> None:
    assert expand_word("C:\\dir\\`$A", SCOPE, "`") == "C:\\dir\\$A"


@pytest.mark.parametrize(("text", "message"), [
    ("${EMPTY-unset}", "failed to process \"${EMPTY-unset}\": missing ':' in substitution"),
    ("${A:=x}", "failed to process \"${A:=x}\": unsupported modifier (=) in substitution"),
    ("${EMPTY:?}", "failed to process \"${EMPTY:?}\": EMPTY: is not allowed to be empty"),
    ("${NOPE:?say so}", "failed to process \"${NOPE:?say so}\": NOPE: say so"),
    ("${A", "failed to process \"${A\": syntax error: missing '}'"),
    ("${}", "failed to process \"${}\": syntax error: bad substitution"),
    ("'open", "failed to process \"'open\": unexpected end of statement while looking for "
              "matching single-quote"),
])
def test_refused_words_say_what_docker_says(text: str, message: str) -> None:
    with pytest.raises(SubstitutionError) as raised:
        expand_word(text, SCOPE)
    assert str(raised.value) == message


def test_lines_continue_comment_lines_drop_and_forms_are_told() -> None:
    parsed = parse_dockerfile(
        "# escape=\\\n"
        "FROM busybox:1.36 AS first\n"
        "  # a comment\n"
        "RUN echo a \\\n"
        "# inside\n"
        "\n"
        "   b\n"
        "CMD [\"cat\", \"/x\"]\n"
        "ENTRYPOINT [not json\n"
        "COPY --chown=1:2 --chmod=644 a b /dst/\n"
        "healthcheck --interval=5s CMD true\n")
    keywords = [i.keyword for i in parsed.instructions]
    assert keywords == ["from", "run", "cmd", "entrypoint", "copy", "healthcheck"]
    run, cmd, entrypoint, copy, check = parsed.instructions[1:]
    assert run.text == "echo a    b" and run.exec_form is None and run.line == 4
    assert cmd.exec_form == ("cat", "/x")
    assert entrypoint.exec_form is None and entrypoint.text == "[not json"
    assert copy.flags == (("chown", "1:2"), ("chmod", "644")) and copy.text == "a b /dst/"
    assert check.flags == (("interval", "5s"),) and check.text == "CMD true"
    assert check.original == "healthcheck --interval=5s CMD true"


def test_the_escape_directive_changes_the_continuation() -> None:
    parsed = parse_dockerfile("# escape=`\nFROM x\nRUN dir c:\\ `\n  /b\n")
    assert parsed.escape == "`"
    assert parsed.instructions[1].text == "dir c:\\   /b"
    with pytest.raises(DockerfileError):
        parse_dockerfile("# escape=x\nFROM x\n")


def test_a_directive_after_an_instruction_is_a_comment() -> None:
    parsed = parse_dockerfile("FROM x\n# escape=`\nRUN a \\\n b\n")
    assert parsed.escape == "\\" and parsed.instructions[1].text == "a  b"


def test_env_and_label_pairs_keep_quotes_for_the_expansion() -> None:
    assert split_pairs('A=1 B="two words" C=\'x y\'', "\\", "env") == [
        ("A", "1"), ("B", '"two words"'), ("C", "'x y'")]
    assert split_pairs("legacy value with   spaces", "\\", "env") == [
        ("legacy", "value with   spaces")]
    assert split_pairs('"quoted key"="v 1" multi=ab', "\\", "label") == [
        ('"quoted key"', '"v 1"'), ("multi", "ab")]
    with pytest.raises(DockerfileError, match="can't find = in 'b'"):
        split_pairs("a=1 b", "\\", "env")
