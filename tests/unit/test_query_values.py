"""Query-string numbers read as Docker reads them (Go's strconv), refused with its texts."""

from __future__ import annotations

import pytest

from kubedock.api._errors import DockerError
from kubedock.api._parse import query_float, query_int


@pytest.mark.parametrize(("text", "expected"), [
    ("", None), ("0", 0), ("-1", -1), ("+7", 7), (str(2**63 - 1), 2**63 - 1),
])
def test_integers(text: str, expected: int | None) -> None:
    assert query_int({"t": text}, "t") == expected


@pytest.mark.parametrize(("text", "error"), [
    ("1.5", "invalid syntax"), (" 7 ", "invalid syntax"), ("1_000", "invalid syntax"),
    ("٣", "invalid syntax"), ("0x10", "invalid syntax"),
    ("99999999999999999999", "value out of range"), (str(-2**63 - 1), "value out of range"),
])
def test_what_go_refuses_is_a_400(text: str, error: str) -> None:
    with pytest.raises(DockerError) as refused:
        query_int({"t": text}, "t")
    assert refused.value.status == 400
    assert refused.value.message == f'strconv.Atoi: parsing "{text}": {error}'


@pytest.mark.parametrize(("text", "expected"), [
    ("", None), ("1700000000", 1700000000.0), ("1700000000.5", 1700000000.5), ("-3", -3.0),
    (str(2**63 - 1), float(2**63 - 1)),
])
def test_times(text: str, expected: float | None) -> None:
    assert query_float({"since": text}, "since") == expected


# Docker itself answers these with a 500; the input is at fault, so kubedock says 400.
@pytest.mark.parametrize("text", ["NaN", "inf", "-inf", "1e300", "1.", ".5", "1.-5", "1.5.5",
                                  "99999999999999999999", "1 "])
def test_times_docker_cannot_parse_are_a_400(text: str) -> None:
    with pytest.raises(DockerError) as refused:
        query_float({"since": text}, "since")
    assert refused.value.status == 400
    assert refused.value.message.startswith("strconv.ParseInt: parsing ")
