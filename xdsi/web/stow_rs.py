"""STOW-RS (PS3.18 10.5): store instances sent as PS3.10 files, or as metadata plus bulk data.

The body is read as a stream: each part is spooled to the blob store's temporary area as it
arrives, so an upload of any size never sits in memory. A part that the body cuts short
fails alone; the parts before it are stored.

The part limit follows the same rule: the parts up to ``max_request_parts`` are stored, and
the part past it is one more failure (0xA700). Refusing the whole request there would mean
discarding instances already spooled, and with 1,000 parts of a large upload that is most of
it, or holding every part back until the body ends, which streaming is there to avoid; and a
sender reading the answer learns exactly which instances to send again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, request
from gunicorn.http.errors import (
    InvalidHeader,
    InvalidHeaderName,
    LimitRequestHeaders,
    NoMoreData,
    ObsoleteFolding,
    ParseException,
)

from xdsi import errormap
from xdsi.dicom.uids import validate_uid
from xdsi.errors import InvalidRequest, MalformedDicom, RequestTooLarge, UnsupportedMediaType, XdsiError
from xdsi.services.archive import Archive
from xdsi.services.store import Outcome, Status
from xdsi.services.stow_assembly import MetadataPart, Readable
from xdsi.web import multipart, negotiation, stow_response
from xdsi.web.context import announce, archive, requester
from xdsi.web.errors import retry_headers, warning
from xdsi.web.negotiation import DICOM, DICOM_JSON, DICOM_XML
from xdsi.web.urls import DICOMWEB, dicomweb_root

log = logging.getLogger(__name__)

blueprint = Blueprint("stow_rs", __name__, url_prefix=DICOMWEB)

MAX_WARNINGS = 20
# PS3.18 10.5.3.2: the response is JSON unless the client asks for XML.
OFFERS = negotiation.dataset_offers(xml_multipart=False)


@blueprint.post("/studies")
def store_instances() -> Response:
    return _store(None)


@blueprint.post("/studies/<study>")
def store_study_instances(study: str) -> Response:
    return _store(validate_uid(study, "Study Instance UID in the path"))


def _store(study_uid: str | None) -> Response:
    current = archive()
    choice = negotiation.negotiate(negotiation.parse_accept(request.headers.get("Accept")), OFFERS)
    limit = current.settings.max_request_bytes
    if request.content_length is not None and request.content_length > limit:
        raise RequestTooLarge(f"the request body of {request.content_length} bytes exceeds the limit of {limit}")
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not accepted; send the body uncompressed")
    content_type = request.headers.get("Content-Type")
    if not content_type:
        raise UnsupportedMediaType("the request has no Content-Type")
    media = negotiation.parse_media_type(content_type)
    body = _Bounded(request.stream, limit, request.content_length)
    refusal: XdsiError | None = None
    try:
        if media.full == DICOM:
            outcomes = current.store.store([body], study_uid=study_uid)
        elif media.full == "multipart/related":
            part_type = media.params.get("type", DICOM)
            outcomes = _store_multipart(current, body, multipart.boundary_of(media), part_type, study_uid)
        else:
            raise UnsupportedMediaType(
                f"Content-Type {media.full} is not accepted; send multipart/related; type=\"{DICOM}\", "
                f"{DICOM_JSON} or {DICOM_XML} parts, or a single {DICOM} body"
            )
    except XdsiError as exc:
        if errormap.lookup(exc).http_status != 503:
            raise
        # The server cannot take the request now (out of space, index busy, memory budget) and
        # kept none of it: 503 with Retry-After, and a Store Instances Response that says so
        # too (PS3.18 Table I.2-2: 0xA700, out of resources).
        log.warning("STOW-RS request refused: %s", exc)
        refusal, outcomes = exc, [Outcome(Status.FAILED, error=exc)]
    current.auditor.stored(requester(), outcomes)
    root = dicomweb_root(request)
    report = stow_response.response_model(outcomes, root)
    write = stow_response.to_xml if choice.offer.media_type == DICOM_XML else stow_response.to_json
    status = 503 if refusal is not None else stow_response.http_status(outcomes)
    response = Response(write(report), status=status, mimetype=choice.offer.media_type, headers=retry_headers(status))
    texts = [str(refusal)] if refusal is not None else stow_response.warning_texts(outcomes)
    for text in texts[:MAX_WARNINGS]:
        # The response codes say what class of failure or warning; the Warning header says why, in words.
        response.headers.add("Warning", warning(root, text))
    return response


def _store_multipart(
    current: Archive, body: Readable, boundary: str, part_type: str, study_uid: str | None
) -> list[Outcome]:
    limits = multipart.MultipartLimits(max_parts=current.settings.max_request_parts)
    parts = multipart.iter_parts(body, boundary, limits)
    broken: list[InvalidRequest] = []
    if part_type == DICOM:
        outcomes = current.store.store(_sources(parts, broken), study_uid=study_uid)
    elif part_type in (DICOM_JSON, DICOM_XML):
        outcomes = current.assembler.store_metadata(
            _metadata_parts(_guarded(parts, broken), part_type), part_type, study_uid)
    else:
        raise UnsupportedMediaType(
            f"multipart/related type {part_type!r} is not accepted; use {DICOM}, {DICOM_JSON} or {DICOM_XML}"
        )
    if broken:
        if not outcomes:
            raise broken[0]
        # The body broke (or hit the part limit) after some parts: the parts before it stand,
        # and the break is reported as a failure not tied to an instance.
        outcomes.append(Outcome(Status.FAILED, error=broken[0]))
    return outcomes


def _metadata_parts(parts: Iterator[multipart.Part], root_type: str) -> Iterator[MetadataPart]:
    """Each part's headers read: one without a Content-Type is of the request's root type."""
    for part in parts:
        media = negotiation.parse_media_type(part.content_type or root_type)
        yield MetadataPart(media.full, media.params.get("transfer-syntax"), part.content_location, part)


def _guarded(parts: Iterator[multipart.Part], broken: list[InvalidRequest]) -> Iterator[multipart.Part]:
    """The parts until the body breaks; the break is recorded instead of raised."""
    try:
        yield from parts
    except InvalidRequest as exc:
        broken.append(exc)


def _sources(parts: Iterator[multipart.Part], broken: list[InvalidRequest]) -> Iterator[Readable]:
    for part in _guarded(parts, broken):
        yield _PartBody(part)


class _PartBody:
    """A part as the store reads it: a body cut short is this instance's failure, not the request's."""

    def __init__(self, part: multipart.Part) -> None:
        self.part = part

    def read(self, size: int = -1) -> bytes:
        try:
            return self.part.read(size)
        except InvalidRequest as exc:
            raise MalformedDicom(f"the request body ended inside this part: {exc}") from exc


class _Bounded:
    """The request body, refused once it grows past the limit (chunked bodies have no length).

    It is also the one place a broken body becomes the client's error, whatever its framing.
    gunicorn's chunked reader raises its own exceptions on a framing fault or a connection closed
    mid-body (RFC 9112 7.1), and keeps what it received before; a body of known length just ends
    early. Either way the bytes received are passed on first and every read after them raises
    one InvalidRequest, so a break costs only what follows it.
    """

    def __init__(self, stream: Readable, limit: int, length: int | None) -> None:
        self.stream = stream
        self.limit = limit
        self.length = length
        self.seen = 0
        self.fault: str | None = None

    def read(self, size: int = -1) -> bytes:
        data = self._received(size)
        if not data and size != 0:
            if self.fault is None and self.length is not None and self.seen < self.length:
                # RFC 9112 8: a body shorter than its Content-Length is an incomplete message.
                self._break(_CLOSED)
            if self.fault is not None:
                raise InvalidRequest(f"the request body breaks off after {self.seen} bytes: {self.fault}")
        self.seen += len(data)
        if self.seen > self.limit:
            raise RequestTooLarge(f"the request body exceeds the limit of {self.limit} bytes")
        return data

    def _received(self, size: int) -> bytes:
        """The next bytes of the body; after a fault, what gunicorn had received before it, then b""."""
        try:
            return self.stream.read(size)
        except NoMoreData:
            fault = _CLOSED
        except ParseException as exc:
            fault = _framing_fault(exc)
        if self.fault is not None:
            return b""
        self._break(fault)
        try:
            return self.stream.read(size)
        except (NoMoreData, ParseException):
            return b""

    def _break(self, fault: str) -> None:
        self.fault = fault
        # The client's fault, told in the answer; the log keeps one line of it, not a traceback.
        log.warning("STOW-RS request body from %s breaks off: %s", request.remote_addr, fault)


_CLOSED = "the connection closed before the end of the body"
# RFC 9112 7.1.2: the trailer section is a header block, refused past gunicorn's header limits.
_TRAILER_FAULTS = (InvalidHeader, InvalidHeaderName, LimitRequestHeaders, ObsoleteFolding)


def _framing_fault(exc: ParseException) -> str:
    # gunicorn's messages name the fault; a malformed size line is echoed, so it is cut short.
    detail = str(exc)[:200]
    if isinstance(exc, _TRAILER_FAULTS):
        return f"its trailer section is refused (RFC 9112 7.1.2): {detail}"
    return f"its chunked framing is malformed (RFC 9112 7.1): {detail}"


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    announce(app, "STOW-RS (store)", f"{DICOMWEB}/studies")
