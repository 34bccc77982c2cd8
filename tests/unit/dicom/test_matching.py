"""Date and time matching keys: a bound covers its whole unit (PS3.4 C.2.2.2.5)."""

from __future__ import annotations

import pytest

from xdsi.dicom.matching import Range, Single, Universal, parse_date, parse_time
from xdsi.errors import InvalidRequest


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-1200", Range(None, "120059.999999")),
        ("08-12", Range("080000.000000", "125959.999999")),
        ("0830-", Range("083000.000000", None)),
        ("12:00:30", Range("120030.000000", "120030.999999")),
        ("120030.250000", Single("120030.250000")),
        ("120030.5", Range("120030.500000", "120030.599999")),
        ("", Universal()),
    ],
)
def test_time_bounds_cover_the_whole_unit(value: str, expected: object) -> None:
    assert parse_time(value, "StudyTime") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024", Range("20240101", "20241231")),
        ("202402", Range("20240201", "20240229")),
        ("20231201-202402", Range("20231201", "20240229")),
        ("-2023", Range(None, "20231231")),
        ("20240105", Single("20240105")),
    ],
)
def test_date_bounds_cover_the_whole_unit(value: str, expected: object) -> None:
    assert parse_date(value, "StudyDate") == expected


@pytest.mark.parametrize(("parse", "value"), [
    (parse_date, "-"), (parse_date, "2024-2023"), (parse_date, "20240230"), (parse_date, "24"),
    (parse_time, "2460"), (parse_time, "1200-1100"), (parse_time, "12.5"),
])
def test_bad_dates_and_times_are_refused_with_a_reason(parse, value: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRequest, match="StudyX"):
        parse(value, "StudyX")
