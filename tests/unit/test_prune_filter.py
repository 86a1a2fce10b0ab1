from datetime import UTC, datetime, timedelta, timezone

import pytest

from kubedock.api._errors import DockerError
from kubedock.api._parse import PruneFilter, go_duration, parse_time, prune_filter

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("10m", timedelta(minutes=10)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1.5h", timedelta(minutes=90)),
    ("-2s", timedelta(seconds=-2)),
    ("300ms", timedelta(milliseconds=300)),
    ("1h2m3s4ms5us6ns", timedelta(hours=1, minutes=2, seconds=3, milliseconds=4,
                                  microseconds=5)),
    ("0s", timedelta(0)),
    ("5", None), ("h", None), ("1d", None), ("", None), ("1h 2m", None),
])
def test_go_durations(text: str, expected: timedelta | None) -> None:
    assert go_duration(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("10m", NOW - timedelta(minutes=10)),
    ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    ("1700000000.5", datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)),
    ("0", datetime(1970, 1, 1, tzinfo=UTC)),
    ("2025-12-31T23:00:00Z", datetime(2025, 12, 31, 23, tzinfo=UTC)),
    ("2025-12-31T23:00:00.123456789+01:00",
     datetime(2025, 12, 31, 23, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))),
])
def test_times_as_docker_takes_them(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


def test_a_time_without_a_zone_is_local_time() -> None:
    assert parse_time("2025-12-31T23:00", NOW) == datetime(2025, 12, 31, 23).astimezone()
    assert parse_time("2025-12-31", NOW) == datetime(2025, 12, 31).astimezone()


@pytest.mark.parametrize("text", ["yesterday", "2025-13-01", "1h-"])
def test_bad_times_are_400(text: str) -> None:
    with pytest.raises(DockerError) as caught:
        parse_time(text, NOW)
    assert caught.value.status == 400


def test_prune_selection() -> None:
    selection = prune_filter({"until": ["1h"], "label": ["team", "env=ci"],
                              "label!": ["keep", "pinned=yes"]}, NOW)
    assert selection == PruneFilter(NOW - timedelta(hours=1), ("team", "env=ci"),
                                    ("keep", "pinned=yes"))
    old, new = NOW - timedelta(hours=2), NOW - timedelta(minutes=5)
    labels = {"team": "a", "env": "ci"}
    assert selection.selects(old, labels)
    assert selection.selects(NOW - timedelta(hours=1), labels)
    assert not selection.selects(new, labels)
    assert not selection.selects(old, {"team": "a", "env": "dev"})
    # label! spares only what carries every one of them, as Docker's prune does.
    assert selection.selects(old, {**labels, "keep": ""})
    assert not selection.selects(old, {**labels, "keep": "", "pinned": "yes"})
    assert PruneFilter().selects(new, {})


@pytest.mark.parametrize(("filters", "text"), [
    ({"until": ["1h", "2h"]}, "more than one until filter specified"),
    ({"dangling": ["true"]}, "invalid filter 'dangling'"),
    ({"until": ["soon"]}, 'failed to parse value as time or duration: "soon"'),
    # Beyond what a datetime holds: an overflow each, once.
    *[({"until": [value]}, f'failed to parse value as time or duration: "{value}"')
      for value in ("9999999999999h", "999999999h", "0001-01-01", "1e300", "-1e17", "nan")],
])
def test_bad_prune_filters(filters: dict[str, list[str]], text: str) -> None:
    with pytest.raises(DockerError) as caught:
        prune_filter(filters, NOW)
    assert caught.value.status == 400 and caught.value.message == text
