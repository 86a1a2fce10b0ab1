import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubedock.wire import DetachScanner, WireFormatError, parse_detach_keys


@pytest.mark.parametrize(
    ("spec", "keys"),
    [
        ("", b"\x10\x11"),
        ("ctrl-p,ctrl-q", b"\x10\x11"),
        ("ctrl-@,ctrl-a,ctrl-z,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_",
         b"\x00\x01\x1a\x1b\x1c\x1d\x1e\x1f"),
        ("a,b", b"ab"),
        ("ctrl-x,x", b"\x18x"),
        ("DEL", b"\x7f"),
        ("-", b"-"),
    ],
)
def test_specs(spec: str, keys: bytes) -> None:
    assert parse_detach_keys(spec) == keys


@pytest.mark.parametrize("spec", [",", "ctrl-", "ctrl-P", "ctrl-1", "ctrl-pq", "ab", "é", "a,,b",
                                  "shift-a"])
def test_unknown_keys(spec: str) -> None:
    with pytest.raises(WireFormatError, match="Unknown character"):
        parse_detach_keys(spec)


def test_the_sequence_ends_the_input_and_never_reaches_the_process() -> None:
    scanner = DetachScanner(b"\x10\x11")
    assert scanner.feed(b"ls\n\x10") == b"ls\n"
    assert not scanner.detached
    assert scanner.feed(b"\x11after") == b""
    assert scanner.detached
    assert scanner.feed(b"more") == b""


def test_a_broken_sequence_is_passed_on() -> None:
    scanner = DetachScanner(b"\x10\x11")
    assert scanner.feed(b"\x10") == b""
    assert scanner.feed(b"x") == b"\x10x"
    assert scanner.feed(b"\x10\x10") == b"\x10"
    assert scanner.feed(b"\x11") == b""
    assert scanner.detached


def test_what_is_held_back_at_the_end_of_input_is_flushed() -> None:
    scanner = DetachScanner(b"ab")
    assert scanner.feed(b"xa") == b"x"
    assert scanner.flush() == b"a"
    assert scanner.flush() == b""


@given(st.lists(st.binary(max_size=8), max_size=12), st.binary(min_size=1, max_size=3))
def test_the_output_is_the_input_up_to_the_first_sequence(pieces: list[bytes], keys: bytes
                                                          ) -> None:
    scanner = DetachScanner(keys)
    passed = b"".join(scanner.feed(piece) for piece in pieces)
    whole = b"".join(pieces)
    end = whole.find(keys)
    if end < 0:
        assert passed + scanner.flush() == whole
        assert not scanner.detached
    else:
        assert passed == whole[:end]
        assert scanner.detached
