"""WADO-RS (PS3.18 10.4): retrieve studies, series, instances, metadata, frames and bulk data."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import cast

from flask import Blueprint, Flask, Response, request
from werkzeug.wsgi import wrap_file

from xdsi.dicom import uids
from xdsi.dicom.uids import EXPLICIT_VR_LITTLE_ENDIAN
from xdsi.errors import NotAcceptable, NotFound
from xdsi.services import frame_forms, plans, retrieve
from xdsi.services.archive import Archive
from xdsi.services.metadata import instance_path, parse_bulk_data_path
from xdsi.services.retrieve import BlobReader, StoredInstance, Target
from xdsi.web import multipart, negotiation
from xdsi.web.context import accepted, announce, archive, requester, session
from xdsi.web.negotiation import DICOM, DICOM_XML, OCTET_STREAM, ZIP
from xdsi.web.ranges import ranged
from xdsi.web.urls import DICOMWEB, dicomweb_root

blueprint = Blueprint("wado_rs", __name__, url_prefix=DICOMWEB)

GZIP_MINIMUM_INSTANCES = 2  # one instance's metadata, a few kilobytes, gains less from compression than it costs
MAX_FRAMES_PER_REQUEST = 10_000


@blueprint.get("/studies/<study>")
@blueprint.get("/studies/<study>/series/<series>")
@blueprint.get("/studies/<study>/series/<series>/instances/<instance>")
def retrieve_objects(study: str, series: str | None = None, instance: str | None = None) -> Response:
    return _retrieve(_target(study, series, instance))


@blueprint.get("/studies/<study>/metadata")
@blueprint.get("/studies/<study>/series/<series>/metadata")
@blueprint.get("/studies/<study>/series/<series>/instances/<instance>/metadata")
def retrieve_metadata(study: str, series: str | None = None, instance: str | None = None) -> Response:
    return _metadata(_target(study, series, instance))


@blueprint.get("/studies/<study>/series/<series>/instances/<instance>/bulkdata/<path:path>")
def retrieve_bulk_data(study: str, series: str, instance: str, path: str) -> Response:
    target = _target(study, series, instance)
    parsed = parse_bulk_data_path(path)
    if parsed is None:
        raise NotFound(f"{path!r} is not a bulk data path (tags as 8 hex digits, item numbers from 1)")
    current, found = _instance(target)
    if frame_forms.sent_as_frames(found, parsed):
        return _all_frames(current, found)
    value = retrieve.bulk_value(current.blobs, found, parsed, current.limits)
    return _octets(current, value)


@blueprint.get("/studies/<study>/series/<series>/instances/<instance>/frames/<frame_list>")
def retrieve_frames(study: str, series: str, instance: str, frame_list: str) -> Response:
    target = _target(study, series, instance)
    numbers = retrieve.frame_numbers(frame_list, MAX_FRAMES_PER_REQUEST)
    current, found = _instance(target)
    return _frames(current, found, numbers)


@blueprint.get("/studies/<study>/series/<series>/instances/<instance>/pixeldata")
def retrieve_pixel_data(study: str, series: str, instance: str) -> Response:
    # PS3.18 10.4.1.1.4 (CP-2040): the Pixel Data of the instance, as its frames.
    current, found = _instance(_target(study, series, instance))
    if found.number_of_frames is None and found.pixel_data_offset is None and not found.frame_table:
        raise NotFound(f"instance {found.sop_instance_uid} has no pixel data")
    return _all_frames(current, found)


def _instance(target: Target) -> tuple[Archive, StoredInstance]:
    [found] = retrieve.instances(session(), target)
    archive().auditor.retrieved(requester(), [found], "WADO-RS")
    return archive(), found


def _all_frames(current: Archive, found: StoredInstance) -> Response:
    return _frames(current, found, range(1, (found.number_of_frames or 1) + 1))


def _frames(current: Archive, found: StoredInstance, numbers: Sequence[int]) -> Response:
    offers = _frame_offers(plans.ObjectPlan.of(found), single=len(numbers) == 1)
    choice = negotiation.negotiate(accepted(), offers, default_syntax=EXPLICIT_VR_LITTLE_ENDIAN)
    syntax = choice.transfer_syntax or EXPLICIT_VR_LITTLE_ENDIAN
    frames = retrieve.frames(current.blobs, found, numbers, syntax, current.limits,
                             current.settings.max_transcode_bytes)
    if not choice.offer.multipart:
        [frame] = list(frames)
        return Response(frame.data, status=200, content_type=_frame_type(frame))
    boundary = multipart.new_boundary()
    parts = (({"Content-Type": _frame_type(frame)}, frame.data) for frame in frames)
    first = next(parts)  # errors (a frame beyond the last) surface before the status is sent
    body = multipart.iter_multipart(itertools.chain([first], parts), boundary)
    return Response(body, status=200, content_type=multipart.content_type(choice.offer.media_type, boundary))


def _frame_offers(item: plans.ObjectPlan, single: bool) -> tuple[negotiation.Offer, ...]:
    """Each form the plan allows for the frames, multipart and (for one frame) single part."""
    if not item.frames:
        raise NotAcceptable(f"frames of {item.instance.sop_instance_uid} ({item.kind.value}, "
                            f"{uids.transfer_syntax_name(item.stored_syntax)}) have no media type of their own")
    kinds = [True, False] if single else [True]
    return tuple(negotiation.Offer(form.media_type, multipart=m, transfer_syntaxes=form.transfer_syntaxes,
                                   stored_syntax=form.stored_syntax)
                 for form in item.frames for m in kinds)


def _frame_type(frame: retrieve.Frame) -> str:
    media_type = frame_forms.frame_media_type(frame.transfer_syntax)
    return negotiation.format_media_type(media_type, transfer_syntax=frame.transfer_syntax)


OCTET_OFFERS = (
    negotiation.Offer(OCTET_STREAM, multipart=True),
    negotiation.Offer(OCTET_STREAM, multipart=False),
)


def _octets(current: Archive, value: retrieve.BulkValue) -> Response:
    """Bulk data as one part, or single-part with HTTP Range support (RFC 9110 14)."""
    choice = negotiation.negotiate(accepted(), OCTET_OFFERS)
    if choice.offer.multipart:
        boundary = multipart.new_boundary()
        headers = {"Content-Type": OCTET_STREAM}
        response = Response(multipart.iter_multipart([(headers, value.chunks(current.blobs))], boundary),
                            status=200, content_type=multipart.content_type(OCTET_STREAM, boundary))
        response.content_length = multipart.body_length([(headers, value.length)], boundary)
        return response
    return ranged(lambda start, end: value.chunks(current.blobs, start, end), value.length, OCTET_STREAM, "value")


def _target(study: str, series: str | None = None, instance: str | None = None) -> Target:
    return Target.checked(study, series, instance, where=" in the path")


def _retrieve(target: Target) -> Response:
    current = archive()
    plan = plans.plan(session(), target)
    offers = [negotiation.Offer(DICOM, multipart=True, transfer_syntaxes=plan.syntaxes, stored_syntax=plan.as_stored)]
    if target.sop_instance_uid is not None:
        # PS3.18 10.4.3: a single-part application/dicom answer only for one instance.
        offers.append(negotiation.Offer(DICOM, multipart=False, transfer_syntaxes=plan.syntaxes,
                                        stored_syntax=plan.as_stored))
    offers.append(negotiation.Offer(ZIP, multipart=False))
    choice = negotiation.negotiate(accepted(), offers, default_syntax=EXPLICIT_VR_LITTLE_ENDIAN)
    files = retrieve.opened_files(current.blobs, plan.instances)
    try:
        response = _answer(current, files, plan, choice)
    except BaseException:
        files.close()
        raise
    response.call_on_close(files.close)
    if request.method == "HEAD":  # the headers alone: nothing of the instances is sent
        return response
    if response.direct_passthrough:  # one stored file, handed whole to the server's file wrapper (sendfile)
        current.auditor.retrieved(requester(), plan.instances, "WADO-RS")
        return response
    transfer = current.auditor.begin_transfer(requester(), plan.instances, "WADO-RS")
    response.response = transfer.watch(cast(Iterable[bytes], response.response))  # the answers above are bytes
    response.call_on_close(transfer.end)
    return response


def _answer(current: Archive, files: BlobReader, plan: plans.RetrievePlan, choice: negotiation.Choice) -> Response:
    if choice.offer.media_type == ZIP:
        response = Response(retrieve.zip_chunks(files, plan.instances), status=200, mimetype=ZIP)
        response.headers["Content-Disposition"] = f'attachment; filename="{plan.target.study_uid}.zip"'
        return response
    # PS3.18 8.7.3.5.2: '*' means each instance as it is stored, whatever the others are.
    as_stored = choice.media_range.params.get("transfer-syntax") == "*" or choice.transfer_syntax is None
    wanted: plans.Request = plans.AS_STORED if as_stored else plans.Syntaxes((str(choice.transfer_syntax),))
    resolved = plan.require(wanted)  # the offers listed only syntaxes every instance can be sent in
    unchanged = not any(item.transcoded for item in resolved)
    if not choice.offer.multipart:
        return _single_instance(current, files, resolved[0])
    root = dicomweb_root(request)
    boundary = multipart.new_boundary()
    length = None
    if unchanged:
        headers = [_part_headers(root, item.object.instance, item.object.stored_syntax) for item in resolved]
        length = multipart.body_length(zip(headers, (item.object.size for item in resolved), strict=True), boundary)
    parts = _parts(current, files, resolved, root)
    first = next(parts)  # a failure to transcode the first instance is answered before any byte is sent
    chunks = multipart.iter_multipart(itertools.chain([first], parts), boundary)
    response = Response(chunks, status=200, content_type=multipart.content_type(
        DICOM, boundary, transfer_syntax=None if unchanged else choice.transfer_syntax))
    if length is not None:
        response.content_length = length
    return response


def _parts(current: Archive, files: BlobReader, resolved: Sequence[plans.Resolved],
           root: str) -> Iterator[tuple[dict[str, str], Iterator[bytes]]]:
    """One instance at a time, read as its part is reached: a study is never held in memory."""
    for item in resolved:
        body = plans.dicom_body(files, item, current.settings.max_transcode_bytes)
        yield _part_headers(root, item.object.instance, body.transfer_syntax), body.chunks


def _part_headers(root: str, instance: StoredInstance, syntax: str) -> dict[str, str]:
    return {
        "Content-Type": negotiation.format_media_type(DICOM, transfer_syntax=syntax),
        "Content-Location": root + instance_path(instance.study_uid, instance.series_uid, instance.sop_instance_uid),
    }


def _single_instance(current: Archive, files: BlobReader, item: plans.Resolved) -> Response:
    if not item.transcoded:
        # The WSGI file wrapper lets gunicorn send the whole file with sendfile.
        stored_type = negotiation.format_media_type(DICOM, transfer_syntax=item.object.stored_syntax)
        response = Response(wrap_file(request.environ, retrieve.open_file(files, item.object.instance)),
                            status=200, direct_passthrough=True, content_type=stored_type)
        response.content_length = item.object.size
        return response
    body = plans.dicom_body(files, item, current.settings.max_transcode_bytes)
    return Response(b"".join(body.chunks), status=200,
                    content_type=negotiation.format_media_type(DICOM, transfer_syntax=body.transfer_syntax))


METADATA_OFFERS = negotiation.dataset_offers(xml_multipart=True)


def _metadata(target: Target) -> Response:
    """Metadata streamed as it is read from the index, a batch of instances at a time: a study of
    any size is answered in bounded memory (and so without Content-Length)."""
    choice = negotiation.negotiate(accepted(), METADATA_OFFERS)
    found = retrieve.metadata(session(), archive().sessions, target, dicomweb_root(request))
    if choice.offer.media_type == DICOM_XML:
        boundary = multipart.new_boundary()
        parts = (({"Content-Type": f"{DICOM_XML}; charset=utf-8"}, document) for document in found.xml_documents())
        response = Response(multipart.iter_multipart(parts, boundary), status=200,
                            content_type=multipart.content_type(DICOM_XML, boundary))
    else:
        zipped = "gzip" in request.accept_encodings and len(found.instance_ids) >= GZIP_MINIMUM_INSTANCES
        chunks = _gzipped(found.json_chunks()) if zipped else found.json_chunks()
        response = Response(chunks, status=200, mimetype=choice.offer.media_type)
        response.vary.add("Accept-Encoding")
        if zipped:
            response.content_encoding = "gzip"
    response.set_etag(found.etag, weak=True)
    response.last_modified = found.last_modified
    response.cache_control.no_cache = True
    response.vary.add("Accept")
    if request.if_none_match.contains_weak(found.etag) or (
        not request.if_none_match and request.if_modified_since
        and found.last_modified.replace(microsecond=0) <= request.if_modified_since
    ):
        return _not_modified(response)
    _audit_read(target)
    return response


def _gzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """RFC 1952 gzip of ``chunks``, compressed as they come (level 1: the network is rarely the
    bottleneck on the links viewers use, the CPU of a busy archive may be)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    for chunk in chunks:
        if compressed := compressor.compress(chunk):
            yield compressed
    yield compressor.flush()


def _audit_read(target: Target) -> None:
    """Metadata sent is a read of the target's instances (RAD-107); a 304 or a HEAD sends none and is not
    audited."""
    current = archive()
    if current.auditor.enabled and request.method != "HEAD":
        current.auditor.retrieved(requester(), retrieve.instances(session(), target), "WADO-RS")


def _not_modified(response: Response) -> Response:
    response.status_code = 304
    response.set_data(b"")
    response.headers.pop("Content-Length", None)
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    announce(app, "WADO-RS (retrieve)", f"{DICOMWEB}/studies/{{study}}")
