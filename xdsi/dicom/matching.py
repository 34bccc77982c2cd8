"""Key matching values of C-FIND and QIDO-RS (PS3.4 C.2.2.2): parsed and checked, per VR.

A query value becomes one of: universal (empty or ``*``), a list of values (UIDs, or
backslash-separated values), a single value, a wildcard pattern (``*`` and ``?``) or a range
(``a-b``, ``a-``, ``-b`` for DA, TM and DT). Dates and times are turned into the fixed-width
text keys the index stores (``dicom.attributes.time_key`` and friends), so a range is a
plain text comparison. Upper bounds of partial times and dates are inclusive of the whole
unit: ``-1200`` ends at 12:00:59.999999, ``-2024`` at the end of 2024-12-31.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from xdsi.errors import InvalidRequest

WILDCARDS = ("*", "?")


@dataclass(frozen=True)
class Universal:
    """Matches everything (PS3.4 C.2.2.2.3); the attribute is only returned."""


@dataclass(frozen=True)
class Single:
    value: str


@dataclass(frozen=True)
class AnyOf:
    """List of UID Matching (C.2.2.2.2) or multiple values (C.2.2.2.8)."""

    values: tuple[str, ...]


@dataclass(frozen=True)
class Wildcard:
    """``*`` any sequence, ``?`` one character (C.2.2.2.4)."""

    pattern: str


@dataclass(frozen=True)
class Range:
    """Inclusive bounds as index keys; None is open (C.2.2.2.5)."""

    low: str | None
    high: str | None


Match = Universal | Single | AnyOf | Wildcard | Range


def parse_uid_list(value: str, what: str) -> Match:
    """UI: a list of UIDs separated by backslash or comma; no wildcards."""
    from xdsi.dicom.uids import is_valid_uid

    value = value.strip()
    if value in ("", "*"):
        return Universal()
    parts = [p.strip() for p in re.split(r"[\\,]", value)]
    for part in parts:
        if not is_valid_uid(part):
            raise InvalidRequest(f"{what}: {part[:80]!r} is not a valid UID")
    return Single(parts[0]) if len(parts) == 1 else AnyOf(tuple(parts))


def parse_text(value: str, what: str, *, max_length: int = 256) -> Match:
    """String VRs (AE CS LO SH LT ST UC UT …): single, wildcard, or backslash list."""
    if len(value) > max_length:
        raise InvalidRequest(f"{what}: value longer than {max_length} characters")
    if value == "" or set(value) == {"*"}:
        return Universal()
    if "\\" in value:
        parts = tuple(value.split("\\"))
        if any(any(w in p for w in WILDCARDS) for p in parts):
            raise InvalidRequest(f"{what}: wildcards cannot be combined with a list of values")
        return AnyOf(parts)
    if any(w in value for w in WILDCARDS):
        return Wildcard(value)
    return Single(value)


def parse_integer(value: str, what: str) -> Match:
    """IS/US keys: one integer or a backslash list (PS3.4 C.2.2.2.1 and CP-2305)."""
    if value in ("", "*"):
        return Universal()
    parts = value.split("\\")
    for part in parts:
        if not re.fullmatch(r"[+-]?[0-9]{1,12}", part.strip()):
            raise InvalidRequest(f"{what}: {part[:40]!r} is not an integer")
    numbers = tuple(str(int(p)) for p in parts)
    return Single(numbers[0]) if len(numbers) == 1 else AnyOf(numbers)


def parse_date(value: str, what: str) -> Match:
    """DA: YYYYMMDD, or a range of them; partial dates allowed as range bounds."""
    return _range_or_single(value, what, _date_low, _date_high)


def parse_time(value: str, what: str) -> Match:
    """TM: HH[MM[SS[.F{1,6}]]], or a range of them."""
    return _range_or_single(value, what, _time_low, _time_high)


def _range_or_single(value: str, what: str, low: _Bound, high: _Bound) -> Match:
    value = value.strip()
    if value in ("", "*"):
        return Universal()
    if value == "-":
        raise InvalidRequest(f"{what}: a range needs at least one bound")
    # A DT may carry a negative offset ('-0500'), so a hyphen is a range only if the whole
    # value is not itself valid; the first split whose sides both parse wins.
    if "-" in value and _attempt(low, value, what) is None:
        for index in (i for i, ch in enumerate(value) if ch == "-"):
            left, right = value[:index], value[index + 1 :]
            lo = _attempt(low, left, what) if left else None
            hi = _attempt(high, right, what) if right else None
            if (left or right) and (not left or lo is not None) and (not right or hi is not None):
                if lo is not None and hi is not None and lo > hi:
                    raise InvalidRequest(f"{what}: range {value!r} ends before it starts")
                return Range(lo, hi)
        raise InvalidRequest(f"{what}: {value[:60]!r} is neither a value nor a range of values")
    lo, hi = low(value, what), high(value, what)
    return Single(lo) if lo == hi else Range(lo, hi)


_Bound = Callable[[str, str], str]


def _attempt(parse: _Bound, text: str, what: str) -> str | None:
    try:
        return parse(text, what)
    except InvalidRequest:
        return None


_DATE = re.compile(r"([0-9]{4})([0-9]{2})?([0-9]{2})?")


def _date_parts(text: str, what: str) -> tuple[int, int | None, int | None]:
    m = _DATE.fullmatch(text)
    if not m:
        raise InvalidRequest(f"{what}: {text[:40]!r} is not a DICOM date (YYYYMMDD)")
    year, month, day = int(m.group(1)), m.group(2), m.group(3)
    if m.group(2) is None and m.group(3) is not None:
        raise InvalidRequest(f"{what}: {text!r} is not a DICOM date")
    try:
        datetime(year, int(month or 1), int(day or 1))
    except ValueError as exc:
        raise InvalidRequest(f"{what}: {text!r} is not a valid date ({exc})") from exc
    return year, None if month is None else int(month), None if day is None else int(day)


def _date_low(text: str, what: str) -> str:
    year, month, day = _date_parts(text, what)
    return f"{year:04d}{month or 1:02d}{day or 1:02d}"


def _date_high(text: str, what: str) -> str:
    year, month, day = _date_parts(text, what)
    if month is None:
        return f"{year:04d}1231"
    if day is None:
        first_next = datetime(year + (month == 12), month % 12 + 1, 1)
        return (first_next - timedelta(days=1)).strftime("%Y%m%d")
    return f"{year:04d}{month:02d}{day:02d}"


_TIME = re.compile(r"([0-9]{2})(?::?([0-9]{2}))?(?::?([0-9]{2}))?(?:\.([0-9]{1,6}))?")


def _time_parts(text: str, what: str) -> tuple[int, int | None, int | None, str | None]:
    m = _TIME.fullmatch(text)
    if not m or (m.group(4) and m.group(3) is None):
        raise InvalidRequest(f"{what}: {text[:40]!r} is not a DICOM time (HHMMSS.FFFFFF)")
    hour, minute, second = int(m.group(1)), m.group(2), m.group(3)
    if hour > 23 or int(minute or 0) > 59 or int(second or 0) > 60:
        raise InvalidRequest(f"{what}: {text!r} is not a valid time")
    return hour, None if minute is None else int(minute), None if second is None else int(second), m.group(4)


def _time_low(text: str, what: str) -> str:
    hour, minute, second, fraction = _time_parts(text, what)
    return f"{hour:02d}{minute or 0:02d}{second or 0:02d}.{(fraction or ''):0<6}"


def _time_high(text: str, what: str) -> str:
    hour, minute, second, fraction = _time_parts(text, what)
    return (
        f"{hour:02d}{59 if minute is None else minute:02d}{59 if second is None else second:02d}."
        f"{(fraction or ''):9<6}"
    )


def offset_timezone(value: str, what: str = "TimezoneOffsetFromUTC") -> timezone:
    """PS3.3 C.12.1.1.8: '&ZZXX', sign then hours and minutes, -12:00 to +14:00."""
    if not re.fullmatch(r"[+-][0-9]{4}", value):
        raise InvalidRequest(f"{what}: {value[:20]!r} is not a timezone offset like +0100 or -0500")
    minutes = int(value[1:3]) * 60 + int(value[3:])
    if int(value[3:]) > 59 or minutes > 14 * 60:
        raise InvalidRequest(f"{what}: {value!r} is out of range")
    return timezone(timedelta(minutes=minutes if value[0] == "+" else -minutes))


def shift_datetime_key(key: str, offset: timezone) -> str:
    """A 'YYYYMMDDHHMMSS.ffffff' key read in ``offset``, converted to UTC."""
    moment = datetime.strptime(key, "%Y%m%d%H%M%S.%f").replace(tzinfo=offset)
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S.%f")


@dataclass(frozen=True)
class NameQuery:
    """A PN key: alphabetic components, and whole ideographic / phonetic groups (case-folded)."""

    components: tuple[Match, ...]  # family, given, middle, prefix, suffix
    alphabetic: Match  # the whole alphabetic group, for single-component patterns
    ideographic: Match
    phonetic: Match
    has_separator: bool
    folded: Match  # the alphabetic group without accents, for fuzzy matching


def parse_person_name(value: str, what: str) -> Match | NameQuery:
    """PN: component-by-component matching on case-folded text (see ``dicom.names``)."""
    from xdsi.dicom.names import casefold, fold

    if len(value) > 256:
        raise InvalidRequest(f"{what}: value longer than 256 characters")
    if value == "" or set(value) == {"*"}:
        return Universal()
    groups = (value.split("=") + ["", ""])[:3]
    if len(value.split("=")) > 3:
        raise InvalidRequest(f"{what}: a person name has at most three component groups")
    components = (groups[0].split("^") + [""] * 5)[:5]
    if len(groups[0].split("^")) > 5:
        raise InvalidRequest(f"{what}: a person name group has at most five components")

    def text_match(raw: str, normalize: Callable[[str], str] = casefold) -> Match:
        norm = normalize(raw)
        if norm == "" or set(norm) == {"*"}:
            return Universal()
        return Wildcard(norm) if any(w in norm for w in WILDCARDS) else Single(norm)

    return NameQuery(
        components=tuple(text_match(c) for c in components),
        alphabetic=text_match(groups[0]),
        ideographic=text_match(groups[1]),
        phonetic=text_match(groups[2]),
        has_separator="^" in groups[0],
        folded=text_match(groups[0], fold),
    )
