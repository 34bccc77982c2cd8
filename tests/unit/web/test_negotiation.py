"""Accept parsing and DICOMweb representation selection, checked against what real clients send."""

from __future__ import annotations

import contextlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdsi.dicom.uids import EXPLICIT_VR_LITTLE_ENDIAN
from xdsi.errors import InvalidRequest, XdsiError
from xdsi.web.negotiation import (
    Choice,
    MediaRange,
    NotAcceptable,
    Offer,
    format_media_type,
    negotiate,
    parse_accept,
    parse_media_type,
)

ELE = EXPLICIT_VR_LITTLE_ENDIAN
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JLS = "1.2.840.10008.1.2.4.80"
J2K = "1.2.840.10008.1.2.4.90"

# An instance stored lossy (JPEG Baseline): transcodable to Explicit VR LE or sent as stored.
INSTANCE = [
    Offer("application/dicom", multipart=True, transfer_syntaxes=(ELE, JPEG_BASELINE), stored_syntax=JPEG_BASELINE),
    Offer("application/dicom", multipart=False, transfer_syntaxes=(ELE, JPEG_BASELINE), stored_syntax=JPEG_BASELINE),
]
# PS3.18 10.4 (2025a): multi-instance resources come only as multipart.
STUDY = [INSTANCE[0]]
# Frames of a JPEG-LS instance: decompressed, or as stored.
FRAMES = [Offer("application/octet-stream", True, (ELE,)), Offer("image/jls", True, (JLS,), stored_syntax=JLS)]
FRAMES_STORED_FIRST = [FRAMES[1], FRAMES[0]]
# Metadata and QIDO: DICOM JSON by default, PS3.19 XML as multipart.
METADATA = [Offer("application/dicom+json", False), Offer("application/dicom+xml", True)]
STOW_RESPONSE = [Offer("application/dicom+json", False), Offer("application/dicom+xml", False)]
RENDERED = [Offer("image/jpeg", False), Offer("image/png", False), Offer("image/gif", False)]
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def choose(header: str | None, offers: list[Offer]) -> Choice:
    return negotiate(parse_accept(header), offers, default_syntax=ELE)


CLIENTS = {
    # ImagingDataCommons/dicomweb-client src/dicomweb_client/web.py: retrieve_study/_series default.
    "dicomweb-client retrieve_study": ('multipart/related; type="application/dicom"', STUDY, INSTANCE[0], ELE),
    # ... retrieve_instance defaults to (("application/dicom", "*"),).
    "dicomweb-client retrieve_instance": (
        'multipart/related; type="application/dicom"; transfer-syntax=*', INSTANCE, INSTANCE[0], JPEG_BASELINE,
    ),
    # ... retrieve_instance_frames without media_types goes through _http_get_multipart: ("*/*",).
    "dicomweb-client retrieve_instance_frames": ('multipart/related; type="*/*"', FRAMES, FRAMES[0], ELE),
    "dicomweb-client frames, octet-stream any syntax": (
        'multipart/related; type="application/octet-stream"; transfer-syntax=*', FRAMES, FRAMES[0], ELE,
    ),
    # ... _http_get_application_json for metadata and QIDO.
    "dicomweb-client metadata": ("application/dicom+json, application/json", METADATA, METADATA[0], None),
    # dcmjs-org/dicomweb-client src/api.js: retrieveInstanceFrames defaults to application/octet-stream.
    "dicomweb-client (JS) frames": ('multipart/related; type="application/octet-stream"', FRAMES, FRAMES[0], ELE),
    "dicomweb-client (JS) metadata": ("application/dicom+json", METADATA, METADATA[0], None),
    # cornerstonejs/cornerstone3D packages/dicomImageLoader/src/imageLoader/wadors/loadImage.ts (OHIF).
    "cornerstone frames": (
        "multipart/related; type=application/octet-stream; transfer-syntax=*", FRAMES, FRAMES[0], ELE,
    ),
    # dicom-microscopy-viewer via dicomweb-client (JS) _buildMultipartAcceptHeaderFieldValue.
    "multi-type frames, server prefers decompressed": (
        'multipart/related; type="image/jls"; transfer-syntax=1.2.840.10008.1.2.4.80, '
        'multipart/related; type="application/octet-stream"; transfer-syntax=*',
        FRAMES, FRAMES[0], ELE,
    ),
    "multi-type frames, server prefers stored": (
        'multipart/related; type="image/jls"; transfer-syntax=1.2.840.10008.1.2.4.80, '
        'multipart/related; type="application/octet-stream"; transfer-syntax=*',
        FRAMES_STORED_FIRST, FRAMES[1], JLS,
    ),
    "browser on metadata": (BROWSER, METADATA, METADATA[0], None),
    "browser on an instance": (BROWSER, INSTANCE, INSTANCE[0], ELE),
    "PS3.19 XML metadata": ('multipart/related; type="application/dicom+xml"', METADATA, METADATA[1], None),
    "unquoted XML metadata": ("multipart/related; type=application/dicom+xml", METADATA, METADATA[1], None),
    "single-part instance": ("application/dicom", INSTANCE, INSTANCE[1], ELE),
    "explicit stored syntax": (
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50',
        INSTANCE, INSTANCE[0], JPEG_BASELINE,
    ),
    "multipart without type takes the default": ("multipart/related", STUDY, STUDY[0], ELE),
    "multipart/* with type": ('multipart/*; type="application/dicom"', STUDY, STUDY[0], ELE),
    "image wildcard type": ('multipart/related; type="image/*"', FRAMES, FRAMES[1], JLS),
    "any type, any syntax": ("*/*; transfer-syntax=*", INSTANCE, INSTANCE[0], JPEG_BASELINE),
    "STOW response XML": ("application/dicom+xml", STOW_RESPONSE, STOW_RESPONSE[1], None),
    "STOW response default": ("*/*", STOW_RESPONSE, STOW_RESPONSE[0], None),
    "no Accept header": (None, METADATA, METADATA[0], None),
    "rendered": ("image/png, image/*;q=0.5", RENDERED, RENDERED[1], None),
    "json syntax wildcard": ("application/dicom+json; transfer-syntax=*", METADATA, METADATA[0], None),
}


@pytest.mark.parametrize("client", CLIENTS, ids=list(CLIENTS))
def test_real_client_accept_headers(client: str) -> None:
    header, offers, offer, syntax = CLIENTS[client]
    choice = choose(header, offers)
    assert choice.offer is offer
    assert choice.transfer_syntax == syntax


NOT_ACCEPTABLE = {
    "application/json is no alias": ("application/json", METADATA),
    "dicom+json is never multipart": ('multipart/related; type="application/dicom+json"', METADATA),
    "multipart default on metadata": ("multipart/related", METADATA),
    "single part on a study": ("application/dicom", STUDY),
    "unsupported syntax (B41)": ("application/dicom; transfer-syntax=1.2.3.4", INSTANCE),
    "legacy-form syntax UID, known to no one": ("application/dicom; transfer-syntax=1.2.840.10008.1.2.01", INSTANCE),
    "unoffered syntax": (
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90', INSTANCE,
    ),
    "html on an instance (B40)": ("text/html", INSTANCE),
    "syntax on a type without one": ("application/dicom+json; transfer-syntax=1.2.840.10008.1.2.1", METADATA),
    "everything refused": ("*/*;q=0", METADATA),
    "multipart range for a single-part offer": ('multipart/related; type="application/dicom+json"', STOW_RESPONSE),
    "single-part range for multipart offers": ("application/octet-stream", FRAMES),
}


@pytest.mark.parametrize("case", NOT_ACCEPTABLE, ids=list(NOT_ACCEPTABLE))
def test_not_acceptable(case: str) -> None:
    header, offers = NOT_ACCEPTABLE[case]
    with pytest.raises(NotAcceptable):
        choose(header, offers)


def test_json_is_acceptable_when_offered() -> None:
    offers = [*METADATA, Offer("application/json", False)]
    assert choose("application/json", offers).offer is offers[2]


def test_not_acceptable_names_what_was_asked_and_offered() -> None:
    with pytest.raises(NotAcceptable) as caught:
        choose('multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90', INSTANCE)
    message = str(caught.value)
    assert 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90' in message
    assert "1.2.840.10008.1.2.1, 1.2.840.10008.1.2.4.50" in message
    assert "application/dicom (transfer syntaxes" in message
    assert isinstance(caught.value, XdsiError) and not isinstance(caught.value, InvalidRequest)
    with pytest.raises(NotAcceptable) as caught:
        choose(", ".join(f"image/x{i}" for i in range(64)), RENDERED)
    assert len(str(caught.value)) <= 1000 and "58 more" in str(caught.value)


def test_absent_syntax_falls_back_when_explicit_le_is_unavailable() -> None:
    lossy_only = [Offer("application/dicom", True, (JPEG_BASELINE,), JPEG_BASELINE)]
    assert choose('multipart/related; type="application/dicom"', lossy_only).transfer_syntax == JPEG_BASELINE
    assert negotiate(parse_accept('multipart/related; type="application/dicom"'), INSTANCE).transfer_syntax == ELE
    preferring_lossless = [Offer("application/dicom", True, (JPEG_LOSSLESS, ELE), JPEG_BASELINE)]
    assert negotiate(parse_accept("multipart/related"), preferring_lossless).transfer_syntax == JPEG_LOSSLESS
    assert choose("multipart/related", preferring_lossless).transfer_syntax == ELE


def test_wildcard_syntax_without_stored_syntax_takes_the_first() -> None:
    offers = [Offer("application/dicom", True, (ELE, JLS))]
    assert choose('multipart/related; type="application/dicom"; transfer-syntax=*', offers).transfer_syntax == ELE


def test_q_values_order_transfer_syntaxes() -> None:
    # PS3.18 8.7.3.5.2's own example, boundary parameter after q included.
    header = (
        'multipart/related; type="application/dicom";transfer-syntax=1.2.840.10008.1.2.4.50;boundary=**, '
        'multipart/related; type="application/dicom";transfer-syntax=1.2.840.10008.1.2.4.57;q=0.5;boundary=**'
    )
    assert choose(header, INSTANCE).transfer_syntax == JPEG_BASELINE
    lossless = [Offer("application/dicom", True, (ELE, JPEG_LOSSLESS), JPEG_LOSSLESS)]
    choice = choose(header, lossless)
    assert choice.transfer_syntax == JPEG_LOSSLESS and choice.media_range.q == 0.5


def test_higher_q_beats_specificity_and_server_order() -> None:
    offers = [METADATA[1], METADATA[0]]
    assert choose("*/*, application/dicom+json;q=0.5", offers).offer is METADATA[1]
    assert choose("application/dicom+json;q=0.4, */*;q=0.5", offers).offer is METADATA[1]
    assert choose("image/jpeg;q=0.2, image/gif;q=0.3", RENDERED).offer is RENDERED[2]


def test_ties_go_to_the_more_specific_range_then_server_order() -> None:
    assert choose("image/*, image/png", RENDERED).offer is RENDERED[1]
    assert choose("image/*", RENDERED).offer is RENDERED[0]
    assert choose("image/gif, image/png", RENDERED).offer is RENDERED[1]
    frames = 'multipart/related; type="*/*", multipart/related; type="image/jls"'
    assert choose(frames, FRAMES).offer is FRAMES[1]


def test_q_zero_refuses_unless_a_more_specific_range_accepts() -> None:
    assert choose("image/*, image/jpeg;q=0", RENDERED).offer is RENDERED[1]
    assert choose("*/*, application/dicom+json;q=0", METADATA).offer is METADATA[1]
    # RFC 9110 12.5.1: the most specific range decides.
    texts = [Offer("text/plain", False), Offer("text/html", False)]
    assert choose("text/*;q=0, text/html", texts).offer is texts[1]
    refused_stored = (
        'multipart/related; type="application/dicom"; transfer-syntax=*, '
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50; q=0'
    )
    assert choose(refused_stored, INSTANCE).transfer_syntax == ELE
    with pytest.raises(NotAcceptable):
        choose('image/jpeg, image/jpeg;q=0', RENDERED)


def test_choice_content_types() -> None:
    assert choose('multipart/related; type="application/dicom"', STUDY).part_content_type == (
        "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    )
    assert choose("application/dicom+json", METADATA).part_content_type == "application/dicom+json"


def test_negotiate_needs_offers() -> None:
    with pytest.raises(ValueError):
        negotiate(parse_accept("*/*"), [])


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ["*/*"]),
        ("", ["*/*"]),
        (" \t", ["*/*"]),
        (", ,", ["*/*"]),
        ("text/html,,application/json", ["text/html", "application/json"]),
        ('text/plain; title="a,b", text/html', ['text/plain; title="a,b"', "text/html"]),
        (
            "a/b;q=0.5, c/d, e/*;q=0.5, */*;q=0.5, e/f;x=1;q=0.5",
            ["c/d", "e/f; x=1; q=0.5", "a/b; q=0.5", "e/*; q=0.5", "*/*; q=0.5"],
        ),
        ("text/html;;; charset=utf-8;", ["text/html; charset=utf-8"]),
    ],
)
def test_parse_accept_lists_and_order(header: str | None, expected: list[str]) -> None:
    assert [str(media) for media in parse_accept(header)] == expected


def test_quoted_and_unquoted_values_are_equal() -> None:
    quoted = parse_accept('multipart/related; type="application/dicom"; transfer-syntax="1.2.840.10008.1.2.1"')
    unquoted = parse_accept("Multipart/Related ; TYPE = Application/DICOM ;Transfer-Syntax= 1.2.840.10008.1.2.1")
    assert quoted == unquoted
    media = quoted[0]
    assert (media.type, media.subtype, media.full, dict(media.params), media.q) == (
        "multipart", "related", "multipart/related", {"type": "application/dicom", "transfer-syntax": ELE}, 1.0,
    )
    assert hash(media) == hash(unquoted[0])


def test_quoted_string_escapes() -> None:
    media = parse_accept(r'text/plain; note="say \"hi\" \\ bye, ok"; q=0.25')[0]
    assert media.params["note"] == 'say "hi" \\ bye, ok' and media.q == 0.25
    assert str(media) == r'text/plain; note="say \"hi\" \\ bye, ok"; q=0.25'


def test_params_are_read_only() -> None:
    media = parse_accept("a/b; x=1")[0]
    with pytest.raises(TypeError):
        media.params["x"] = "2"  # type: ignore[index]


@pytest.mark.parametrize("q", ["0", "0.", "0.5", "0.123", "1", "1.", "1.0", "1.000", "0.000"])
def test_valid_q_values(q: str) -> None:
    assert parse_accept(f"a/b;q={q}")[0].q == float(q)


@pytest.mark.parametrize("q", ["1.5", "0.1234", "-1", ".5", "1.001", "abc", '"0.5"', "", "2", "01", "1e-1"])
def test_invalid_q_values(q: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_accept(f"a/b;q={q}")


@pytest.mark.parametrize(
    "header",
    [
        ";;;",
        "text",
        "/json",
        "*/json",
        "text/",
        "text/html x",
        "text/html; charset",
        "text/html; =x",
        "text/html; a=",
        'text/html; a="unterminated',
        "text/html; a=b c",
        "text/html; a=é",
        "a/b; x=1; X=2",
        "a/b; q=0.5; q=0.6",
        "application/dicom; transfer-syntax=abc",
        "application/dicom; transfer-syntax=1..2.3",
        "application/dicom; transfer-syntax=" + "1." * 32 + "1",
        'multipart/related; type="dicom"',
        'multipart/related; type="image/jpeg; x=1"',
        "text/html\x00",
        "x" * 10_000,
        "a/b, " * 65,
    ],
)
def test_garbage_is_invalid_request(header: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_accept(header)
    assert 0 < len(str(caught.value)) < 300


def test_huge_accept_header_is_refused_quickly() -> None:
    header = ", ".join(f'multipart/related; type="image/x-{i}"; q=0.{i % 10}' for i in range(2000))
    assert len(header) > 60_000
    started = time.perf_counter()
    with pytest.raises(InvalidRequest, match="longer than 8192"):
        parse_accept(header)
    assert time.perf_counter() - started < 0.1
    many = ", ".join(["a/b"] * 65)
    with pytest.raises(InvalidRequest, match="more than 64"):
        parse_accept(many)


def test_parse_media_type() -> None:
    media = parse_media_type('multipart/related; type="application/dicom"; boundary="a b"; q=0.5')
    assert media.full == "multipart/related"
    assert dict(media.params) == {"type": "application/dicom", "boundary": "a b", "q": "0.5"}
    assert media.q == 1.0
    assert parse_media_type("application/dicom; transfer-syntax=1.2.840.10008.1.2.1").params["transfer-syntax"] == ELE
    # Mail-style boundaries arrive unquoted although '=' and ':' are no token characters.
    mail_style = parse_media_type("multipart/related; boundary=----=_Part_0_1:2; type=application/dicom")
    assert mail_style.params["boundary"] == "----=_Part_0_1:2"
    for bad in ["*/*", "image/*", "a/b c", "a/b, c/d", "", "a/b; transfer-syntax=x"]:
        with pytest.raises(InvalidRequest):
            parse_media_type(bad)


def test_specificity() -> None:
    assert parse_accept("*/*")[0].specificity == (0, 0, 0)
    assert parse_accept("image/*")[0].specificity == (1, 0, 0)
    assert parse_accept("multipart/related")[0].specificity == (2, 0, 0)
    assert parse_accept('multipart/related; type="*/*"')[0].specificity == (2, 0, 1)
    assert parse_accept('multipart/related; type="image/*"; boundary=x')[0].specificity == (2, 1, 1)
    assert parse_accept('multipart/related; type="image/jls"; transfer-syntax=*')[0].specificity == (2, 2, 2)


def test_format_media_type() -> None:
    assert format_media_type("application/dicom", transfer_syntax=ELE) == (
        "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    )
    assert format_media_type("multipart/related", type="application/dicom", boundary="x y", start=None) == (
        'multipart/related; type="application/dicom"; boundary="x y"'
    )
    assert format_media_type("text/plain", note='a"b\\c', empty="") == r'text/plain; note="a\"b\\c"; empty=""'
    assert format_media_type("image/jpeg") == "image/jpeg"
    with pytest.raises(ValueError):
        format_media_type("text/plain", x="a\r\nInjected: 1")


def test_offers_list_their_syntaxes_default_first() -> None:
    offers = [
        Offer("image/jpeg", True, ("1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.50")),
        Offer("application/octet-stream", True, ("1.2.840.10008.1.2.1",)),
    ]
    choice = choose('multipart/related; type="image/jpeg"', offers)
    assert choice.transfer_syntax == "1.2.840.10008.1.2.4.70"
    assert choice.part_content_type == "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.70"


_UIDS = st.sampled_from([ELE, JPEG_BASELINE, JPEG_LOSSLESS, JLS, J2K, "1.2.3.4"])
_TYPES = st.sampled_from(
    ["application/dicom", "application/dicom+json", "application/dicom+xml", "application/octet-stream", "image/jpeg",
     "image/jls", "image/png", "text/html", "application/json", "*/*", "image/*"]
)


@st.composite
def _ranges(draw: st.DrawFn) -> str:
    kind = draw(_TYPES)
    text = draw(st.sampled_from([kind, "multipart/related", "multipart/*", "*/*", "multipart/related"]))
    if text.startswith("multipart") and draw(st.booleans()):
        text += f'; type="{kind}"' if draw(st.booleans()) else f"; type={kind}"
    if draw(st.booleans()):
        text += f"; transfer-syntax={draw(st.one_of(st.just('*'), _UIDS))}"
    if draw(st.booleans()):
        text += f";q={draw(st.sampled_from(['0', '0.1', '0.5', '0.9', '1']))}"
    return text


_offers = st.lists(
    st.builds(
        Offer,
        st.sampled_from(
            ["application/dicom", "application/dicom+json", "application/dicom+xml", "application/octet-stream",
             "image/jls", "image/png"]
        ),
        st.booleans(),
        st.lists(_UIDS, max_size=3, unique=True).map(tuple),
        st.one_of(st.none(), _UIDS),
    ),
    min_size=1,
    max_size=5,
)


@given(
    header=st.one_of(st.lists(_ranges(), max_size=6).map(", ".join), st.text(max_size=200)),
    offers=_offers,
    default_syntax=st.one_of(st.none(), st.just(ELE)),
)
@settings(max_examples=1500, deadline=None)
def test_property_negotiate_returns_an_offer_or_a_defined_refusal(
    header: str, offers: list[Offer], default_syntax: str | None
) -> None:
    try:
        choice = negotiate(parse_accept(header), offers, default_syntax=default_syntax)
    except (NotAcceptable, InvalidRequest):
        return
    assert choice.offer in offers
    assert choice.media_range.q > 0
    syntaxes = (*choice.offer.transfer_syntaxes, choice.offer.stored_syntax)
    if choice.offer.transfer_syntaxes or choice.offer.stored_syntax:
        assert choice.transfer_syntax in syntaxes
    else:
        assert choice.transfer_syntax is None


@given(st.text(max_size=300))
@settings(max_examples=1000, deadline=None)
def test_property_parsers_raise_only_invalid_request(text: str) -> None:
    for parse in (parse_accept, parse_media_type):
        with contextlib.suppress(InvalidRequest):
            parse(text)


def test_media_range_constructed_directly() -> None:
    media = MediaRange("image", "png", {"x": "1"}, 0.5)
    assert str(media) == "image/png; x=1; q=0.5"
    assert media == MediaRange("image", "png", {"x": "1"}, 0.5)
