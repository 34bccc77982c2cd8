"""Frame byte ranges of native and encapsulated Pixel Data (PS3.5 8.1, A.4), found once and read alone."""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from xdsi.dicom import uids
from xdsi.dicom.byteorder import swap_bytes
from xdsi.dicom.parsing import ParsedInstance, PixelDataLocation
from xdsi.dicom.tags import EXTENDED_OFFSET_TABLE, EXTENDED_OFFSET_TABLE_LENGTHS
from xdsi.dicom.tags import ITEM_BYTES as _ITEM
from xdsi.dicom.tags import SEQUENCE_DELIMITER_BYTES as _SEQUENCE_DELIMITER
from xdsi.dicom.tags import UNDEFINED_LENGTH as _UNDEFINED
from xdsi.errors import MalformedDicom, NotFound

MAX_FRAMES = 1_000_000
MAX_FRAGMENTS = 1_000_000
_EOI = b"\xff\xd9"  # JPEG EOI, JPEG-LS EOI and JPEG 2000 EOC share the code
# Openings of a frame: JPEG/JPEG-LS SOI, JPEG 2000 SOC, JP2 signature box.
_FRAME_STARTS = (b"\xff\xd8", b"\xff\x4f", b"\x00\x00\x00\x0cjP")
_EOI_WINDOW = 10  # as pydicom's generate_frames: the EOI within a fragment's last 10 bytes
# Transfer syntaxes whose codestreams end in FFD9, so frame ends can be found without a table.
_MARKER_SYNTAXES = uids.FFD9_TERMINATED_SYNTAXES
_SUBSAMPLED_422 = frozenset({"YBR_FULL_422", "YBR_PARTIAL_422"})
_FORMAT_VERSION = 1
_FLAG_ENCAPSULATED = 1
_FLAG_ONE_PIECE = 2
_HEADER_WORDS = 6


@dataclass(frozen=True)
class FrameTable:
    """Byte ranges of every frame, in file offsets; serializable to compact bytes for the index.

    ``ranges[i]`` lists the (offset, length) pieces whose concatenation holds frame ``i + 1``:
    the fragment values of an encapsulated frame, or one covering range of a native frame.
    Native frames need not start on a byte boundary (Bits Allocated 1) nor be little endian
    (Explicit VR Big Endian), so ``frame_bits`` and ``swap_bytes`` let ``read_frame`` return
    every native frame as little endian bytes starting at its first bit.
    """

    encapsulated: bool
    number_of_frames: int
    ranges: tuple[tuple[tuple[int, int], ...], ...]
    frame_bits: int = 0  # native: bits per frame; 0 when encapsulated
    swap_bytes: int = 0  # native big endian: the word size to swap; 0 when stored little endian

    def to_bytes(self) -> bytes:
        """Little endian uint64 words: a header, the piece count of each frame, then the pieces."""
        one_piece = all(len(pieces) == 1 for pieces in self.ranges)
        flags = (_FLAG_ENCAPSULATED if self.encapsulated else 0) | (_FLAG_ONE_PIECE if one_piece else 0)
        total = sum(len(pieces) for pieces in self.ranges)
        header = [_FORMAT_VERSION, flags, self.number_of_frames, self.frame_bits, self.swap_bytes, total]
        words = array("Q", header)
        if not one_piece:
            words.extend(len(pieces) for pieces in self.ranges)
        for pieces in self.ranges:
            for offset, length in pieces:
                words.append(offset)
                words.append(length)
        return _little_endian(words).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> FrameTable:
        """Inverse of ``to_bytes``; ValueError if the bytes are not one of its outputs."""
        if len(data) % 8 or len(data) < _HEADER_WORDS * 8:
            raise ValueError("frame table bytes are truncated")
        words = array("Q")
        words.frombytes(data)
        words = _little_endian(words)
        version, flags, frames, frame_bits, swap_bytes, total = words[:_HEADER_WORDS]
        if version != _FORMAT_VERSION or flags > (_FLAG_ENCAPSULATED | _FLAG_ONE_PIECE):
            raise ValueError(f"frame table format {version} (flags {flags}) is not readable here")
        if not 1 <= frames <= MAX_FRAMES or total > MAX_FRAGMENTS + MAX_FRAMES or swap_bytes not in (0, 2, 4, 8):
            raise ValueError(f"frame table claims {frames} frames, {total} pieces, {swap_bytes}-byte words")
        pos = _HEADER_WORDS
        if flags & _FLAG_ONE_PIECE:
            counts: Sequence[int] = [1] * frames
        else:
            counts = words[pos : pos + frames]
            pos += frames
        if len(counts) != frames or sum(counts) != total or len(words) != pos + 2 * total:
            raise ValueError("frame table bytes do not match their own counts")
        ranges = []
        for count in counts:
            ranges.append(tuple((words[pos + 2 * k], words[pos + 2 * k + 1]) for k in range(count)))
            pos += 2 * count
        return cls(bool(flags & _FLAG_ENCAPSULATED), frames, tuple(ranges), frame_bits, swap_bytes)


def frame_table(
    fp: BinaryIO,
    pixel: PixelDataLocation,
    *,
    rows: int,
    columns: int,
    samples_per_pixel: int,
    bits_allocated: int,
    number_of_frames: int,
    transfer_syntax: str,
    photometric_interpretation: str = "",
    extended_offsets: tuple[bytes, bytes | None] | None = None,
) -> FrameTable:
    """Locate every frame reading at most the item headers, so a later frame read costs one frame.

    ``fp`` is the stream that ``pixel``'s offsets refer to (for a Deflated file, the inflated
    dataset). ``photometric_interpretation`` matters only for native YBR_FULL_422 and
    YBR_PARTIAL_422, whose chroma is stored subsampled. ``extended_offsets`` is the value of
    Extended Offset Table (7FE0,0001) and, if present, of Extended Offset Table Lengths
    (7FE0,0002), as stored (uint64 little endian).
    """
    for name, value, top in (
        ("Rows", rows, 0xFFFF),
        ("Columns", columns, 0xFFFF),
        ("Samples per Pixel", samples_per_pixel, 4),
        ("Number of Frames", number_of_frames, MAX_FRAMES),
    ):
        if not isinstance(value, int) or not 1 <= value <= top:
            raise MalformedDicom(f"{name} {value!r} is not an integer from 1 to {top}")
    # PS3.3 C.7.6.3.1.1: Bits Allocated is 1 or a multiple of 8.
    if not isinstance(bits_allocated, int) or not (bits_allocated == 1 or bits_allocated in range(8, 65, 8)):
        raise MalformedDicom(f"Bits Allocated {bits_allocated!r} is neither 1 nor a multiple of 8 up to 64")
    encapsulated = uids.is_encapsulated(transfer_syntax)
    if encapsulated != (pixel.length is None):
        raise MalformedDicom(
            f"pixel data of {'undefined' if pixel.length is None else 'defined'} length "
            f"does not fit transfer syntax {transfer_syntax}"
        )
    if pixel.length is None:
        return _encapsulated_table(fp, pixel, number_of_frames, transfer_syntax, extended_offsets)
    swap = 0
    if transfer_syntax == uids.EXPLICIT_VR_BIG_ENDIAN:
        # PS3.5 7.3: OW/OF/OD values are byte-swapped words; pixel cells of 16 bits or more
        # are big endian whole (as pydicom decodes them), smaller ones follow OW's 16-bit words.
        swap = bits_allocated // 8 if bits_allocated >= 16 else (2 if pixel.vr == "OW" else 0)
    samples = rows * columns * samples_per_pixel
    if photometric_interpretation in _SUBSAMPLED_422 and samples_per_pixel == 3:
        # PS3.3 C.7.6.3.1.2: native 4:2:2 stores Y1 Y2 Cb Cr for each pair of pixels.
        if columns % 2:
            raise MalformedDicom(f"{photometric_interpretation} needs an even number of columns, not {columns}")
        samples = rows * columns * 2
    return _native_table(pixel, samples * bits_allocated, number_of_frames, swap)


def extended_offsets(parsed: ParsedInstance) -> tuple[bytes, bytes | None] | None:
    """The Extended Offset Table and its Lengths as stored, for ``frame_table``; None without a table.

    Large multi-frame objects (whole-slide images) carry it instead of a Basic Offset Table, whose
    32-bit offsets cannot reach beyond 4 GiB (PS3.5 A.4); its Lengths also leave out item padding.
    """
    wanted = (EXTENDED_OFFSET_TABLE, EXTENDED_OFFSET_TABLE_LENGTHS)  # PS3.3 C.7.6.3, both OV
    if parsed.elements is not None:
        values = {e.tag: e.value for e in parsed.elements if e.tag in wanted}
    else:
        dataset = parsed.dataset
        values = {tag: dataset[tag].value for tag in wanted if tag in dataset}
    table, lengths = (values.get(tag) for tag in wanted)
    if not isinstance(table, bytes) or not table:
        return None
    return table, lengths if isinstance(lengths, bytes) and lengths else None


def read_frame(fp: BinaryIO, table: FrameTable, number: int) -> bytes:
    """The bytes of frame ``number`` (1-based): a codestream, or native little endian pixels.

    A native frame whose bits do not fill its last byte is padded with zero bits.
    """
    pieces = _pieces(table, number)
    data = b"".join(_read_exact(fp, offset, length) for offset, length in pieces)
    return _native_frame(table, number, data) if not table.encapsulated else data


def _native_table(pixel: PixelDataLocation, frame_bits: int, frames: int, swap: int) -> FrameTable:
    assert pixel.length is not None
    # PS3.5 8.1.1: frames follow each other with no padding, so with Bits Allocated 1 a
    # frame may start inside a byte; Python ints, so no product overflows.
    needed = (frame_bits * frames + 7) // 8
    if needed > pixel.length:
        raise MalformedDicom(
            f"{frames} frames of {frame_bits} bits need {needed} bytes of pixel data "
            f"but the value holds {pixel.length}"
        )
    unit_bits = 8 * max(swap, 1)
    ranges = []
    for index in range(frames):
        first = index * frame_bits
        start = first // unit_bits * unit_bits // 8
        stop = -(-(first + frame_bits) // unit_bits) * unit_bits // 8
        if stop > pixel.length:
            raise MalformedDicom(f"frame {index + 1} ends beyond the {pixel.length}-byte pixel data value")
        ranges.append(((pixel.value_offset + start, stop - start),))
    return FrameTable(False, frames, tuple(ranges), frame_bits, swap)


def _encapsulated_table(
    fp: BinaryIO,
    pixel: PixelDataLocation,
    frames: int,
    transfer_syntax: str,
    extended_offsets: tuple[bytes, bytes | None] | None,
) -> FrameTable:
    basic, base, fragments = _read_items(fp, pixel)
    if not fragments:
        raise MalformedDicom("encapsulated pixel data holds no fragment")
    # PS3.5 A.4: offsets count from the first byte of the first fragment's item tag.
    starts = [offset - 8 - base for offset, _ in fragments]
    if extended_offsets is not None and extended_offsets[0]:
        offsets = _uint64s(extended_offsets[0], "Extended Offset Table")
        groups = _split_by_offsets(offsets, starts, frames, "Extended")
        lengths = _uint64s(extended_offsets[1], "Extended Offset Table Lengths") if extended_offsets[1] else None
        if lengths is not None and len(lengths) != frames:
            raise MalformedDicom(f"Extended Offset Table Lengths has {len(lengths)} entries for {frames} frames")
        ranges = [
            _trim(tuple(fragments[k] for k in group), lengths[index] if lengths else None, index)
            for index, group in enumerate(groups)
        ]
    elif basic:
        groups = _split_by_offsets(basic, starts, frames, "Basic")
        ranges = [tuple(fragments[k] for k in group) for group in groups]
    elif frames == 1:
        ranges = [tuple(fragments)]
    elif len(fragments) == frames:
        ranges = [(fragment,) for fragment in fragments]
    elif len(fragments) < frames:
        raise MalformedDicom(f"{len(fragments)} pixel data fragments cannot hold {frames} frames")
    elif transfer_syntax in _MARKER_SYNTAXES:
        ranges = _split_by_markers(fp, fragments, frames)
    else:
        raise MalformedDicom(
            f"{len(fragments)} fragments for {frames} frames with no offset table: "
            f"frame boundaries of {transfer_syntax} cannot be found"
        )
    return FrameTable(True, frames, tuple(ranges))


def fragment_ranges(fp: BinaryIO, pixel: PixelDataLocation) -> list[tuple[int, int]]:
    """Each fragment's (value offset, length) of encapsulated pixel data, in order: joined, they are
    the whole bitstream of a video transfer syntax (PS3.5 8.2.5 to 8.2.8)."""
    return _read_items(fp, pixel)[2]


def _read_items(fp: BinaryIO, pixel: PixelDataLocation) -> tuple[list[int], int, list[tuple[int, int]]]:
    """The Basic Offset Table, where fragments start, and each fragment's (value offset, length)."""
    end = pixel.end
    tag, length = _item_header(fp, pixel.value_offset, end)
    # PS3.5 A.4: the first item is the Basic Offset Table, possibly empty, of uint32 offsets.
    if tag != _ITEM or length == _UNDEFINED or length % 4:
        raise MalformedDicom("encapsulated pixel data does not open with a Basic Offset Table item")
    if length > end - pixel.value_offset - 8 or length // 4 > MAX_FRAMES:
        raise MalformedDicom(f"Basic Offset Table of {length} bytes overruns the pixel data")
    table = _read_exact(fp, pixel.value_offset + 8, length)
    basic = list(struct.unpack(f"<{length // 4}L", table))
    base = pos = pixel.value_offset + 8 + length
    fragments: list[tuple[int, int]] = []
    while True:
        tag, length = _item_header(fp, pos, end)
        if tag == _SEQUENCE_DELIMITER:
            return basic, base, fragments
        if tag != _ITEM or length == _UNDEFINED:
            raise MalformedDicom(f"encapsulated pixel data holds a malformed item at offset {pos}")
        if length > end - pos - 8:
            raise MalformedDicom(f"pixel data fragment at offset {pos} declares {length} bytes, beyond the value")
        if len(fragments) == MAX_FRAGMENTS:
            raise MalformedDicom(f"encapsulated pixel data holds more than {MAX_FRAGMENTS} fragments")
        fragments.append((pos + 8, length))
        pos += 8 + length


def _item_header(fp: BinaryIO, pos: int, end: int) -> tuple[bytes, int]:
    if end - pos < 8:
        raise MalformedDicom(f"encapsulated pixel data ends without a sequence delimiter (offset {pos})")
    raw = _read_exact(fp, pos, 8)
    return raw[:4], struct.unpack("<L", raw[4:])[0]


def _split_by_offsets(offsets: Sequence[int], starts: list[int], frames: int, which: str) -> list[range]:
    """Group fragment indexes by frame from an offset table, checking every offset hits an item."""
    if len(offsets) != frames:
        raise MalformedDicom(f"{which} Offset Table has {len(offsets)} entries for {frames} frames")
    indexes: list[int] = []
    for number, offset in enumerate(offsets, start=1):
        k = bisect_left(starts, offset)
        if k == len(starts) or starts[k] != offset:
            raise MalformedDicom(f"{which} Offset Table entry {number} ({offset}) does not point at a fragment")
        if indexes and k <= indexes[-1]:
            raise MalformedDicom(f"{which} Offset Table entries are not increasing at frame {number}")
        indexes.append(k)
    if indexes[0] != 0:
        raise MalformedDicom(f"{which} Offset Table does not start at the first fragment")
    indexes.append(len(starts))
    return [range(indexes[i], indexes[i + 1]) for i in range(frames)]


def _trim(pieces: tuple[tuple[int, int], ...], length: int | None, index: int) -> tuple[tuple[int, int], ...]:
    """Cut a frame's fragments to its Extended Offset Table Length, which excludes item padding."""
    if length is None:
        return pieces
    if length > sum(size for _, size in pieces):
        raise MalformedDicom(f"Extended Offset Table Length of frame {index + 1} exceeds its fragments")
    kept = []
    for offset, size in pieces:
        if length <= 0:
            break
        kept.append((offset, min(size, length)))
        length -= size
    return tuple(kept)


def _split_by_markers(
    fp: BinaryIO, fragments: list[tuple[int, int]], frames: int
) -> list[tuple[tuple[int, int], ...]]:
    """Without offsets, a frame ends at a fragment ending in EOI whose successor opens a codestream."""
    ranges: list[tuple[tuple[int, int], ...]] = []
    current: list[tuple[int, int]] = []
    for k, (offset, length) in enumerate(fragments):
        current.append((offset, length))
        tail = _read_exact(fp, offset + max(length - _EOI_WINDOW, 0), min(length, _EOI_WINDOW))
        if _EOI not in tail:
            continue
        if k + 1 < len(fragments):
            next_offset, next_length = fragments[k + 1]
            head = _read_exact(fp, next_offset, min(next_length, 8))
            if not head.startswith(_FRAME_STARTS):
                continue
        ranges.append(tuple(current))
        current = []
    if current:
        ranges.append(tuple(current))
    if len(ranges) != frames:
        raise MalformedDicom(f"the fragments' JPEG markers delimit {len(ranges)} frames, not {frames}")
    return ranges


def _uint64s(value: bytes, name: str) -> list[int]:
    if len(value) % 8 or len(value) // 8 > MAX_FRAMES:
        raise MalformedDicom(f"{name} is {len(value)} bytes, not a list of at most {MAX_FRAMES} uint64")
    return list(struct.unpack(f"<{len(value) // 8}Q", value))


def _pieces(table: FrameTable, number: int) -> tuple[tuple[int, int], ...]:
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= table.number_of_frames:
        raise NotFound(f"frame {number} does not exist: the instance has {table.number_of_frames} frame(s)")
    return table.ranges[number - 1]


def _native_frame(table: FrameTable, number: int, data: bytes) -> bytes:
    if table.swap_bytes:
        data = swap_bytes(data, table.swap_bytes)
    unit_bits = 8 * max(table.swap_bytes, 1)
    skip = (number - 1) * table.frame_bits % unit_bits
    size = (table.frame_bits + 7) // 8
    if skip % 8 == 0 and table.frame_bits % 8 == 0:
        return data[skip // 8 : skip // 8 + size]
    # PS3.5 8.1.1: bit-packed pixels fill each byte from its least significant bit.
    value = int.from_bytes(data, "little") >> skip
    return (value & ((1 << table.frame_bits) - 1)).to_bytes(size, "little")


def _read_exact(fp: BinaryIO, offset: int, length: int) -> bytes:
    fp.seek(offset)
    data = fp.read(length)
    if len(data) != length:
        raise MalformedDicom(f"file ends before the {length} bytes at offset {offset} (got {len(data)})")
    return data


def _little_endian(words: array) -> array:
    if struct.pack("=H", 1) != b"\x01\x00":
        words.byteswap()
    return words
