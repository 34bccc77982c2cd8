"""QIDO-RS over the index: the attribute catalog and the SQL for each kind of key matching.

Every searchable attribute maps to a column (or a computed expression); searches read only
these tables, never a DICOM file. Queries use bound parameters only; wildcard patterns are
turned into LIKE with an escape character. Prefix patterns (``abc*``) become a range on the
column plus the LIKE, so a B-tree index serves them on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from xdsi.dicom import attributes, matching
from xdsi.dicom.attributes import Key, Table, time_key_column
from xdsi.dicom.attributes import Match as Kind
from xdsi.dicom.matching import AnyOf, Match, NameQuery, Range, Single, Universal, Wildcard
from xdsi.dicom.names import soundex
from xdsi.repository import visibility
from xdsi.repository.models import TABLES, Instance, InstanceMetadata, Patient, RequestAttribute, Series, Study

Level = Literal["study", "series", "instance"]
LEVELS: tuple[Level, ...] = ("study", "series", "instance")


@dataclass(frozen=True)
class Attribute:
    """A QIDO key: where its value lives and how it is matched."""

    keyword: str
    tag: int
    vr: str
    level: Level
    kind: Kind  # how it is matched
    column: Any  # the returned value
    match_column: Any = None  # what is compared, when it differs (normalized keys)
    name_prefix: str = ""  # PN: the prefix of the person-name search columns
    default: bool = True  # returned without includefield (PS3.18 Tables 10.6.3-3/4/5)


def _attribute(key: Key) -> Attribute:
    """The search form of a catalog key: patient keys are study-level QIDO keys (PS3.18 10.6.1.2)."""
    model = TABLES[key.table]
    column = None if key.match == "sequence" else getattr(model, key.column)
    match_column = getattr(model, time_key_column(key.column)) if key.match == "time" else None
    assert key.match is not None
    return Attribute(key.keyword, key.tag, key.vr, _QIDO_LEVEL[key.table], key.match,
                     column, match_column, key.name_prefix, key.default)


_QIDO_LEVEL: dict[Table, Level] = {"patient": "study", "study": "study", "series": "series", "instance": "instance"}


CATALOG: tuple[Attribute, ...] = tuple(_attribute(key) for key in attributes.CATALOG if key.match is not None)

# Items of Request Attributes Sequence (0040,0275) that are matched: tag -> (keyword, VR, column).
REQUEST_ATTRIBUTE_KEYS: dict[int, tuple[str, str, Any]] = {
    key.tag: (key.keyword, key.vr, getattr(RequestAttribute, key.column)) for key in attributes.REQUEST_ITEM_KEYS
}

BY_TAG = {a.tag: a for a in CATALOG}
BY_KEYWORD = {a.keyword: a for a in CATALOG}
_PRIMARY = {"study": Study.id, "series": Series.id, "instance": Instance.id}


@dataclass
class Condition:
    attribute: Attribute
    match: Match | NameQuery
    item_key: int | None = None  # for sequence matching: the tag inside the item


@dataclass
class SearchRequest:
    """A parsed search: the level, the scope from the path, the matches, and the paging."""

    level: Level
    study_uid: str | None = None
    series_uid: str | None = None
    conditions: list[Condition] = field(default_factory=list)
    fuzzy: bool = False
    timezone: str | None = None  # TimezoneOffsetFromUTC of the query (PS3.18 8.3.4.6.1)
    order_by: list[tuple[Attribute, bool]] = field(default_factory=list)  # (attribute, descending)
    offset: int = 0
    limit: int = 100


@dataclass
class SearchResult:
    rows: list[dict[str, Any]]
    total: int | None  # known only when more rows matched than were returned


def run(session: Session, request: SearchRequest, attributes: Sequence[Attribute]) -> SearchResult:
    """Rows (column values keyed by keyword, plus '_pk') for the page asked for, of the patients
    ``session`` may see."""
    base = _base(request)
    limited = visibility.parameters(session)
    if limited:
        base = base.where(visibility.condition())
    wanted = [a for a in attributes if a.column is not None]
    statement = base.with_only_columns(
        _PRIMARY[request.level].label("_pk"), *(a.column.label(a.keyword) for a in wanted)
    )
    for attribute, descending in request.order_by:
        column = attribute.match_column if attribute.match_column is not None else attribute.column
        statement = statement.order_by(column.desc() if descending else column.asc())
    statement = statement.order_by(_PRIMARY[request.level]).offset(request.offset).limit(request.limit + 1)
    rows = [dict(row._mapping) for row in session.execute(statement, limited)]
    total = None
    if len(rows) > request.limit:
        rows = rows[: request.limit]
        total = session.scalar(base.with_only_columns(func.count()).order_by(None), limited)
    return SearchResult(rows, total)


def request_attributes(session: Session, series_ids: Iterable[int]) -> dict[int, list[dict[str, str]]]:
    """Request Attributes Sequence items per series id, for series-level answers."""
    ids = list(series_ids)
    found: dict[int, list[dict[str, str]]] = {}
    if not ids:
        return found
    statement = select(
        RequestAttribute.series_fk,
        *(column.label(keyword) for keyword, _vr, column in REQUEST_ATTRIBUTE_KEYS.values()),
    ).where(RequestAttribute.series_fk.in_(ids)).order_by(RequestAttribute.id)
    for row in session.execute(statement):
        values = dict(row._mapping)
        found.setdefault(values.pop("series_fk"), []).append(values)
    return found


def representative_fragments(session: Session, level: Level, keys: Iterable[int]) -> dict[int, bytes]:
    """One instance's metadata JSON per study, series or instance id (for includefield extras)."""
    ids = list(keys)
    if not ids:
        return {}
    if level == "instance":
        statement = select(InstanceMetadata.instance_fk, InstanceMetadata.json).where(
            InstanceMetadata.instance_fk.in_(ids)
        )
    else:
        owner = Series.study_fk if level == "study" else Series.id
        first = (
            select(owner.label("owner"), func.min(InstanceMetadata.instance_fk).label("instance"))
            .join(Series, Series.id == InstanceMetadata.series_fk)
            .where(owner.in_(ids))
            .group_by(owner)
            .subquery()
        )
        statement = select(first.c.owner, InstanceMetadata.json).join(
            InstanceMetadata, InstanceMetadata.instance_fk == first.c.instance
        )
    return {owner: fragment for owner, fragment in session.execute(statement)}


def _base(request: SearchRequest) -> Select[Any]:
    if request.level == "study":
        statement = select(Study.id).select_from(Study)
    elif request.level == "series":
        statement = select(Series.id).select_from(Series).join(Study, Series.study_fk == Study.id)
    else:
        statement = (
            select(Instance.id)
            .select_from(Instance)
            .join(Series, Instance.series_fk == Series.id)
            .join(Study, Series.study_fk == Study.id)
        )
    statement = statement.join(Patient, Study.patient_fk == Patient.id)
    if request.study_uid is not None:
        statement = statement.where(Study.study_uid == request.study_uid)
    if request.series_uid is not None:
        statement = statement.where(Series.series_uid == request.series_uid)
    for condition in request.conditions:
        statement = statement.where(_condition(condition, request))
    return statement


def _condition(condition: Condition, request: SearchRequest) -> ColumnElement[bool]:
    attribute, match = condition.attribute, condition.match
    if isinstance(match, Universal):
        return true()
    if isinstance(match, NameQuery):
        return _person_name(attribute.name_prefix, match, request.fuzzy)
    if attribute.kind == "modalities":
        # Aliased, so a series-level search asks about any series of the study, not this one.
        other = Series.__table__.alias()
        return exists().where(other.c.study_fk == Study.id, _compare(other.c.modality, match))
    if attribute.kind == "sop_classes":
        other_series, other_instance = aliased(Series), aliased(Instance)
        return exists().where(
            other_instance.series_fk == other_series.id,
            other_series.study_fk == Study.id,
            _compare(other_instance.sop_class_uid, match),
        )
    if attribute.kind == "sequence":
        assert condition.item_key is not None
        column = REQUEST_ATTRIBUTE_KEYS[condition.item_key][2]
        # PS3.4 C.2.2.2.6: an entity matches when one item of its sequence matches.
        if request.level == "study":
            return exists().where(
                RequestAttribute.series_fk == Series.id, Series.study_fk == Study.id, _compare(column, match)
            )
        return exists().where(RequestAttribute.series_fk == Series.id, _compare(column, match))
    column = attribute.match_column if attribute.match_column is not None else attribute.column
    if attribute.kind == "int" and isinstance(match, Single | AnyOf):
        values = [int(v) for v in ((match.value,) if isinstance(match, Single) else match.values)]
        return column.in_(values)
    if attribute.keyword == "StudyDate" and request.timezone is not None:
        return _shifted_date(match, request.timezone)
    return _compare(column, match)


def _shifted_date(match: Match, offset: str) -> ColumnElement[bool]:
    """StudyDate given in the query's timezone: compare UTC date-times (PS3.18 8.3.4.6.1)."""
    tz = matching.offset_timezone(offset)
    if isinstance(match, Single):
        match = Range(match.value, match.value)
    if not isinstance(match, Range):
        return _compare(Study.__table__.c.study_date, match)
    low = None if match.low is None else matching.shift_datetime_key(match.low + "000000.000000", tz)
    high = None if match.high is None else matching.shift_datetime_key(match.high + "235959.999999", tz)
    return _compare(Study.study_datetime_utc, Range(low, high))


def _compare(column: Any, match: Match) -> ColumnElement[bool]:
    if isinstance(match, Universal):
        return true()
    if isinstance(match, Single):
        return column == match.value
    if isinstance(match, AnyOf):
        return column.in_(list(match.values))
    if isinstance(match, Range):
        # PS3.4 C.2.2.2.5: an empty value is not in any range, open-ended ones included.
        parts = [column != ""]
        if match.low is not None:
            parts.append(column >= match.low)
        if match.high is not None:
            parts.append(column <= match.high)
        return and_(*parts)
    if isinstance(match, Wildcard):
        return _like(column, match.pattern)
    raise TypeError(f"unexpected match {match!r}")


def _like(column: Any, pattern: str) -> ColumnElement[bool]:
    """DICOM wildcards as LIKE with '\\' escaping; a literal prefix also bounds an index range."""
    sql = "".join(
        "%" if ch == "*" else "_" if ch == "?" else "\\" + ch if ch in "%_\\" else ch for ch in pattern
    )
    condition = column.like(sql, escape="\\")
    prefix = pattern.split("*", 1)[0].split("?", 1)[0]
    if prefix:
        # Every string starting with ``prefix`` sorts in [prefix, prefix + U+10FFFF).
        condition = and_(column >= prefix, column < prefix + "\U0010ffff", condition)
    return condition


def _person_name(prefix: str, query: NameQuery, fuzzy: bool) -> ColumnElement[bool]:
    def col(name: str) -> InstrumentedAttribute[str]:
        model = Patient if prefix == "name" else Study
        return getattr(model, f"{prefix}_{name}")

    parts: list[ColumnElement[bool]] = []
    family = query.components[0]
    if not query.has_separator and isinstance(family, Single | Wildcard):
        # One component: the family name, or a pattern over the whole alphabetic group.
        alternatives = [_compare(col("family"), family), _compare(col("alphabetic"), family)]
        if fuzzy and isinstance(family, Single) and soundex(family.value):
            alternatives.append(col("family_soundex") == soundex(family.value))
        parts.append(or_(*alternatives))
    else:
        for name, match in zip(("family", "given", "middle", "prefix", "suffix"), query.components, strict=False):
            if isinstance(match, Universal):
                continue
            condition = _compare(col(name), match)
            if fuzzy and name in ("family", "given") and isinstance(match, Single):
                code = soundex(match.value)
                condition = or_(condition, col(f"{name}_soundex") == code) if code else condition
            parts.append(condition)
    for name, match in (("ideographic", query.ideographic), ("phonetic", query.phonetic)):
        if not isinstance(match, Universal):
            parts.append(_compare(col(name), match))
    condition = and_(*parts) if parts else true()
    if fuzzy and isinstance(query.folded, Wildcard):
        # Fuzzy patterns also match without accents: 'Mul*' finds 'Müller'.
        condition = or_(condition, _compare(col("folded"), query.folded))
    return condition
