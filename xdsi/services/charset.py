"""``charset`` (PS3.18 9.1.2.1.4 WADO-URI, 8.3.3.2 WADO-RS query parameter): the character set of a text
answer, chosen from the client's list by preference (q-values as in RFC 9110 12.5.3 Accept-Charset).

UTF-8 when the client names none. An HTML answer can always be written in the first character
set known here: characters outside it become numeric character references. A plain text answer
takes the first listed character set that can write every character of it; if none can, the
answer is not acceptable (406).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from xdsi.errors import InvalidRequest, NotAcceptable

DEFAULT = "UTF-8"
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'+.^_`|~-]+|\*", re.ASCII)
_Q = re.compile(r"q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)", re.ASCII | re.IGNORECASE)
_MAX_ENTRIES = 32


def parse(text: str | None) -> tuple[str, ...]:
    """The character sets named, most preferred first (ties keep their order); q=0 ones are left out.

    InvalidRequest names the first malformed entry.
    """
    if text is None or not text.strip():
        return ()
    entries = text.split(",")
    if len(entries) > _MAX_ENTRIES:
        raise InvalidRequest(f"charset lists more than {_MAX_ENTRIES} character sets")
    ranked: list[tuple[float, int, str]] = []
    for position, entry in enumerate(entries):
        name, *parameters = (part.strip() for part in entry.split(";"))
        if not _TOKEN.fullmatch(name):
            raise InvalidRequest(f"charset entry {entry.strip()[:40]!r} is not a character set name")
        quality = 1.0
        for parameter in parameters:
            match = _Q.fullmatch(parameter)
            if match is None:
                raise InvalidRequest(f"charset parameter {parameter[:40]!r} is not a q-value between 0 and 1")
            quality = float(match.group(1))
        if quality > 0:
            ranked.append((-quality, position, name))
    return tuple(name for _q, _position, name in sorted(ranked))


@dataclass(frozen=True)
class Encoded:
    """Text in bytes, and the character set label for its Content-Type."""

    data: bytes
    charset: str


def encode(text: str, preferences: tuple[str, ...], *, html: bool) -> Encoded:
    """``text`` in the first of ``preferences`` that can carry it (UTF-8 for none, or for ``*``)."""
    for name in preferences or (DEFAULT,):
        label = DEFAULT if name == "*" else name
        codec = _codec(label)
        if codec is None:
            continue
        try:
            return Encoded(text.encode(codec, errors="xmlcharrefreplace" if html else "strict"), label)
        except UnicodeEncodeError:
            continue
    raise NotAcceptable(f"charset: the text cannot be written in any of the character sets asked for "
                        f"({', '.join(preferences)}); {DEFAULT} can write it")


def first_known(preferences: tuple[str, ...]) -> str | None:
    """The first listed character set known here, as a codec name (None: the client named none
    known): what burned-in text is limited to."""
    for name in preferences:
        codec = _codec(DEFAULT if name == "*" else name)
        if codec is not None:
            return codec
    return None


def _codec(label: str) -> str | None:
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None
