import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubedock.wire import (
    PullFailure,
    PullProgress,
    WireFormatError,
    decode_pull_line,
    failure_line,
    final_status_line,
    progress_line,
)


def test_lines_byte_for_byte() -> None:
    assert progress_line(PullProgress("Pulling from library/redis", id="7")) == (
        b'{"status":"Pulling from library/redis","id":"7"}\n'
    )
    assert progress_line(PullProgress("Waiting", id="a1b2c3", progress_detail={})) == (
        b'{"status":"Waiting","progressDetail":{},"id":"a1b2c3"}\n'
    )
    assert final_status_line("redis:7", downloaded=False) == (
        b'{"status":"Status: Image is up to date for redis:7"}\n'
    )
    assert final_status_line("redis:7", downloaded=True) == (
        b'{"status":"Status: Downloaded newer image for redis:7"}\n'
    )
    assert failure_line(PullFailure("manifest unknown")) == (
        b'{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}\n'
    )


def test_error_without_detail() -> None:
    assert decode_pull_line(b'{"error":"boom"}') == PullFailure("boom")


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"[]",
        b'{"id":"x"}',
        b'{"status":1}',
        b'{"error":1}',
        b'{"status":"x","progressDetail":[]}',
    ],
)
def test_malformed_lines(line: bytes) -> None:
    with pytest.raises(WireFormatError):
        decode_pull_line(line)


progress = st.builds(
    PullProgress,
    st.text(),
    st.none() | st.text(),
    st.none() | st.dictionaries(st.sampled_from(["current", "total"]), st.integers(0, 2**40)),
)


@given(progress | st.builds(PullFailure, st.text()))
def test_round_trip(item: PullProgress | PullFailure) -> None:
    line = progress_line(item) if isinstance(item, PullProgress) else failure_line(item)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_pull_line(line) == item


@given(st.binary(max_size=100))
def test_garbage_raises_only_wire_format_error(line: bytes) -> None:
    with contextlib.suppress(WireFormatError):
        decode_pull_line(line)
