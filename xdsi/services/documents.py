"""Non-image objects in their own media types (PS3.18 8.7.4 rendered media types, 9.1.2.1.3 WADO-URI defaults):
Structured Reports as text/html (a tree of content items) or text/plain; Encapsulated PDF and CDA
documents as stored (application/pdf, text/xml); video transfer syntaxes as their bitstream
(video/mpeg, video/mp4, video/h265). Which object offers which is its retrieve plan's to say.

Documents and video are never read whole: their bytes are located in the stored file (the
Encapsulated Document value, or the pixel data fragments of the video) and streamed, any byte
range of them alone (HTTP Range).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import UID

from xdsi.dicom.frames import fragment_ranges
from xdsi.dicom.parsing import Limits, open_instance
from xdsi.errors import NotAcceptable, NotFound
from xdsi.repository.blobs import BlobReader, BlobStore
from xdsi.repository.index import StoredInstance
from xdsi.services import charset, plans
from xdsi.services.retrieve import bulk_value, read_range

TEXT_HTML = "text/html"
TEXT_PLAIN = "text/plain"
_ENCAPSULATED_DOCUMENT = 0x00420011
_MAX_DEPTH = 64  # content tree depth shown; deeper items are summarised (PS3.3 has no limit)


def document(blobs: BlobStore, instance: StoredInstance, media_type: str, limits: Limits,
             charsets: tuple[str, ...] = ()) -> Payload:
    """The object rendered as ``media_type``, one of the forms its plan offers for its kind."""
    kind = plans.object_kind(instance)
    offered = plans.ObjectPlan.of(instance).rendered
    if kind is plans.ObjectKind.VIDEO:
        offered = offered[:1]  # its stream as stored; its frames as images are the renderer's
    if media_type not in offered or kind not in _RENDERERS:
        raise NotAcceptable(f"instance {instance.sop_instance_uid} ({kind.value}) cannot be rendered as {media_type} "
                            f"here; it offers {', '.join(offered) or 'no rendered form'}")
    return _RENDERERS[kind](blobs, instance, media_type, limits, charsets)


# --- streamed documents and video -------------------------------------------------------------

@dataclass(frozen=True)
class Payload:
    """A document or bitstream that lies in pieces (file offset, length) of a stored file."""

    media_type: str
    key: str
    pieces: tuple[tuple[int, int], ...]
    data: bytes | None = None  # text made here, a small value pydicom has read, or one of a Deflated file
    charset: str | None = None  # of a text answer

    @property
    def content_type(self) -> str:
        return f"{self.media_type}; charset={self.charset}" if self.charset else self.media_type

    @property
    def length(self) -> int:
        return sum(length for _offset, length in self.pieces)

    def chunks(self, blobs: BlobReader, start: int = 0, end: int | None = None) -> Generator[bytes, None, None]:
        """Bytes ``start`` to ``end`` (exclusive) of the payload, read piece by piece."""
        end = self.length if end is None else end
        if self.data is not None:
            yield self.data[start:end]
            return
        with blobs.open(self.key) as handle:
            at = 0
            for offset, length in self.pieces:
                lo, hi = max(start, at), min(end, at + length)
                if lo < hi:
                    yield from read_range(handle, offset + lo - at, hi - lo, self.key)
                at += length
                if at >= end:
                    return


def _encapsulated(blobs: BlobStore, instance: StoredInstance, media_type: str, limits: Limits,
                  _charsets: tuple[str, ...]) -> Payload:
    """The Encapsulated Document (0042,0011), without the pad byte the value may end with
    (PS3.3 C.24.2.1: Encapsulated Document Length gives the document's own length)."""
    value = bulk_value(blobs, instance, (_ENCAPSULATED_DOCUMENT,), limits)
    with open_instance(blobs.path(instance.blob_key), limits) as parsed:
        declared = parsed.dataset.get("EncapsulatedDocumentLength")
    length = value.length
    if declared is not None and 0 <= int(declared) <= value.length:
        length = int(declared)
    data = value.data[:length] if value.data is not None else None
    return Payload(media_type, instance.blob_key, ((value.offset, length),), data)


def bitstream(blobs: BlobStore, instance: StoredInstance, media_type: str, limits: Limits,
              _charsets: tuple[str, ...] = ()) -> Payload:
    """The video bitstream: the pixel data fragments after the Basic Offset Table, joined (PS3.5 8.2.5)."""
    with open_instance(blobs.path(instance.blob_key), limits) as parsed:
        if parsed.pixel_data is None:
            raise NotFound(f"instance {instance.sop_instance_uid} has no pixel data")
        pieces = tuple(fragment_ranges(parsed.stream, parsed.pixel_data))
    return Payload(media_type, instance.blob_key, pieces)


# --- Structured Reports -------------------------------------------------------------------------

def _structured_report(blobs: BlobStore, instance: StoredInstance, media_type: str, limits: Limits,
                       charsets: tuple[str, ...]) -> Payload:
    """The report as text/html or text/plain in the first acceptable of ``charsets``."""
    with open_instance(blobs.path(instance.blob_key), limits) as parsed:
        ds = parsed.dataset
        if media_type == TEXT_HTML:
            encoded = charset.encode(report_html(ds, charsets), charsets, html=True)
        else:
            encoded = charset.encode(report_text(ds), charsets, html=False)
    return Payload(media_type, instance.blob_key, ((0, len(encoded.data)),), encoded.data, encoded.charset)


def report_html(ds: Dataset, charsets: tuple[str, ...] = ()) -> str:
    """A self-contained HTML page: the report's title, its header, and the content tree as nested lists.

    Every value is escaped; the meta charset names what ``charset.encode`` will pick for it.
    """
    label = _first_label(charsets)
    title = _concept(ds) or _sop_class_name(ds)
    out = [
        "<!DOCTYPE html>",
        f'<html><head><meta charset="{html.escape(label)}"><title>{_e(title)}</title>',
        "<style>body{font-family:sans-serif;margin:1.5em}dl.header{display:grid;grid-template-columns:max-content auto;"
        "gap:.2em 1em}dt{font-weight:bold}.concept{font-weight:bold}.rel{color:#777;font-size:.8em}"
        ".text{white-space:pre-wrap}ul{list-style:none;padding-left:1.2em;border-left:1px solid #ddd}</style>",
        f"</head><body><h1>{_e(title)}</h1>",
        '<dl class="header">',
    ]
    for name, value in _header(ds):
        out.append(f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>")
    out.append("</dl>")
    out.append(_html_items(ds.get("ContentSequence", ()), 1))
    out.append("</body></html>")
    return "\n".join(out)


def report_text(ds: Dataset) -> str:
    """The report as indented plain text: the title, the header lines, then one line per content item."""
    lines = [_concept(ds) or _sop_class_name(ds), ""]
    lines += [f"{name}: {value}" for name, value in _header(ds)]
    lines.append("")
    _text_items(ds.get("ContentSequence", ()), 0, lines)
    return "\n".join(lines) + "\n"


def _first_label(charsets: tuple[str, ...]) -> str:
    for name in charsets or (charset.DEFAULT,):
        if name != "*" and charset.first_known((name,)) is not None:
            return name
    return charset.DEFAULT


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _sop_class_name(ds: Dataset) -> str:
    uid = UID(str(ds.get("SOPClassUID", "")))
    return uid.name if uid.is_valid else "Structured Report"


def _header(ds: Dataset) -> list[tuple[str, str]]:
    """PS3.3 C.17.2 (SR Document General): who, when, and the report's state."""
    rows = [
        ("Patient", _person(ds.get("PatientName"))),
        ("Patient ID", str(ds.get("PatientID", "") or "")),
        ("Birth date", _date(ds.get("PatientBirthDate"))),
        ("Sex", str(ds.get("PatientSex", "") or "")),
        ("Study date", _date(ds.get("StudyDate"))),
        ("Accession number", str(ds.get("AccessionNumber", "") or "")),
        ("Study", str(ds.get("StudyDescription", "") or "")),
        ("Content date", " ".join(filter(None, (_date(ds.get("ContentDate")), _time(ds.get("ContentTime")))))),
        ("Completion", str(ds.get("CompletionFlag", "") or "")),
        ("Verification", str(ds.get("VerificationFlag", "") or "")),
    ]
    for observer in ds.get("VerifyingObserverSequence", ()):
        rows.append(("Verified by", " ".join(filter(None, (
            _person(observer.get("VerifyingObserverName")), str(observer.get("VerifyingOrganization", "") or ""),
            _datetime(observer.get("VerificationDateTime")))))))
    return [(name, value) for name, value in rows if value]


def _concept(item: Dataset) -> str:
    return _code(item.get("ConceptNameCodeSequence"))


def _code(sequence: Sequence[Dataset] | None) -> str:
    """A code as people read it: its meaning, then (value, scheme) (PS3.3 8.8)."""
    if not sequence:
        return ""
    code = sequence[0]
    value = code.get("CodeValue") or code.get("LongCodeValue") or code.get("URNCodeValue") or ""
    meaning = str(code.get("CodeMeaning", "") or "")
    scheme = str(code.get("CodingSchemeDesignator", "") or "")
    return f"{meaning} ({value}, {scheme})" if meaning and value else (meaning or str(value))


def _value(item: Dataset) -> str:
    """The value of a content item by its Value Type (PS3.3 C.17.3.2.1, Table C.17.3-7)."""
    kind = str(item.get("ValueType", "") or "")
    if kind == "TEXT":
        return str(item.get("TextValue", "") or "")
    if kind == "CODE":
        return _code(item.get("ConceptCodeSequence"))
    if kind == "NUM":
        return _measurement(item)
    if kind == "DATE":
        return _date(item.get("Date"))
    if kind == "TIME":
        return _time(item.get("Time"))
    if kind == "DATETIME":
        return _datetime(item.get("DateTime"))
    if kind == "PNAME":
        return _person(item.get("PersonName"))
    if kind == "UIDREF":
        return str(item.get("UID", "") or "")
    if kind in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        return "; ".join(_reference(ref) for ref in item.get("ReferencedSOPSequence", ()))
    if kind in ("SCOORD", "SCOORD3D"):
        points = [f"{float(v):g}" for v in (item.get("GraphicData") or ())]
        return f"{item.get('GraphicType', '')} " + ", ".join(points)
    if kind == "TCOORD":
        return str(item.get("TemporalRangeType", "") or "")
    if kind == "TABLE":
        return "table"
    return ""


def _measurement(item: Dataset) -> str:
    measured = item.get("MeasuredValueSequence")
    if not measured:
        qualifier = _code(item.get("NumericValueQualifierCodeSequence"))
        return qualifier or "no value"
    value = measured[0]
    units = value.get("MeasurementUnitsCodeSequence")
    unit = ""
    if units:
        code = units[0]
        unit = str(code.get("CodeValue", "") or "") if code.get("CodingSchemeDesignator") == "UCUM" else _code(units)
    number = value.get("NumericValue")
    text = f"{float(number):g}" if number is not None and str(number) != "" else ""
    return " ".join(part for part in (text, unit if unit not in ("1", "") else "") if part)


def _reference(ref: Dataset) -> str:
    sop_class = UID(str(ref.get("ReferencedSOPClassUID", "")))
    name = sop_class.name if sop_class.is_valid else str(sop_class)
    text = f"{name} {ref.get('ReferencedSOPInstanceUID', '')}"
    frames = ref.get("ReferencedFrameNumber")
    if frames:
        text += f" frame {frames}"
    return text


def _relation(item: Dataset) -> str:
    return str(item.get("RelationshipType", "") or "")


def _by_reference(item: Dataset) -> str:
    """PS3.3 C.17.3.2.5: a relationship by reference names the target item by its position."""
    target = item.get("ReferencedContentItemIdentifier")
    if target is None:
        return ""
    values = target if isinstance(target, Sequence) else [target]
    return "see item " + ".".join(str(int(v)) for v in values)


def _html_items(items: Sequence[Dataset], depth: int) -> str:
    if not items:
        return ""
    if depth > _MAX_DEPTH:
        return f"<ul><li>… {len(items)} more items deeper than {_MAX_DEPTH} levels</li></ul>"
    parts = ["<ul>"]
    for item in items:
        relation = _relation(item)
        concept = _concept(item)
        reference = _by_reference(item)
        value = reference or _value(item)
        line = f'<span class="rel">{_e(relation)}</span> ' if relation else ""
        if concept:
            line += f'<span class="concept">{_e(concept)}</span>'
        if value:
            css = "text" if item.get("ValueType") == "TEXT" else "value"
            line += (": " if concept else "") + f'<span class="{css}">{_e(value)}</span>'
        parts.append(f"<li>{line}{_html_items(item.get('ContentSequence', ()), depth + 1)}</li>")
    parts.append("</ul>")
    return "".join(parts)


def _text_items(items: Sequence[Dataset], depth: int, lines: list[str]) -> None:
    if depth >= _MAX_DEPTH:
        lines.append("  " * depth + f"… {len(items)} more items")
        return
    for item in items:
        concept = _concept(item)
        value = _by_reference(item) or _value(item)
        text = ": ".join(part for part in (concept, value) if part)
        relation = _relation(item)
        indent = "  " * depth
        first, *rest = ((f"[{relation}] " if relation else "") + text).split("\n")
        lines.append(indent + first)
        lines.extend(indent + "    " + line for line in rest)
        _text_items(item.get("ContentSequence", ()), depth + 1, lines)


def _person(value: object) -> str:
    if not value:
        return ""
    groups = str(value).split("=")
    return " = ".join(" ".join(part for part in group.split("^") if part) for group in groups if group)


def _date(value: object) -> str:
    text = str(value or "").strip()
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def _time(value: object) -> str:
    text = str(value or "").strip()
    return f"{text[:2]}:{text[2:4]}" + (f":{text[4:6]}" if len(text) >= 6 else "") if len(text) >= 4 else text


def _datetime(value: object) -> str:
    text = str(value or "").strip()
    return " ".join(filter(None, (_date(text[:8]), _time(text[8:14])))) if len(text) >= 8 else text


_RENDERERS: dict[plans.ObjectKind, Callable[[BlobStore, StoredInstance, str, Limits, tuple[str, ...]], Payload]] = {
    plans.ObjectKind.STRUCTURED_REPORT: _structured_report,
    plans.ObjectKind.PDF: _encapsulated,
    plans.ObjectKind.CDA: _encapsulated,
    plans.ObjectKind.VIDEO: bitstream,
}
