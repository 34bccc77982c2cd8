"""DICOM media types, Accept parsing and representation selection (RFC 9110 12.5.1, PS3.18 8.7)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from xdsi.dicom.uids import is_valid_uid
from xdsi.errors import InvalidRequest, NotAcceptable

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
OCTET_STREAM = "application/octet-stream"
ZIP = "application/zip"

MAX_HEADER_LENGTH = 8192
MAX_RANGES = 64

# RFC 9110 5.6.2: tchar (a token; header field names are tokens too).
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", re.ASCII)
_OWS = re.compile(r"[ \t]*")


def _skip_ows(text: str, at: int = 0) -> int:
    """Where the optional whitespace (RFC 9110 5.6.3 OWS) at ``at`` ends; ``at`` itself if there is none."""
    found = _OWS.match(text, at)  # matches the empty string too: never None
    return found.end() if found else at
# RFC 9110 5.6.4: quoted-string; the header arrives as latin-1 text, so obs-text is \x80-\xff.
_QUOTED = re.compile(r'"((?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
# RFC 9110 5.6.6 wants a token or a quoted-string, but PS3.18 8.7.3.5.1 and OHIF send
# type=application/dicom unquoted and mail-style boundaries carry '=' and ':'; so any visible
# ASCII but the delimiters ; , " and backslash is taken as an unquoted value.
_BARE_VALUE = re.compile(r"[!#-+\--:<-\[\]-~]+")
# RFC 9110 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")
_MEDIA_PATTERN = re.compile(r"(?:\*/\*|[!#$%&'*+\-.^_`|~0-9A-Za-z]+/(?:\*|[!#$%&'*+\-.^_`|~0-9A-Za-z]+))\Z", re.ASCII)
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _snippet(text: str, at: int) -> str:
    piece = text[at : at + 24]
    return repr(piece + ("..." if len(text) > at + 24 else ""))


def _level(pattern: str | None) -> int:
    if pattern is None or pattern == "*/*":
        return 0
    return 1 if pattern.endswith("/*") else 2


@dataclass(frozen=True)
class MediaRange:
    """One element of an Accept header, or a parsed Content-Type (then ``q`` is always 1)."""

    type: str
    subtype: str
    params: Mapping[str, str] = field(default_factory=dict, hash=False)
    q: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def full(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def specificity(self) -> tuple[int, int, int]:
        """RFC 9110 12.5.1: a more specific range overrides a less specific one of equal reach.

        The ``type`` parameter of multipart/related counts like a second media range, and
        ``boundary`` (which PS3.18 examples put in Accept) names no property of the content.
        """
        inner = self.params.get("type") if self.type == "multipart" else None
        counted = sum(1 for name in self.params if name != "boundary")
        return _level(self.full), _level(inner), counted

    def __str__(self) -> str:
        text = _format(self.full, self.params.items())
        if self.q != 1.0:
            text += "; q=" + f"{self.q:.3f}".rstrip("0").rstrip(".")
        return text


def _parse_value(text: str, at: int, name: str) -> tuple[str, int, bool]:
    quoted = _QUOTED.match(text, at)
    if quoted is not None:
        return _QUOTED_PAIR.sub(r"\1", quoted.group(1)), quoted.end(), True
    bare = _BARE_VALUE.match(text, at)
    if bare is None:
        raise InvalidRequest(f"media type parameter {name!r} has no valid value at {_snippet(text, at)}")
    return bare.group(), bare.end(), False


def _checked(name: str, value: str, media_type: str) -> str:
    if name == "type":
        value = value.lower()
        if media_type == "multipart" and not _MEDIA_PATTERN.match(value):
            # PS3.18 8.7.3.5.1: type names the media type of the root part.
            raise InvalidRequest(f"multipart type parameter {value[:64]!r} is not a media type")
    elif name == "transfer-syntax" and value != "*" and not is_valid_uid(value):
        # PS3.18 8.7.3.5.2: ts-value = transfer-syntax-uid / "*".
        raise InvalidRequest(f"transfer-syntax {value[:64]!r} is neither a UID nor '*'")
    return value


def _parse_range(text: str, at: int, *, weighted: bool) -> tuple[MediaRange, int]:
    kind = TOKEN.match(text, at)
    if kind is None or not text.startswith("/", kind.end()):
        raise InvalidRequest(f"expected a media type 'type/subtype' at {_snippet(text, at)}")
    sub = TOKEN.match(text, kind.end() + 1)
    if sub is None:
        raise InvalidRequest(f"expected a media subtype at {_snippet(text, kind.end() + 1)}")
    media_type, subtype = kind.group().lower(), sub.group().lower()
    if (media_type == "*" and subtype != "*") or (not weighted and "*" in (media_type, subtype)):
        # RFC 9110 12.5.1: media-range = "*/*" / ( type "/" "*" ) / ( type "/" subtype ).
        raise InvalidRequest(f"{media_type}/{subtype} is not a valid media {'range' if weighted else 'type'}")
    params: dict[str, str] = {}
    q: float | None = None
    at = sub.end()
    while True:
        semicolon = _skip_ows(text, at)
        if not text.startswith(";", semicolon):
            return MediaRange(media_type, subtype, params, 1.0 if q is None else q), semicolon
        at = _skip_ows(text, semicolon + 1)
        name_match = TOKEN.match(text, at)
        if name_match is None:
            # RFC 9110 5.6.6: parameters = *( OWS ";" OWS [ parameter ] ) allows empty ones.
            continue
        name = name_match.group().lower()
        at = _skip_ows(text, name_match.end())
        if not text.startswith("=", at):
            raise InvalidRequest(f"media type parameter {name!r} has no '=' value")
        value, at, quoted = _parse_value(text, _skip_ows(text, at + 1), name)
        if name in params or (name == "q" and q is not None):
            # RFC 6838 4.3 (cited by PS3.18 8.7.3.5.2): a parameter may appear only once.
            raise InvalidRequest(f"media type parameter {name!r} appears twice")
        if weighted and name == "q":
            # RFC 9110 12.4.2: a weight is a bare qvalue in 0..1 with at most three decimals.
            if quoted or not _QVALUE.match(value):
                raise InvalidRequest(f"q={value[:16]!r} is not a number from 0 to 1 with at most 3 decimals")
            q = float(value)
            continue
        params[name] = _checked(name, value, media_type)


def parse_media_type(text: str) -> MediaRange:
    """A single Content-Type value; ``q`` is an ordinary parameter here, as RFC 9110 8.3 has no weight."""
    if len(text) > MAX_HEADER_LENGTH:
        raise InvalidRequest(f"media type longer than {MAX_HEADER_LENGTH} characters")
    media, end = _parse_range(text, _skip_ows(text), weighted=False)
    if end != len(text):
        raise InvalidRequest(f"unexpected text after the media type at {_snippet(text, end)}")
    return media


def parse_accept(header: str | None) -> list[MediaRange]:
    """The ranges of an Accept header, best first: by q, then specificity, then as sent.

    A missing or empty header accepts anything (RFC 9110 12.5.1). Parameters after ``q`` are
    kept as media type parameters because PS3.18 8.7.3.5.2's own example places ``boundary`` there.
    """
    if header is None or not header.strip(" \t,"):
        return [MediaRange("*", "*")]
    if len(header) > MAX_HEADER_LENGTH:
        raise InvalidRequest(f"Accept header longer than {MAX_HEADER_LENGTH} characters")
    ranges: list[MediaRange] = []
    at = 0
    while True:
        at = _skip_ows(header, at)
        if at == len(header):
            break
        if header[at] == ",":
            # RFC 9110 5.6.1: recipients accept and ignore empty list elements.
            at += 1
            continue
        media, at = _parse_range(header, at, weighted=True)
        ranges.append(media)
        if len(ranges) > MAX_RANGES:
            raise InvalidRequest(f"Accept header has more than {MAX_RANGES} media ranges")
        if at < len(header) and header[at] != ",":
            raise InvalidRequest(f"unexpected character in Accept header at {_snippet(header, at)}")
    return sorted(ranges, key=lambda media: (media.q, media.specificity), reverse=True)


@dataclass(frozen=True)
class Offer:
    """One representation the server can produce for the target resource.

    Offers are listed in the server's preference order: the first is the resource's default,
    which ``*/*`` and a multipart/related range without ``type`` select.
    """

    media_type: str
    multipart: bool
    transfer_syntaxes: tuple[str, ...] = ()
    stored_syntax: str | None = None

    def describe(self) -> str:
        text = f'multipart/related; type="{self.media_type}"' if self.multipart else self.media_type
        if self.transfer_syntaxes:
            shown = ", ".join(self.transfer_syntaxes[:4]) + (", ..." if len(self.transfer_syntaxes) > 4 else "")
            text += f" (transfer syntaxes {shown})"
        return text


def dataset_offers(*, xml_multipart: bool) -> tuple[Offer, ...]:
    """Offers for DICOM JSON or XML answers: JSON first (PS3.18 8.7.3.2), with the plain
    application/json many clients send; XML multipart where the answer may hold many datasets."""
    return (
        Offer(DICOM_JSON, multipart=False),
        Offer("application/json", multipart=False),
        Offer(DICOM_XML, multipart=xml_multipart),
    )


@dataclass(frozen=True)
class Choice:
    """The selected representation and the transfer syntax to encode it in."""

    offer: Offer
    transfer_syntax: str | None
    media_range: MediaRange

    @property
    def part_content_type(self) -> str:
        """Content-Type of the representation (of each part, when multipart); PS3.18 8.7.3.5.2."""
        if self.transfer_syntax is None:
            return self.offer.media_type
        return format_media_type(self.offer.media_type, transfer_syntax=self.transfer_syntax)


def _type_matches(pattern: str, media_type: str) -> bool:
    if pattern == "*/*":
        return True
    if pattern.endswith("/*"):
        return media_type.startswith(pattern[:-1])
    return pattern == media_type


def _matches(media: MediaRange, offer: Offer, default_type: str) -> bool:
    offered = offer.media_type.lower()
    if media.type == "*":
        return True
    if offer.multipart:
        if media.type != "multipart" or media.subtype not in ("related", "*"):
            return False
        # PS3.18 8.7.3.5.1: the type parameter names the parts' media type; absent, the default.
        return _type_matches(media.params.get("type", default_type), offered)
    return media.type != "multipart" and _type_matches(media.full, offered)


def _syntaxes(media: MediaRange, offer: Offer, default_syntax: str | None) -> list[str | None]:
    """The transfer syntaxes ``media`` asks of ``offer``, best first; empty when it asks for one not offered."""
    asked = media.params.get("transfer-syntax")
    if not offer.transfer_syntaxes and offer.stored_syntax is None:
        return [None] if asked in (None, "*") else []
    first = offer.transfer_syntaxes[0] if offer.transfer_syntaxes else offer.stored_syntax
    if asked is None:
        # PS3.18 8.7.3.4: no transfer-syntax parameter means Explicit VR Little Endian, unless
        # the server only holds a form it cannot decompress into it.
        if default_syntax is not None and default_syntax in offer.transfer_syntaxes:
            return [default_syntax]
        return [first]
    if asked == "*":
        # PS3.18 8.7.3.5.2: '*' lets the server answer without transcoding; any other syntax
        # the offer lists is still acceptable should a q=0 range refuse the stored one.
        preferred = offer.stored_syntax or first
        return [preferred, *(syntax for syntax in offer.transfer_syntaxes if syntax != preferred)]
    return [asked] if asked in offer.transfer_syntaxes else []


def _refuses(refusal: MediaRange, media: MediaRange, offer: Offer, syntax: str | None, default_type: str) -> bool:
    if refusal.specificity < media.specificity or not _matches(refusal, offer, default_type):
        return False
    refused = refusal.params.get("transfer-syntax")
    return refused in (None, "*") or refused == syntax


def _explain(accept: Sequence[MediaRange], offers: Sequence[Offer]) -> str:
    asked = [str(media) for media in accept[:6]] + ([f"{len(accept) - 6} more"] if len(accept) > 6 else [])
    offered = [offer.describe() for offer in offers[:8]] + ([f"{len(offers) - 8} more"] if len(offers) > 8 else [])
    text = f"none of the acceptable media types [{', '.join(asked) or 'none'}] is available"
    text += f"; offered: {'; '.join(offered)}"
    return text if len(text) <= 1000 else text[:997] + "..."


def negotiate(accept: list[MediaRange], offers: Sequence[Offer], *, default_syntax: str | None = None) -> Choice:
    """The best (range, offer) pair: highest q, then the more specific range, then server order.

    A q=0 range refuses what it matches unless a more specific range accepts it (RFC 9110
    12.5.1). ``default_syntax`` is what an absent transfer-syntax parameter asks for; WADO-RS
    passes Explicit VR Little Endian (PS3.18 8.7.3.4).
    """
    if not offers:
        raise ValueError("negotiate() needs at least one offer")
    default_type = offers[0].media_type.lower()
    refusals = [media for media in accept if media.q == 0]
    best: Choice | None = None
    best_key: tuple[float, tuple[int, int, int], int, int] | None = None
    for range_index, media in enumerate(accept):
        if media.q == 0:
            continue
        for offer_index, offer in enumerate(offers):
            if not _matches(media, offer, default_type):
                continue
            allowed = [
                syntax
                for syntax in _syntaxes(media, offer, default_syntax)
                if not any(_refuses(refusal, media, offer, syntax, default_type) for refusal in refusals)
            ]
            if not allowed:
                continue
            key = (media.q, media.specificity, -offer_index, -range_index)
            if best_key is None or key > best_key:
                best, best_key = Choice(offer, allowed[0], media), key
    if best is None:
        raise NotAcceptable(_explain(accept, offers))
    return best


def format_media_type(type_subtype: str, **params: str | None) -> str:
    """``type/subtype; name=value`` with values quoted when they are not tokens (RFC 9110 5.6.6).

    ``None`` values are left out, and an underscore in a keyword becomes '-' because Python
    names cannot hold one (``transfer_syntax=`` gives ``transfer-syntax=``).
    """
    named = ((name.replace("_", "-"), value) for name, value in params.items() if value is not None)
    return _format(type_subtype, named)


def _format(type_subtype: str, params: Iterable[tuple[str, str]]) -> str:
    fields = [type_subtype]
    for name, value in params:
        if CONTROL.search(value):
            raise ValueError(f"media type parameter {name!r} contains a control character")
        if TOKEN.fullmatch(value):
            fields.append(f"{name}={value}")
        else:
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            fields.append(f'{name}="{escaped}"')
    return "; ".join(fields)

