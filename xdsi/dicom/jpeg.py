"""Which DICOM transfer syntax a JPEG (ISO/IEC 10918-1) codestream is, read from its headers.

A STOW-RS bulk data part of type ``image/jpeg`` may omit its ``transfer-syntax`` parameter;
PS3.18 Table 8.7.3-5 then names JPEG Lossless SV1 as the default, yet most JPEG frames sent are
baseline. Labelling a baseline frame lossless makes the instance undecodable by its readers,
so the syntax is taken from the frame header the codestream carries.
"""

from __future__ import annotations

from xdsi.dicom.uids import JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1

_SOI, _SOS = 0xD8, 0xDA
_BASELINE_SOF, _EXTENDED_SOF, _LOSSLESS_SOF = 0xC0, 0xC1, 0xC3
# Frame headers of processes no DICOM transfer syntax in use carries: progressive,
# hierarchical, arithmetic coding.
_OTHER_SOF = frozenset({0xC2, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RSTn: markers without a length


def transfer_syntax_of(codestream: bytes) -> str | None:
    """The transfer syntax of the codestream's process, or None if it is not one DICOM carries."""
    if codestream[:2] != b"\xff\xd8":
        return None
    pos, end = 2, len(codestream)
    lossless = False
    while pos + 4 <= end:
        if codestream[pos] != 0xFF:
            return None
        marker = codestream[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE or marker == _SOI:
            pos += 2
            continue
        length = int.from_bytes(codestream[pos + 2 : pos + 4], "big")
        if length < 2:
            return None
        if marker == _BASELINE_SOF:
            return JPEG_BASELINE
        if marker == _EXTENDED_SOF:
            return JPEG_EXTENDED
        if marker in _OTHER_SOF:
            return None
        if marker == _LOSSLESS_SOF:
            lossless = True
        elif marker == _SOS:
            if not lossless:
                return None
            # Scan header: Ns, Ns component selectors (2 bytes each), then Ss, the predictor.
            components = codestream[pos + 4] if pos + 4 < end else 0
            predictor_at = pos + 5 + 2 * components
            if predictor_at >= end:
                return None
            return JPEG_LOSSLESS_SV1 if codestream[predictor_at] == 1 else JPEG_LOSSLESS
        pos += 2 + length
    return None
