"""Bounded reading of PS3.10 files: structure check, capped inflate, header-first parse.

pydicom trusts declared lengths: it reads ``length`` bytes for an element, reads an
undefined-length value whole, and inflates a Deflated dataset in one ``zlib.decompress``.
A hostile file can therefore allocate gigabytes from a few bytes. Before pydicom sees a
file, ``open_instance`` walks every element header (PS3.5 7.1, 7.5) and checks that each
declared length fits in the bytes that remain, caps nesting, inflates Deflated datasets
through a bounded decompressor into a temporary file, and finally lets pydicom parse the
header with ``defer_size`` so large values stay on disk. Pixel Data is never read here: its
location is reported so callers can stream it.

Explicit VR Little Endian data sets, nearly everything a modern sender stores, take a quicker
route first: one pass over an in-memory copy of the header checks the same bounds and yields
the raw elements (``RawElement``), and pydicom parses only if a caller asks for the dataset.
That route declines whatever it does not model exactly (UN, out-of-order tags, a character set
per item, ...); the general route then reads the file and reports any fault.

A data set sent without File Meta Information (old exports, some web clients) is recognised by
``read_bare_dataset`` from its first elements, with the same bounded walk; ``file_meta_header``
writes the preamble, prefix and group 0002 that make it a PS3.10 file.

Over 500 lines on purpose: the general walk (``_Walker``) and the quick route (``_RawReader``)
enforce the same bounds on the same grammar, and are kept side by side so that a change to
one is made to the other; ``open_instance`` is their one entry point.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import BinaryIO, NamedTuple, cast

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import UID

from xdsi.dicom import uids, vrs
from xdsi.dicom.tags import (
    DELIMITATION_GROUP,
    ITEM,
    ITEM_DELIMITER,
    PIXEL_DATA_TAGS,
    SEQUENCE_DELIMITER,
    SOP_CLASS_UID,
    SOP_INSTANCE_UID,
    UNDEFINED_LENGTH,
)
from xdsi.errors import InstanceTooLarge, MalformedDicom, MissingAttribute, NotDicom, UnsupportedTransferSyntax

PREAMBLE_LENGTH = 128
MAX_DEPTH = 32
# PS3.5 7.1.2: these VRs carry 2 reserved bytes and a 32-bit length in explicit VR.
LONG_VRS = frozenset(vr.encode() for vr in vrs.LONG_VRS)
_CHUNK = 1 << 20
NO_DICM = "not a DICOM PS3.10 file: no 'DICM' prefix after the 128-byte preamble"


@dataclass(frozen=True)
class Limits:
    """What a file may declare before it is refused."""

    max_bytes: int
    max_inflated_bytes: int
    max_deflate_ratio: int
    defer_size: int


@dataclass(frozen=True)
class PixelDataLocation:
    """Where the top-level pixel data value lies in the dataset stream."""

    tag: int
    vr: str
    value_offset: int
    length: int | None  # None: undefined length (encapsulated fragments)
    end: int


class RawElement(NamedTuple):
    """One element as the quick route read it: Value Field bytes, or items of a sequence."""

    tag: int
    vr: str
    length: int | None  # None: undefined length
    value: bytes | None  # None for sequences and for the top-level Pixel Data (never read)
    items: list[list[RawElement]] | None = None


@dataclass
class ParsedInstance:
    """A parsed header. ``dataset`` holds Pixel Data as a deferred raw element, never its value."""

    meta: FileMetaDataset
    transfer_syntax: str
    pixel_data: PixelDataLocation | None
    size: int
    stream: BinaryIO  # what the offsets refer to: the file, or its inflated dataset when Deflated
    elements: list[RawElement] | None  # the data set when the quick route read it, else None
    _load: Callable[[], FileDataset]

    @cached_property
    def dataset(self) -> FileDataset:
        """pydicom's dataset of the header, parsed on first use (inside the ``open_instance`` block)."""
        return self._load()


@contextlib.contextmanager
def open_instance(path: str | os.PathLike[str], limits: Limits) -> Iterator[ParsedInstance]:
    """Parse ``path`` safely; the dataset's deferred values stay readable inside the block."""
    size = os.path.getsize(path)
    if size > limits.max_bytes:
        raise InstanceTooLarge(f"file of {size} bytes exceeds the limit of {limits.max_bytes} bytes")
    with open(path, "rb") as fp, contextlib.ExitStack() as stack:
        meta, dataset_start = _read_meta(fp, size)
        ts = _transfer_syntax(meta)
        stream: BinaryIO = fp
        stream_name = os.fspath(path)
        start, end = dataset_start, size
        if uids.is_deflated(ts):
            inflated = cast(BinaryIO, stack.enter_context(
                tempfile.NamedTemporaryFile(prefix="xdsi-inflate-", dir=os.path.dirname(os.path.abspath(path)))
            ))
            fp.seek(dataset_start)
            end = _inflate(fp, inflated, size - dataset_start, limits)
            stream, stream_name, start = inflated, inflated.name, 0
        implicit, little = _encoding(ts)
        stream.seek(start)
        implicit = _detect_implicit(stream, implicit, little)
        quick = _RawReader(stream, end).read(start) if little and not implicit else None
        elements, pixel = quick if quick is not None else (None, _Walker(stream, implicit, little).walk(start, end))
        parsed = ParsedInstance(
            meta=meta, transfer_syntax=ts, pixel_data=pixel, size=size, stream=stream, elements=elements,
            _load=lambda: _read_header(stream, stream_name, meta, start, end, implicit, little, pixel, limits),
        )
        if elements is None:
            _ = parsed.dataset  # the general route reports a malformed header here, not at first use
        yield parsed


@dataclass(frozen=True)
class BareDataset:
    """What the first elements of a data set without File Meta Information tell (PS3.10 7.1 needs it)."""

    transfer_syntax: str
    sop_class_uid: str
    sop_instance_uid: str


def identify(fp: BinaryIO, size: int) -> FileMetaDataset | BareDataset:
    """The File Meta Information of a PS3.10 file, or what a bare data set says; NotDicom for neither.

    Reads the File Meta group or a bare data set's first elements only, whatever the file's size.
    """
    bare = read_bare_dataset(fp, size)
    return bare if bare is not None else _read_meta(fp, size)[0]


def read_bare_dataset(fp: BinaryIO, size: int) -> BareDataset | None:
    """None for a file with the 'DICM' prefix; else its encoding and SOP UIDs, or NotDicom.

    PS3.10 7.1 wants the File Meta Information, yet data sets without it are common in old
    exports. As pydicom does, the first element tells the encoding: valid VR letters at bytes
    4-5 mean explicit VR, then big endian if only the big-endian reading of the group fits
    (PS3.5 7.1); otherwise implicit VR little endian, the default transfer syntax (PS3.5 10.1).
    The top-level elements up to (0008,0018) are then walked with every header checked against
    the bytes that remain, and must hold SOP Class and SOP Instance UIDs: without them the
    bytes are taken for something else than DICOM.
    """
    fp.seek(0)
    head = fp.read(PREAMBLE_LENGTH + 4)
    if head[PREAMBLE_LENGTH:] == b"DICM":
        return None
    try:
        return _bare_dataset(fp, size, head)
    except MalformedDicom as exc:
        raise NotDicom(f"{NO_DICM}, nor a data set without File Meta Information: {exc}") from exc


def _bare_dataset(fp: BinaryIO, size: int, head: bytes) -> BareDataset:
    if len(head) < 8:
        raise MalformedDicom(f"{len(head)} bytes are too few for one element")
    if head[4:6] in _RAW_VRS or head[4:6] == b"UN":
        little = struct.unpack("<HH", head[:4]) <= (SOP_CLASS_UID >> 16, SOP_CLASS_UID & 0xFFFF)
        syntax = uids.EXPLICIT_VR_LITTLE_ENDIAN if little else uids.EXPLICIT_VR_BIG_ENDIAN
    else:
        little, syntax = True, uids.IMPLICIT_VR_LITTLE_ENDIAN
    implicit, _ = _encoding(syntax)
    if struct.unpack("<H" if little else ">H", head[:2])[0] == 0x0002:
        raise MalformedDicom("it starts with File Meta Information (group 0002) without the preamble and prefix")
    found: dict[int, str] = {}
    walker = _Walker(fp, implicit, little)
    for tag, length, value_pos in walker.leading_elements(size, SOP_INSTANCE_UID):
        if tag in (SOP_CLASS_UID, SOP_INSTANCE_UID) and length <= uids.MAX_UID_LENGTH:
            value = walker._read(value_pos, size, length, "UID value").rstrip(b"\0 ")
            found[tag] = value.decode("ascii", "replace")
    sop_class, sop_instance = found.get(SOP_CLASS_UID), found.get(SOP_INSTANCE_UID)
    if not (uids.is_valid_uid(sop_class) and uids.is_valid_uid(sop_instance)):
        raise MalformedDicom("no valid SOP Class UID (0008,0016) and SOP Instance UID (0008,0018) among its first "
                             "elements")
    return BareDataset(syntax, str(sop_class), str(sop_instance))


def file_meta_header(bare: BareDataset, implementation_class_uid: str, implementation_version_name: str) -> bytes:
    """Preamble, 'DICM' and File Meta Information (PS3.10 7.1) that make ``bare`` a PS3.10 file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(bare.sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(bare.sop_instance_uid)
    meta.TransferSyntaxUID = UID(bare.transfer_syntax)
    meta.ImplementationClassUID = UID(implementation_class_uid)
    meta.ImplementationVersionName = implementation_version_name
    out = DicomBytesIO()
    out.write(b"\0" * PREAMBLE_LENGTH + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)  # adds (0002,0000) and (0002,0001)
    return out.getvalue()


def _read_meta(fp: BinaryIO, size: int) -> tuple[FileMetaDataset, int]:
    fp.seek(0)
    head = fp.read(PREAMBLE_LENGTH + 4)
    if len(head) < PREAMBLE_LENGTH + 4 or head[PREAMBLE_LENGTH:] != b"DICM":
        raise NotDicom(NO_DICM)
    # PS3.10 7.1: the File Meta Information is always Explicit VR Little Endian, group 0002.
    walker = _Walker(fp, implicit=False, little=True)
    pos = PREAMBLE_LENGTH + 4
    while pos < size:
        group = struct.unpack("<H", walker._read(pos, size, 2, "file meta element"))[0]
        if group != 0x0002:
            break
        pos = walker.walk_element(pos, size, depth=0)
    if pos >= size:
        raise MalformedDicom("file ends within or right after the file meta information: no dataset")
    fp.seek(PREAMBLE_LENGTH + 4)
    try:
        group2 = read_dataset(fp, False, True, bytelength=pos - PREAMBLE_LENGTH - 4)
        meta = FileMetaDataset(group2)
    except Exception as exc:  # pydicom raises many types on bad input
        raise MalformedDicom(f"file meta information cannot be parsed: {exc}") from exc
    return meta, pos


def _transfer_syntax(meta: FileMetaDataset) -> str:
    ts = meta.get("TransferSyntaxUID")
    if not ts:
        raise MissingAttribute("file meta information lacks Transfer Syntax UID (0002,0010)")
    ts = str(ts)
    if not uids.is_valid_uid(ts):
        raise UnsupportedTransferSyntax(f"Transfer Syntax UID {ts[:80]!r} is not a valid UID")
    if not uids.is_known_transfer_syntax(ts):
        raise UnsupportedTransferSyntax(f"Transfer Syntax {ts} is not a DICOM transfer syntax this archive reads")
    return ts


def _encoding(ts: str) -> tuple[bool, bool]:
    if ts == uids.IMPLICIT_VR_LITTLE_ENDIAN:
        return True, True
    if ts == uids.EXPLICIT_VR_BIG_ENDIAN:
        return False, False
    return False, True


def _detect_implicit(stream: BinaryIO, implicit: bool, little: bool) -> bool:
    """Follow pydicom: a dataset whose first element has no valid VR letters is implicit VR."""
    pos = stream.tell()
    head = stream.read(6)
    stream.seek(pos)
    if len(head) < 6:
        return implicit
    vr = head[4:6]
    looks_explicit = vr.isalpha() and vr.isupper()
    if implicit and looks_explicit and little:
        return False
    if not implicit and not looks_explicit and little:
        return True
    return implicit


def _inflate(src: BinaryIO, dst: BinaryIO, compressed: int, limits: Limits) -> int:
    """PS3.5 A.5: raw deflate of everything after the meta group, inflated under caps."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = consumed = 0
    remaining = compressed
    try:
        while remaining and not inflater.eof:
            data = src.read(min(_CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            consumed += len(data)
            # max_length bounds each output chunk; the rest of the input waits in unconsumed_tail.
            while data and not inflater.eof:
                out = inflater.decompress(data, _CHUNK)
                data = inflater.unconsumed_tail
                total += len(out)
                _check_inflated(total, consumed - len(data), limits)
                dst.write(out)
        out = inflater.flush()
    except zlib.error as exc:
        raise MalformedDicom(f"deflated dataset is corrupt: {exc}") from exc
    total += len(out)
    _check_inflated(total, consumed, limits)
    dst.write(out)
    dst.flush()
    return total


def _check_inflated(total: int, consumed: int, limits: Limits) -> None:
    """Caps on the inflated size, and on the ratio to the compressed bytes consumed so far."""
    if total > limits.max_inflated_bytes:
        raise InstanceTooLarge(
            f"deflated dataset inflates beyond the limit of {limits.max_inflated_bytes} bytes"
        )
    if total > 1 << 20 and total > max(consumed, 1) * limits.max_deflate_ratio:
        raise InstanceTooLarge(
            f"deflated dataset inflates more than {limits.max_deflate_ratio}:1 (deflate bomb)"
        )


class _Walker:
    """Checks element headers against the bytes that remain; allocates nothing per value."""

    def __init__(self, fp: BinaryIO, implicit: bool, little: bool) -> None:
        self.fp = fp
        self.implicit = implicit
        self.endian = "<" if little else ">"

    def walk(self, start: int, end: int) -> PixelDataLocation | None:
        """Validate a top-level dataset and report where its pixel data lies."""
        pos = start
        pixel: PixelDataLocation | None = None
        while pos < end:
            tag, vr, length, value_pos = self._header(pos, end)
            pos = self._value(tag, vr, length, value_pos, end, depth=0)
            if tag in PIXEL_DATA_TAGS and pixel is None:
                encapsulated = length == UNDEFINED_LENGTH
                vr_text = vr.decode() if vr else ("OB" if encapsulated else "OW")
                pixel = PixelDataLocation(tag, vr_text, value_pos, None if encapsulated else length, pos)
        return pixel

    def leading_elements(self, end: int, last: int) -> Iterator[tuple[int, int, int]]:
        """(tag, length, value offset) of the top-level elements from offset 0, in ascending
        order, up to ``last``; each is validated (sequences included) before the next is read."""
        pos, previous = 0, -1
        while pos < end:
            tag, vr, length, value_pos = self._header(pos, end)
            if tag <= previous:
                raise MalformedDicom(f"element {_fmt(tag)} at offset {pos} is out of order")
            if tag > last:
                return
            next_pos = self._value(tag, vr, length, value_pos, end, depth=0)
            yield tag, length, value_pos
            pos, previous = next_pos, tag

    def walk_element(self, pos: int, end: int, depth: int) -> int:
        """Validate one element at ``pos`` and return the offset after it."""
        tag, vr, length, value_pos = self._header(pos, end)
        return self._value(tag, vr, length, value_pos, end, depth)

    def _value(self, tag: int, vr: bytes | None, length: int, pos: int, end: int, depth: int) -> int:
        if length == UNDEFINED_LENGTH:
            if tag in PIXEL_DATA_TAGS and depth == 0 and vr in (b"OB", b"OW", None):
                return self._fragments(pos, end, tag)
            if vr in (b"SQ", b"UN", None) or self._is_sequence(tag):
                return self._sequence(pos, end, depth + 1, implicit_items=vr == b"UN", defined=False)
            raise MalformedDicom(f"element {_fmt(tag)} with VR {vr.decode()} has undefined length")
        if length > end - pos:
            raise MalformedDicom(f"element {_fmt(tag)} declares {length} bytes but only {end - pos} remain")
        if vr == b"SQ" or (vr is None and self._is_sequence(tag)):
            return self._sequence(pos, pos + length, depth + 1, implicit_items=False, defined=True)
        return pos + length

    def _read(self, pos: int, end: int, count: int, what: str) -> bytes:
        if end - pos < count:
            raise MalformedDicom(f"truncated {what} at offset {pos}")
        self.fp.seek(pos)
        raw = self.fp.read(count)
        if len(raw) < count:
            raise MalformedDicom(f"truncated {what} at offset {pos}")
        return raw

    def _header(self, pos: int, end: int) -> tuple[int, bytes | None, int, int]:
        raw = self._read(pos, end, 8, "element header")
        group, elem = struct.unpack(self.endian + "HH", raw[:4])
        tag = group << 16 | elem
        if group == DELIMITATION_GROUP:
            raise MalformedDicom(f"unexpected item tag {_fmt(tag)} at offset {pos}")
        if self.implicit:
            (length,) = struct.unpack(self.endian + "L", raw[4:])
            return tag, None, length, pos + 8
        vr = raw[4:6]
        if not (vr.isalpha() and vr.isupper()):
            raise MalformedDicom(f"element {_fmt(tag)} at offset {pos} has an invalid VR {vr!r}")
        if vr in LONG_VRS:
            (length,) = struct.unpack(self.endian + "L", self._read(pos + 8, end, 4, "element header"))
            return tag, vr, length, pos + 12
        (length,) = struct.unpack(self.endian + "H", raw[6:])
        return tag, vr, length, pos + 8

    def _item_header(self, pos: int, end: int) -> tuple[int, int]:
        group, elem, length = struct.unpack(self.endian + "HHL", self._read(pos, end, 8, "item header"))
        return group << 16 | elem, length

    def _sequence(self, pos: int, end: int, depth: int, implicit_items: bool, defined: bool) -> int:
        if depth > MAX_DEPTH:
            raise MalformedDicom(f"sequences nested deeper than {MAX_DEPTH} levels")
        # PS3.5 6.2.2: a UN of undefined length holds an Implicit VR Little Endian sequence.
        walker = _Walker(self.fp, True, True) if implicit_items else self
        while pos < end or not defined:
            tag, length = walker._item_header(pos, end)
            pos += 8
            if tag == SEQUENCE_DELIMITER and not defined:
                return pos
            if tag != ITEM:
                raise MalformedDicom(f"expected a sequence item at offset {pos - 8}, found {_fmt(tag)}")
            if length == UNDEFINED_LENGTH:
                pos = walker._item_until_delimiter(pos, end, depth)
                continue
            if length > end - pos:
                raise MalformedDicom(f"sequence item declares {length} bytes but only {end - pos} remain")
            item_end = pos + length
            while pos < item_end:
                pos = walker.walk_element(pos, item_end, depth)
        return pos

    def _item_until_delimiter(self, pos: int, end: int, depth: int) -> int:
        while True:
            group, elem = struct.unpack(self.endian + "HH", self._read(pos, end, 4, "item"))
            if (group << 16 | elem) == ITEM_DELIMITER:
                return pos + 8
            pos = self.walk_element(pos, end, depth)

    def _fragments(self, pos: int, end: int, tag: int) -> int:
        # PS3.5 A.4: encapsulated pixel data is a sequence of defined-length items.
        while True:
            item, length = self._item_header(pos, end)
            pos += 8
            if item == SEQUENCE_DELIMITER:
                return pos
            if item != ITEM or length == UNDEFINED_LENGTH:
                raise MalformedDicom(f"encapsulated {_fmt(tag)} holds a malformed fragment at offset {pos - 8}")
            if length > end - pos:
                raise MalformedDicom(f"pixel data fragment declares {length} bytes but only {end - pos} remain")
            pos += length

    @staticmethod
    def _is_sequence(tag: int) -> bool:
        try:
            return dictionary_VR(tag) == "SQ"
        except KeyError:
            return False


class _Decline(Exception):
    """The quick route does not model this header: read it the general way."""


# Header bytes the quick route keeps in memory; a header beyond that (say a large private
# blob before the pixels) takes the general route, which leaves large values on disk.
_RAW_HEADER_BUDGET = 4 << 20
_RAW_WINDOW = 64 << 10
# UN is left to pydicom, which replaces it by the dictionary VR of a known tag.
_RAW_VRS = {vr.encode(): vr for vr in vrs.ALL_VRS if vr != "UN"}
_SHORT_HEADER = struct.Struct("<HH2sH")
_LONG_LENGTH = struct.Struct("<L")
_ITEM_HEADER = struct.Struct("<HHL")


class _RawReader:
    """The quick route: Explicit VR Little Endian elements from a window over the header.

    It checks what ``_Walker`` checks and declines, rather than fails, on anything amiss, so
    errors are always worded by the general route.
    """

    def __init__(self, fp: BinaryIO, end: int) -> None:
        self.fp = fp
        self.end = end
        self.base = 0
        self.window = b""
        self.kept = 0
        self.pixel: PixelDataLocation | None = None

    def read(self, start: int) -> tuple[list[RawElement], PixelDataLocation | None] | None:
        try:
            elements, _ = self._elements(start, self.end, depth=0, delimited=False)
        except _Decline:
            return None
        return elements, self.pixel

    def _bytes(self, pos: int, count: int) -> bytes:
        if pos + count > self.end:
            raise _Decline
        offset = pos - self.base
        if offset < 0 or offset + count > len(self.window):
            self.fp.seek(pos)
            self.window = self.fp.read(max(count, _RAW_WINDOW))
            self.base, offset = pos, 0
            if len(self.window) < count:
                raise _Decline
        return self.window[offset : offset + count]

    def _elements(self, pos: int, end: int, depth: int, delimited: bool) -> tuple[list[RawElement], int]:
        elements: list[RawElement] = []
        previous = -1
        unpack_from = _SHORT_HEADER.unpack_from
        while delimited or pos < end:
            if pos + 8 > end:
                raise _Decline
            # The header straight from the window when it lies there (most elements): the call
            # to _bytes and its slice cost more than the unpacking.
            offset = pos - self.base
            if offset >= 0 and offset + 8 <= len(self.window):
                group, element, vr_bytes, short_length = unpack_from(self.window, offset)
            else:
                group, element, vr_bytes, short_length = _SHORT_HEADER.unpack(self._bytes(pos, 8))
            tag = group << 16 | element
            if delimited and tag == ITEM_DELIMITER:
                return elements, pos + 8
            vr = _RAW_VRS.get(vr_bytes)
            if group == DELIMITATION_GROUP or tag <= previous or vr is None:
                raise _Decline
            previous = tag
            if vr_bytes in LONG_VRS:
                (length,) = _LONG_LENGTH.unpack(self._bytes(pos + 8, 4))
                pos += 12
            else:
                length, pos = short_length, pos + 8
            if depth == 0 and tag in PIXEL_DATA_TAGS:
                element_end = self._pixel_data(tag, vr, length, pos, end)
                declared = None if length == UNDEFINED_LENGTH else length
                elements.append(RawElement(tag, vr, declared, None if length else b""))
                pos = element_end
            elif vr == "SQ":
                items, pos = self._sequence(pos, length, end, depth + 1)
                elements.append(RawElement(tag, vr, None if length == UNDEFINED_LENGTH else length, None, items))
            else:
                if length == UNDEFINED_LENGTH or length > end - pos:
                    raise _Decline
                self.kept += length
                if self.kept > _RAW_HEADER_BUDGET:
                    raise _Decline
                offset = pos - self.base
                if offset >= 0 and offset + length <= len(self.window):  # as for the header
                    value = self.window[offset : offset + length]
                else:
                    value = self._bytes(pos, length)
                elements.append(RawElement(tag, vr, length, value))
                pos += length
        return elements, pos

    def _sequence(self, pos: int, length: int, end: int, depth: int) -> tuple[list[list[RawElement]], int]:
        if depth > MAX_DEPTH:
            raise _Decline
        defined = length != UNDEFINED_LENGTH
        if defined:
            if length > end - pos:
                raise _Decline
            end = pos + length
        items: list[list[RawElement]] = []
        while pos < end or not defined:
            if pos + 8 > end:
                raise _Decline
            group, element, item_length = _ITEM_HEADER.unpack(self._bytes(pos, 8))
            tag = group << 16 | element
            pos += 8
            if tag == SEQUENCE_DELIMITER and not defined:
                return items, pos
            if tag != ITEM:
                raise _Decline
            if item_length == UNDEFINED_LENGTH:
                item, pos = self._elements(pos, end, depth, delimited=True)
            else:
                if item_length > end - pos:
                    raise _Decline
                item, pos = self._elements(pos, pos + item_length, depth, delimited=False)
            items.append(item)
        return items, pos

    def _pixel_data(self, tag: int, vr: str, length: int, pos: int, end: int) -> int:
        if self.pixel is not None or vr not in ("OB", "OW", "OF", "OD"):
            raise _Decline
        if length == UNDEFINED_LENGTH:
            if vr not in ("OB", "OW"):
                raise _Decline
            element_end = self._fragments(pos, end)
            self.pixel = PixelDataLocation(tag, vr, pos, None, element_end)
            return element_end
        if length > end - pos:
            raise _Decline
        self.pixel = PixelDataLocation(tag, vr, pos, length, pos + length)
        return pos + length

    def _fragments(self, pos: int, end: int) -> int:
        # Item headers read one by one: the fragments between them are not wanted here.
        while True:
            if pos + 8 > end:
                raise _Decline
            self.fp.seek(pos)
            head = self.fp.read(8)
            if len(head) < 8:
                raise _Decline
            group, element, length = _ITEM_HEADER.unpack(head)
            pos += 8
            if group << 16 | element == SEQUENCE_DELIMITER:
                return pos
            if group << 16 | element != ITEM or length == UNDEFINED_LENGTH or length > end - pos:
                raise _Decline
            pos += length


def _read_header(
    stream: BinaryIO,
    stream_name: str,
    meta: FileMetaDataset,
    start: int,
    end: int,
    implicit: bool,
    little: bool,
    pixel: PixelDataLocation | None,
    limits: Limits,
) -> FileDataset:
    def at_pixels(tag: object, vr: object, length: object) -> bool:
        return pixel is not None and int(tag) == pixel.tag  # type: ignore[call-overload]

    try:
        stream.seek(start)
        dataset = read_dataset(stream, implicit, little, stop_when=at_pixels, defer_size=limits.defer_size)
        if pixel is not None and pixel.end < end:
            stream.seek(pixel.end)
            dataset.update(read_dataset(stream, implicit, little, defer_size=limits.defer_size))
    except Exception as exc:  # pydicom raises many types on bad input
        raise MalformedDicom(f"dataset cannot be parsed: {exc}") from exc
    if pixel is not None:
        dataset[pixel.tag] = RawDataElement(
            Tag(pixel.tag),
            None if implicit else pixel.vr,
            pixel.length if pixel.length is not None else UNDEFINED_LENGTH,
            None,
            pixel.value_offset,
            implicit,
            little,
        )
    return FileDataset(
        stream_name, dataset, preamble=None, file_meta=meta, is_implicit_VR=implicit, is_little_endian=little
    )


def _fmt(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
