"""Search for studies, series and instances (QIDO-RS, PS3.18 10.6) from the index alone.

Query parameters arrive already percent-decoded as (name, value) pairs. Keys are keywords,
tags (``00100020``) or sequence paths (``RequestAttributesSequence.ScheduledProcedureStepID``,
``00400275.00400009``). Results are DICOM JSON objects built straight from index rows; the
XML answer is derived from the same objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_keyword, tag_for_keyword
from sqlalchemy.orm import Session

from xdsi.dicom import matching
from xdsi.dicom.tags import INSTANCE_AVAILABILITY, REQUEST_ATTRIBUTES_SEQUENCE, RETRIEVE_URL, SPECIFIC_CHARACTER_SET
from xdsi.encoding import dicom_json, native_xml
from xdsi.encoding.model import Encoded, tag_text
from xdsi.encoding.values import element_from_text
from xdsi.errors import InvalidRequest
from xdsi.repository import search as index_search
from xdsi.repository.search import BY_KEYWORD, BY_TAG, LEVELS, Attribute, Condition, Level, SearchRequest
from xdsi.services.metadata import JSON_URI_OPENING

_CONTROL = {"limit", "offset", "fuzzymatching", "includefield", "orderby", "emptyvaluematching",
            "multiplevaluematching"}
_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_LIST_VRS = {"UI", "CS"}  # comma-separated lists are unambiguous only where values cannot hold commas

# Which levels' attributes each search resource returns (PS3.18 10.6.3.3).
_RETURNED_LEVELS: dict[tuple[Level, bool, bool], tuple[Level, ...]] = {
    ("study", False, False): ("study",),
    ("series", False, False): ("study", "series"),
    ("series", True, False): ("series",),
    ("instance", False, False): ("study", "series", "instance"),
    ("instance", True, False): ("series", "instance"),
    ("instance", True, True): ("instance",),
}


@dataclass
class SearchAnswer:
    """The datasets found (as DICOM JSON objects) and what the client should be told."""

    results: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    def json(self) -> bytes:
        return dicom_json.dumps(self.results)

    def xml_documents(self) -> Iterable[bytes]:
        """One NativeDicomModel document per result, for a multipart/related answer."""
        for result in self.results:
            yield native_xml.dumps_encoded(dicom_json.encoded_from_json(result))


@dataclass(frozen=True)
class SearchLimits:
    max_results: int
    max_offset: int


def search(
    session: Session,
    level: Level,
    params: Sequence[tuple[str, str]],
    *,
    root: str,
    limits: SearchLimits,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> SearchAnswer:
    """Run one QIDO-RS search; ``root`` is the public DICOMweb base URL for RetrieveURLs."""
    request, includes, include_all, warnings = parse(level, params, limits, study_uid, series_uid)
    levels = _RETURNED_LEVELS[(level, study_uid is not None, series_uid is not None)]
    attributes = _returned(levels, request, includes, include_all)
    result = index_search.run(session, request, attributes)
    if result.total is not None:
        remaining = result.total - request.offset - len(result.rows)
        warnings.append(f"There are {remaining} additional results that can be requested")
    extras = [tag for tag in includes if tag not in BY_TAG and tag not in _COMPUTED]
    fragments = (
        index_search.representative_fragments(session, level, (row["_pk"] for row in result.rows))
        if extras and result.rows
        else {}
    )
    sequences = (
        index_search.request_attributes(session, (row["_pk"] for row in result.rows))
        if level == "series" and any(a.keyword == "RequestAttributesSequence" for a in attributes)
        else {}
    )
    objects = []
    for row in result.rows:
        obj = _object(row, attributes, level, root)
        if row["_pk"] in sequences:
            obj.update(_request_sequence(sequences[row["_pk"]]))
        if extras and row["_pk"] in fragments:
            _merge_extras(obj, fragments[row["_pk"]], extras, root)
        objects.append(dict(sorted(obj.items())))
    return SearchAnswer(objects, warnings)


def parse(
    level: Level,
    params: Sequence[tuple[str, str]],
    limits: SearchLimits,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> tuple[SearchRequest, list[int], bool, list[str]]:
    """The SearchRequest, the includefield tags, whether 'all' was asked, and warnings."""
    request = SearchRequest(level=level, study_uid=study_uid, series_uid=series_uid)
    includes: list[int] = []
    include_all = False
    warnings: list[str] = []
    keys: dict[str, list[str]] = {}
    limit: int | None = None
    for name, value in params:
        if name == "includefield":
            for item in _split_list(value):
                if item == "all":
                    include_all = True
                else:
                    includes.append(_tag_of(item, "includefield"))
        elif name == "limit":
            limit = _integer(name, value, minimum=1)
        elif name == "offset":
            request.offset = _integer(name, value, minimum=0)
            if request.offset > limits.max_offset:
                raise InvalidRequest(f"offset {request.offset} is beyond the maximum of {limits.max_offset}")
        elif name == "fuzzymatching":
            request.fuzzy = _boolean(name, value)
        elif name == "orderby":
            request.order_by.extend(_order(item) for item in _split_list(value))
        elif name in ("emptyvaluematching", "multiplevaluematching"):
            if _boolean(name, value):
                matching_name = "Empty Value" if name.startswith("empty") else "Multiple Value"
                warnings.append(f"The {name} parameter is not supported. "
                                f"{matching_name} Matching has not been performed.")
        elif name == "TimezoneOffsetFromUTC" or name.upper() == "00080201":
            matching.offset_timezone(value)
            request.timezone = value
        else:
            keys.setdefault(name, []).append(value)
    for name, values in keys.items():
        request.conditions.append(_condition(level, name, values))
    if limit is None or limit > limits.max_results:
        if limit is not None:
            warnings.append(
                f"The limit {limit} exceeds the maximum of {limits.max_results} results per request"
            )
        limit = limits.max_results
    request.limit = limit
    return request, includes, include_all, warnings


def _condition(level: Level, name: str, values: list[str]) -> Condition:
    path = name.split(".")
    if len(path) > 2:
        raise InvalidRequest(f"{name}: only one level of sequence nesting can be matched")
    attribute = _attribute(path[0], name)
    if LEVELS.index(attribute.level) > LEVELS.index(level):
        raise InvalidRequest(f"{attribute.keyword} is a {attribute.level}-level attribute; it cannot be matched "
                             f"in a {level} search")
    if attribute.kind == "sequence":
        if len(path) != 2:
            raise InvalidRequest(
                f"{name}: match a key inside the sequence, e.g. {attribute.keyword}.RequestedProcedureID"
            )
        item_tag = _tag_of(path[1], name)
        if item_tag not in index_search.REQUEST_ATTRIBUTE_KEYS:
            supported = ", ".join(k for k, _vr, _c in index_search.REQUEST_ATTRIBUTE_KEYS.values())
            raise InvalidRequest(f"{name}: items of {attribute.keyword} can be matched on {supported}")
        _keyword, vr, _column = index_search.REQUEST_ATTRIBUTE_KEYS[item_tag]
        return Condition(attribute, _value_match(vr, name, values), item_key=item_tag)
    if len(path) == 2:
        raise InvalidRequest(f"{name}: {attribute.keyword} is not a sequence")
    if attribute.kind == "pn":
        if len(values) > 1:
            raise InvalidRequest(f"{name}: a person name can be matched against one value")
        return Condition(attribute, matching.parse_person_name(values[0], name))
    vr = "UI" if attribute.kind in ("uid", "sop_classes") else attribute.vr
    return Condition(attribute, _value_match(vr, name, values))


def _value_match(vr: str, name: str, values: list[str]) -> matching.Match:
    parts: list[str] = []
    for value in values:
        parts.extend(re.split(r"[\\,]", value) if vr in _LIST_VRS else value.split("\\"))
    joined = "\\".join(parts)
    if vr == "UI":
        return matching.parse_uid_list(joined, name)
    if vr == "DA":
        return _single(values, name, matching.parse_date)
    if vr == "TM":
        return _single(values, name, matching.parse_time)
    if vr in ("IS", "US"):
        return matching.parse_integer(joined, name)
    return matching.parse_text(joined, name)


def _single(values: list[str], name: str, parse: Any) -> matching.Match:
    if len(values) > 1:
        raise InvalidRequest(f"{name}: give one value or one range")
    return parse(values[0], name)


def _attribute(text: str, name: str) -> Attribute:
    tag = _tag_of(text, name)
    attribute = BY_TAG.get(tag)
    if attribute is None:
        keyword = dictionary_keyword(tag) if _known(tag) else f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        raise InvalidRequest(
            f"{keyword} is not a search key of this archive; keys are {', '.join(sorted(BY_KEYWORD))}"
        )
    return attribute


def _tag_of(text: str, where: str) -> int:
    text = text.strip()
    if _TAG.fullmatch(text):
        return int(text, 16)
    tag = tag_for_keyword(text)
    if tag is None:
        raise InvalidRequest(f"{where}: {text[:64]!r} is neither a DICOM keyword nor an 8-digit tag")
    return tag


def _known(tag: int) -> bool:
    try:
        dictionary_keyword(tag)
    except KeyError:
        return False
    return True


def _integer(name: str, value: str, minimum: int) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", value.strip()):
        raise InvalidRequest(f"{name}: {value[:20]!r} is not a non-negative integer")
    number = int(value)
    if number < minimum:
        raise InvalidRequest(f"{name}: must be at least {minimum}")
    return number


def _boolean(name: str, value: str) -> bool:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidRequest(f"{name}: {value[:20]!r} is neither true nor false")


def _order(item: str) -> tuple[Attribute, bool]:
    descending = item.startswith("-")
    attribute = _attribute(item.lstrip("-+"), "orderby")
    if attribute.column is None:
        raise InvalidRequest(f"orderby: {attribute.keyword} cannot be sorted on")
    return attribute, descending


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


# Attributes the answer carries that are not index columns (PS3.18 Tables 10.6.3-3/4/5).
_COMPUTED = {SPECIFIC_CHARACTER_SET, INSTANCE_AVAILABILITY, RETRIEVE_URL}


def _returned(
    levels: tuple[Level, ...], request: SearchRequest, includes: list[int], include_all: bool
) -> list[Attribute]:
    chosen: dict[str, Attribute] = {}
    for attribute in index_search.CATALOG:
        if attribute.level in levels and (attribute.default or include_all):
            chosen[attribute.keyword] = attribute
    for condition in request.conditions:
        chosen[condition.attribute.keyword] = condition.attribute
    for tag in includes:
        if tag in BY_TAG:
            chosen[BY_TAG[tag].keyword] = BY_TAG[tag]
    # The UIDs that place a result are always returned (RetrieveURL needs them too).
    placing = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    for keyword in placing[: LEVELS.index(request.level) + 1]:
        chosen[keyword] = BY_KEYWORD[keyword]
    return list(chosen.values())


def _object(row: dict[str, Any], attributes: list[Attribute], level: Level, root: str) -> dict[str, Any]:
    elements = [
        Encoded(SPECIFIC_CHARACTER_SET, "CS", None, "values", ["ISO_IR 192"]),
        Encoded(INSTANCE_AVAILABILITY, "CS", None, "values", ["ONLINE"]),
    ]
    for attribute in attributes:
        if attribute.column is None:
            continue
        value = row.get(attribute.keyword)
        if attribute.keyword == "TimezoneOffsetFromUTC" and not value:
            continue  # Type C: only when known
        elements.append(element_from_text(attribute.tag, attribute.vr, value))
    url = f"{root}/studies/{row['StudyInstanceUID']}"
    if level != "study":
        url += f"/series/{row['SeriesInstanceUID']}"
    if level == "instance":
        url += f"/instances/{row['SOPInstanceUID']}"
    elements.append(Encoded(RETRIEVE_URL, "UR", None, "values", [url]))
    return dicom_json.encoded_to_json(elements)


def _request_sequence(items: list[dict[str, str]]) -> dict[str, Any]:
    """PS3.18 10.6.3.3: Request Attributes Sequence, one item per request the series answers."""
    walks = [
        [element_from_text(tag, vr, item[keyword]) for tag, keyword, vr in _REQUEST_ITEM_ORDER if item.get(keyword)]
        for item in items
    ]
    return dicom_json.encoded_to_json([Encoded(REQUEST_ATTRIBUTES_SEQUENCE, "SQ", None, "items", walks)])


# The item's attributes in tag order (PS3.5 7.1), worked out once.
_REQUEST_ITEM_ORDER = tuple(
    (tag, keyword, vr) for tag, (keyword, vr, _column) in sorted(index_search.REQUEST_ATTRIBUTE_KEYS.items())
)


def _merge_extras(obj: dict[str, Any], fragment: bytes, tags: list[int], root: str) -> None:
    """Attributes asked for by includefield but not indexed, from a stored instance's metadata."""
    absolute = fragment.replace(JSON_URI_OPENING, JSON_URI_OPENING + root.encode())
    stored = dicom_json.loads_fragment(absolute)
    for tag in tags:
        key = tag_text(tag)
        if key in stored and key not in obj:
            obj[key] = stored[key]
