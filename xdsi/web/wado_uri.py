"""WADO-URI (PS3.18 chapter 9): one object named by its three UIDs, as DICOM or rendered, at ``/wado``.

The query is parsed and checked here in full before the object is looked up, so a malformed
request is a 400 naming the parameter whatever the archive holds; what depends on the object
(its kind, its frames, the forms it can be sent in) is decided by its retrieve plan.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, request
from werkzeug.datastructures import MultiDict
from werkzeug.wsgi import wrap_file

from xdsi.dicom.uids import EXPLICIT_VR_LITTLE_ENDIAN, validate_uid
from xdsi.errors import InvalidRequest, NotAcceptable
from xdsi.services import charset, plans, render, retrieve
from xdsi.services.anonymize import Anonymizer
from xdsi.services.archive import Archive
from xdsi.services.plans import ObjectKind, ObjectPlan
from xdsi.services.retrieve import BlobReader, Target
from xdsi.web import document_answer, negotiation
from xdsi.web.context import announce, archive, requester, session
from xdsi.web.negotiation import DICOM, MediaRange
from xdsi.web.rendered_image import image_answer

PATH = "/wado"
blueprint = Blueprint("wado_uri", __name__)

MAX_DIMENSION = 16384  # rows/columns beyond any display; the renderer bounds output pixels too
MAX_LIST = 32  # entries of contentType, charset or annotation
ANNOTATIONS = ("patient", "technique")  # PS3.18 9.1.2.1: the values of annotation
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z", re.ASCII)
_INTEGER = re.compile(r"[0-9]{1,9}\Z", re.ASCII)


@dataclass(frozen=True)
class UriRequest:
    """A WADO-URI query, checked: every value typed, every rule among parameters kept."""

    target: Target
    content_types: tuple[MediaRange, ...] = ()  # best first, q=0 left out; empty: the default
    charsets: tuple[str, ...] = ()
    anonymize: bool = False
    transfer_syntax: str | None = None
    annotation: tuple[str, ...] = ()
    rows: int | None = None
    columns: int | None = None
    region: tuple[float, float, float, float] | None = None
    window_center: float | None = None
    window_width: float | None = None
    frame_number: int | None = None
    image_quality: int | None = None
    presentation_uid: str | None = None
    presentation_series_uid: str | None = None

    def given(self, names: tuple[str, ...]) -> list[str]:
        """Which of the parameters ``names`` (wire spelling) the request carries."""
        return [name for name in names if _present(getattr(self, _FIELD_OF[name]))]


def _present(value: object) -> bool:
    return value is not None and value is not False and value != ()


def _one(args: MultiDict[str, str], name: str) -> str | None:
    values = args.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(f"{name} is given {len(values)} times; it takes one value")
    return values[0] if values else None


def _uid(name: str) -> Callable[[str], str]:
    return lambda text: validate_uid(text, name)


def _content_types(text: str) -> tuple[MediaRange, ...]:
    # PS3.18 9.1.2.1: a list of media types with optional q-values, like an Accept header.
    ranges = negotiation.parse_accept(text) if text.strip(" \t,") else []
    if not ranges:
        raise InvalidRequest("contentType is empty; give a media type such as image/jpeg or application/dicom")
    if len(ranges) > MAX_LIST:
        raise InvalidRequest(f"contentType lists more than {MAX_LIST} media types")
    for media in ranges:
        if media.params:
            # PS3.18 9.1.2.1: transfer-syntax and charset go in their own parameters.
            raise InvalidRequest(f"contentType {media.full} carries the parameter "
                                 f"{next(iter(media.params))!r}; use transferSyntax or charset instead")
        if media.type == "multipart":
            raise InvalidRequest(f"contentType {media.full}: WADO-URI answers a single object, never multipart")
    return tuple(media for media in ranges if media.q > 0)


def _anonymize(text: str) -> bool:
    if text != "yes":
        # PS3.18 9.1.2.2: the only value is "yes".
        raise InvalidRequest(f"anonymize={text[:20]!r}: the only value is 'yes'")
    return True


def _transfer_syntax(text: str) -> str:
    # '*' (each object as stored) is the PS3.18 8.7.3.5.2 spelling, accepted here too.
    return text if text == "*" else validate_uid(text, "transferSyntax")


def _annotation(text: str) -> tuple[str, ...]:
    values = tuple(value.strip() for value in text.split(","))
    for value in values:
        if value not in ANNOTATIONS:
            raise InvalidRequest(f"annotation {value[:20]!r} is not one of {', '.join(ANNOTATIONS)}")
    return tuple(dict.fromkeys(values))


def _positive(name: str, top: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not _INTEGER.match(text) or not 1 <= int(text) <= top:
            raise InvalidRequest(f"{name}={text[:20]!r} is not a whole number from 1 to {top}")
        return int(text)
    return parse


def _decimal(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text) if _DECIMAL.match(text.strip()) else math.nan
        if not math.isfinite(value):
            raise InvalidRequest(f"{name}={text[:20]!r} is not a decimal number")
        return value
    return parse


def _region(text: str) -> tuple[float, float, float, float]:
    # PS3.18 9.1.2.2: x1,y1,x2,y2 as fractions of the image, top left 0.0, bottom right 1.0.
    parts = text.split(",")
    if len(parts) != 4:
        raise InvalidRequest(f"region={text[:40]!r} needs four numbers x1,y1,x2,y2")
    x1, y1, x2, y2 = (_decimal("region")(part) for part in parts)
    if not all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2)):
        raise InvalidRequest(f"region={text[:40]!r}: each value lies between 0.0 and 1.0")
    if x1 >= x2 or y1 >= y2:
        raise InvalidRequest(f"region={text[:40]!r}: x1 must be below x2 and y1 below y2")
    return x1, y1, x2, y2


def _frame_number(text: str) -> int:
    return _positive("frameNumber", 999_999_999)(text)


# Wire name -> (field of UriRequest, parser); PS3.18 9.1.2, names are case-sensitive.
_PARSERS: Mapping[str, tuple[str, Callable[[str], object]]] = {
    "contentType": ("content_types", _content_types),
    "charset": ("charsets", charset.parse),
    "anonymize": ("anonymize", _anonymize),
    "transferSyntax": ("transfer_syntax", _transfer_syntax),
    "annotation": ("annotation", _annotation),
    "rows": ("rows", _positive("rows", MAX_DIMENSION)),
    "columns": ("columns", _positive("columns", MAX_DIMENSION)),
    "region": ("region", _region),
    "windowCenter": ("window_center", _decimal("windowCenter")),
    "windowWidth": ("window_width", _decimal("windowWidth")),
    "frameNumber": ("frame_number", _frame_number),
    "imageQuality": ("image_quality", _positive("imageQuality", 100)),
    "presentationUID": ("presentation_uid", _uid("presentationUID")),
    "presentationSeriesUID": ("presentation_series_uid", _uid("presentationSeriesUID")),
}
# PS3.18 9.1.2.1 names the annotation parameter imageAnnotation in its table: both are read.
_ALIASES = {"imageAnnotation": "annotation"}
_FIELD_OF = {name: field for name, (field, _parse) in _PARSERS.items()}

# PS3.18 9.1.2.2: parameters that apply only to rendered answers, and only to DICOM ones.
RENDERED_ONLY = ("annotation", "rows", "columns", "region", "windowCenter", "windowWidth", "frameNumber",
                 "imageQuality", "presentationUID", "presentationSeriesUID")
DICOM_ONLY = ("anonymize", "transferSyntax")


def parse(args: MultiDict[str, str]) -> UriRequest:
    """The checked request, or InvalidRequest naming the first parameter at fault."""
    request_type = _one(args, "requestType")
    if request_type is None:
        raise InvalidRequest("requestType is missing; WADO-URI requests carry requestType=WADO")
    if request_type != "WADO":
        raise InvalidRequest(f"requestType={request_type[:20]!r} is not supported; the value is WADO")
    found = {}
    for name in ("studyUID", "seriesUID", "objectUID"):
        value = _one(args, name)
        if value is None:
            raise InvalidRequest(f"{name} is missing; WADO-URI names the object by studyUID, seriesUID and objectUID")
        found[name] = validate_uid(value, name)
    values: dict[str, object] = {}
    for alias, name in _ALIASES.items():
        if alias in args and name in args:
            raise InvalidRequest(f"{alias} and {name} are the same parameter; give one")
    for name, (field, parser) in _PARSERS.items():
        spellings = [name, *(alias for alias, target in _ALIASES.items() if target == name)]
        text = next((value for value in (_one(args, spelling) for spelling in spellings) if value is not None), None)
        if text is not None:
            values[field] = parser(text)
    asked = UriRequest(Target(found["studyUID"], found["seriesUID"], found["objectUID"]), **values)  # type: ignore[arg-type]
    _check_together(asked)
    return asked


def _check_together(asked: UriRequest) -> None:
    """PS3.18 9.1.2.2: the rules that tie parameters to each other."""
    window = asked.given(("windowCenter", "windowWidth"))
    if len(window) == 1:
        other = "windowWidth" if window == ["windowCenter"] else "windowCenter"
        raise InvalidRequest(f"{window[0]} needs {other}: a window is its centre and its width")
    if asked.window_width is not None and asked.window_width < 1:
        # PS3.3 C.11.2.1.2: Window Width shall be 1 or more.
        raise InvalidRequest(f"windowWidth={asked.window_width:g} is below 1")
    presentation = asked.given(("presentationUID", "presentationSeriesUID"))
    if len(presentation) == 1:
        other = "presentationSeriesUID" if presentation == ["presentationUID"] else "presentationUID"
        raise InvalidRequest(f"{presentation[0]} needs {other}: a presentation state is named by both")
    if presentation and window:
        raise InvalidRequest("windowCenter and windowWidth cannot be used with presentationUID: "
                             "the presentation state sets the window")


def _dicom_default(item: ObjectPlan) -> bool:
    """PS3.18 9.1.2.1 (and the 2013 edition's 7.1-7.4): without contentType a single-frame image
    is sent as image/jpeg and a report as text/html; anything else as application/dicom."""
    return item.kind not in (ObjectKind.IMAGE, ObjectKind.STRUCTURED_REPORT) or not item.rendered


def _choose(asked: UriRequest, item: ObjectPlan, accept: Sequence[MediaRange]) -> str:
    """The media type to answer with: the first of contentType the object can be sent as (406 if
    none). Without contentType, the first the Accept header names that it can be sent as (an
    ``<img>`` asks for image/*), else the default for its kind: a server may answer a request
    whose Accept it cannot meet (RFC 9110 12.5.1), and WADO-URI links carry no Accept of their own."""
    listed = asked.content_types or tuple(media for media in accept if media.q > 0)
    for media in listed:
        if media.full == DICOM or (media.full == "*/*" and _dicom_default(item)):
            return DICOM
        outcome = item.resolve(plans.MediaTypes((media.full,)))
        if isinstance(outcome, plans.Resolved):
            return outcome.media_type
    if not asked.content_types:
        return DICOM if _dicom_default(item) else item.rendered[0]
    wanted = ", ".join(str(media) for media in asked.content_types)
    offered = ", ".join((DICOM, *item.rendered))
    raise NotAcceptable(f"contentType {wanted}: object {item.instance.sop_instance_uid} ({item.kind.value}) "
                        f"can be sent as {offered}")


def _check_for(asked: UriRequest, item: ObjectPlan, media_type: str) -> None:
    """The rules that depend on the answer chosen and on the object."""
    if media_type == DICOM:
        misplaced = asked.given(RENDERED_ONLY)
        if misplaced:
            raise InvalidRequest(f"{', '.join(misplaced)} apply only to rendered images, not to application/dicom")
        return
    misplaced = asked.given(DICOM_ONLY)
    if misplaced:
        raise InvalidRequest(f"{', '.join(misplaced)} apply only to contentType=application/dicom, not to {media_type}")
    if asked.frame_number is not None and item.number_of_frames == 0:
        raise InvalidRequest(f"frameNumber: {item.instance.sop_instance_uid} ({item.kind.value}) has no frames")
    if asked.frame_number is not None and asked.frame_number > item.number_of_frames:
        raise InvalidRequest(f"frameNumber={asked.frame_number} is beyond the last frame "
                             f"({item.number_of_frames}) of {item.instance.sop_instance_uid}")


@blueprint.get(PATH)
def retrieve_object() -> Response:
    asked = parse(request.args)
    current = archive()
    plan = plans.plan(session(), asked.target)
    [item] = plan.objects
    media_type = _choose(asked, item, negotiation.parse_accept(request.headers.get("Accept")))
    _check_for(asked, item, media_type)
    if media_type != DICOM and (item.kind in (ObjectKind.IMAGE, ObjectKind.MULTI_FRAME)
                                or media_type in render.MEDIA_TYPES):  # a video's frame as an image
        return _image(asked, media_type, plan)
    if media_type != DICOM:
        image_only = asked.given(RENDERED_ONLY)
        if image_only:
            raise InvalidRequest(f"{', '.join(image_only)} apply only to rendered images, not to {media_type}")
        return document_answer.answer(item, media_type, asked.charsets, "WADO-URI")
    files = retrieve.opened_files(current.blobs, plan.instances)
    current.auditor.retrieved(requester(), plan.instances, "WADO-URI")
    try:
        response = _dicom(current, files, item, asked)
    except BaseException:
        files.close()
        raise
    response.call_on_close(files.close)
    return response


def _image(asked: UriRequest, media_type: str, plan: plans.RetrievePlan) -> Response:
    """A rendered image (PS3.18 9.1.2.2): every image parameter handed to the rendering service."""
    renderer = archive().renderer
    frames = None if asked.frame_number is None else (asked.frame_number,)
    window = None
    if asked.window_center is not None and asked.window_width is not None:
        window = render.Window(asked.window_center, asked.window_width)  # PS3.18 9.1.2.2.6: LINEAR
    presentation = None
    if asked.presentation_uid is not None and asked.presentation_series_uid is not None:
        presentation = render.PresentationRef(asked.presentation_series_uid, asked.presentation_uid)
    wanted = render.RenderRequest(
        media_type=media_type, frames=frames, window=window, rows=asked.rows, columns=asked.columns,
        region=None if asked.region is None else render.Region(*asked.region), quality=asked.image_quality,
        annotation=asked.annotation, charset=asked.charsets, presentation=presentation,
    )
    prepared = renderer.prepare(session(), asked.target, frames=frames, presentation=presentation, plan=plan)
    rendered = renderer.render(prepared, wanted)
    return image_answer(rendered)


def _dicom(current: Archive, files: BlobReader, item: ObjectPlan, asked: UriRequest) -> Response:
    transfer_syntax = asked.transfer_syntax
    if transfer_syntax == "*":
        wanted: plans.Request = plans.AS_STORED
    elif transfer_syntax is not None:
        wanted = plans.Syntaxes((transfer_syntax,))
    elif EXPLICIT_VR_LITTLE_ENDIAN in item.syntaxes:
        # PS3.18 9.1.2.2: without transferSyntax the answer is Explicit VR Little Endian.
        wanted = plans.Syntaxes((EXPLICIT_VR_LITTLE_ENDIAN,))
    else:
        wanted = plans.AS_STORED  # a form no codec here decodes (video) is sent as it is
    outcome = item.resolve(wanted)
    if isinstance(outcome, plans.Unavailable):
        raise NotAcceptable(f"transferSyntax: {outcome.reason}")
    if asked.anonymize:
        # PS3.18 9.1.2.2.2 anonymize=yes: the PS3.15 Basic Profile, applied to this answer only.
        body = Anonymizer().instance_body(current.blobs, item.instance, outcome.transfer_syntax if outcome.transcoded
                                          else None, current.limits, current.settings.max_transcode_bytes, files)
        response = Response(body.chunks, status=200, mimetype=DICOM)
        if body.length is not None:
            response.content_length = body.length
    elif not outcome.transcoded:
        # The WSGI file wrapper lets gunicorn send the whole file with sendfile.
        response = Response(wrap_file(request.environ, retrieve.open_file(files, item.instance)), status=200,
                            direct_passthrough=True, mimetype=DICOM)
        response.content_length = item.size
    else:
        body = plans.dicom_body(files, outcome, current.settings.max_transcode_bytes)
        response = Response(body.chunks, status=200, mimetype=DICOM)
        if body.length is not None:
            response.content_length = body.length
    name = "anonymized" if asked.anonymize else item.instance.sop_instance_uid
    response.headers["Content-Disposition"] = f'inline; filename="{name}.dcm"'
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    announce(app, "WADO-URI", f"{PATH}?requestType=WADO&studyUID={{study}}&seriesUID={{series}}&objectUID={{object}}")
