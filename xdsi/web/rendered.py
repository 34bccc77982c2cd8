"""WADO-RS rendered and thumbnail resources (PS3.18 10.4.1.1.3, 8.3.5): study, series, instance and
frames rendered as image/jpeg, image/png or image/gif; Structured Reports as text/html or text/plain,
Encapsulated PDF and CDA documents as application/pdf and text/xml, and video as its stream
(video/mpeg, video/mp4, video/h265) with byte ranges or its frames as images; a multi-frame image
also as video/mp4 or video/mpeg (PS3.18 Table 8.7.4-1)."""

from __future__ import annotations

import re
from dataclasses import replace

from flask import Blueprint, Flask, Response, request

from xdsi.errors import InvalidRequest
from xdsi.services import charset, plans, representative, retrieve
from xdsi.services.render import (
    ANNOTATIONS,
    ICC_CHOICES,
    IccChoice,
    Prepared,
    RenderRequest,
    SourceRect,
    Viewport,
    VoiFunction,
    Window,
)
from xdsi.services.retrieve import Target
from xdsi.web import document_answer, negotiation
from xdsi.web.context import accepted, announce, archive, requester, session
from xdsi.web.rendered_image import image_answer
from xdsi.web.urls import DICOMWEB

blueprint = Blueprint("rendered", __name__, url_prefix=DICOMWEB)

MAX_FRAMES_PER_REQUEST = 10_000
# PS3.18 8.3.5.1.4: the window function names of the query parameter.
_FUNCTIONS: dict[str, VoiFunction] = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}
# PS3.18 8.3.5.1 (rendered) and 8.3.5.1.3 (thumbnail: viewport without a source rectangle).
_RENDERED_PARAMETERS = frozenset({"accept", "annotation", "charset", "quality", "viewport", "window", "iccprofile"})
_THUMBNAIL_PARAMETERS = frozenset({"accept", "charset", "viewport"})
# PS3.18 8.3.5.1: the parameters that transform images and video. Reports and documents are sent as
# stored or as text, and video as its stored stream: none of them applies there.
_IMAGE_PARAMETERS = ("annotation", "quality", "viewport", "window", "iccprofile")
_INTEGER = re.compile(r"[+-]?[0-9]{1,9}\Z", re.ASCII)
_NUMBER = re.compile(r"[+-]?(?:[0-9]{1,15}(?:\.[0-9]{0,15})?|\.[0-9]{1,15})(?:[eE][+-]?[0-9]{1,3})?\Z", re.ASCII)

_STUDY = "/studies/<study>"
_SERIES = _STUDY + "/series/<series>"
_INSTANCE = _SERIES + "/instances/<instance>"


@blueprint.get(_STUDY + "/rendered")
@blueprint.get(_SERIES + "/rendered")
@blueprint.get(_INSTANCE + "/rendered")
def retrieve_rendered(study: str, series: str | None = None, instance: str | None = None) -> Response:
    return _answer(_target(study, series, instance), None, "rendered")


@blueprint.get(_INSTANCE + "/frames/<frame_list>/rendered")
def retrieve_frames_rendered(study: str, series: str, instance: str, frame_list: str) -> Response:
    target = _target(study, series, instance)
    return _answer(target, tuple(retrieve.frame_numbers(frame_list, MAX_FRAMES_PER_REQUEST)), "rendered")


@blueprint.get(_STUDY + "/thumbnail")
@blueprint.get(_SERIES + "/thumbnail")
@blueprint.get(_INSTANCE + "/thumbnail")
def retrieve_thumbnail(study: str, series: str | None = None, instance: str | None = None) -> Response:
    return _answer(_target(study, series, instance), None, "thumbnail")


@blueprint.get(_INSTANCE + "/frames/<frame_list>/thumbnail")
def retrieve_frames_thumbnail(study: str, series: str, instance: str, frame_list: str) -> Response:
    target = _target(study, series, instance)
    numbers = tuple(retrieve.frame_numbers(frame_list, MAX_FRAMES_PER_REQUEST))
    if len(numbers) > 1:
        raise InvalidRequest("a thumbnail shows one frame; name a single frame number")
    return _answer(target, numbers, "thumbnail")


def _target(study: str, series: str | None, instance: str | None) -> Target:
    return Target.checked(study, series, instance, where=" in the path")


def _answer(target: Target, frames: tuple[int, ...] | None, purpose: str) -> Response:
    thumbnail = purpose == "thumbnail"
    wanted = _parameters(thumbnail)  # a malformed parameter is answered before the index is read
    accept = accepted()
    plan = plans.plan(session(), target)
    if frames is None and not thumbnail:
        acceptable = plans.MediaTypes(tuple(media.full for media in accept if media.q > 0))
        document = representative.document_for(plan, acceptable)
        if document is not None:
            return _document(document, accept)
    renderer = archive().renderer
    prepared: Prepared = renderer.prepare(session(), target, frames=frames,
                                          purpose="thumbnail" if thumbnail else "rendered", plan=plan)
    offers = [negotiation.Offer(media_type, multipart=False) for media_type in prepared.media_types]
    choice = negotiation.negotiate(accept, offers)
    rendered = renderer.render(prepared, replace(wanted, media_type=choice.offer.media_type))
    response = image_answer(rendered, vary="Accept")
    if response.status_code != 304 and request.method != "HEAD":
        # RAD-107 includes the rendered resources; a 304 or a HEAD sends nothing of the instance: not audited.
        archive().auditor.retrieved(requester(), [prepared.instance], "WADO-RS")
    return response


def _document(item: plans.ObjectPlan, accept: list[negotiation.MediaRange]) -> Response:
    """A report, document or video in the rendered media type negotiated from its category's
    (PS3.18 8.7.8.1; ``*/*`` selects the category's default, the first offered)."""
    offers = [negotiation.Offer(media_type, multipart=False) for media_type in item.rendered]
    choice = negotiation.negotiate(accept, offers)
    media_type = choice.offer.media_type
    given = [name for name in _IMAGE_PARAMETERS if name in request.args]
    if given:
        raise InvalidRequest(f"{', '.join(given)} apply only to rendered images, not to {media_type} "
                             f"({item.kind.value})")
    response = document_answer.answer(item, media_type, _charsets(choice), "WADO-RS")
    response.vary.add("Accept")
    response.vary.add("Accept-Charset")
    return response


def _charsets(choice: negotiation.Choice) -> tuple[str, ...]:
    """PS3.18 8.8.5: the charset parameter of the selected media type, then the charset query
    parameter, then Accept-Charset; each list best first. None named: UTF-8."""
    named = choice.media_range.params.get("charset")
    return (*charset.parse(named), *charset.parse(request.args.get("charset")),
            *charset.parse(request.headers.get("Accept-Charset")))


def _parameters(thumbnail: bool) -> RenderRequest:
    """The query parameters as a request (its media type still to negotiate); 400 naming the first
    one that is wrong."""
    allowed = _THUMBNAIL_PARAMETERS if thumbnail else _RENDERED_PARAMETERS
    for name in request.args:
        if name not in allowed:
            what = "thumbnail" if thumbnail else "rendered"
            raise InvalidRequest(f"query parameter {name[:40]!r} is not one a {what} resource takes "
                                 f"({', '.join(sorted(allowed))})")
        if len(request.args.getlist(name)) > 1:
            raise InvalidRequest(f"query parameter {name!r} is given more than once")
    args = request.args
    quality = annotation = None
    if "quality" in args:
        text = args["quality"].strip()
        if not _INTEGER.match(text) or not 1 <= int(text) <= 100:
            raise InvalidRequest(f"quality {text[:20]!r} is not an integer from 1 to 100")
        quality = int(text)
    if "annotation" in args:
        annotation = tuple(part.strip().lower() for part in args["annotation"].split(","))
        for name in annotation:
            if name not in ANNOTATIONS:
                raise InvalidRequest(f"annotation {name[:20]!r} is not one of {', '.join(ANNOTATIONS)}")
    return RenderRequest(
        window=_window(args["window"]) if "window" in args else None,
        viewport=_viewport(args["viewport"], thumbnail) if "viewport" in args else None,
        quality=quality, annotation=annotation or (), charset=charset.parse(args.get("charset")),
        icc_profile=_icc_profile(args["iccprofile"]) if "iccprofile" in args else "default",
    )


def _icc_profile(text: str) -> IccChoice:
    """PS3.18 8.3.5.1.5: ``iccprofile=no|yes|srgb|adobergb|rommrgb``."""
    value = text.strip().lower()
    for choice in ICC_CHOICES:
        if choice == value:
            return choice
    raise InvalidRequest(f"iccprofile {value[:20]!r} is not one of {', '.join(ICC_CHOICES)}")


def _window(text: str) -> Window:
    """PS3.18 8.3.5.1.4: ``window=center,width,function``, all three."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 3:
        raise InvalidRequest("window must be center,width,function (function: linear, linear-exact or sigmoid)")
    center, width, function = parts
    for name, value in (("center", center), ("width", width)):
        if not _NUMBER.match(value):
            raise InvalidRequest(f"window {name} {value[:20]!r} is not a number")
    if function.lower() not in _FUNCTIONS:
        raise InvalidRequest(f"window function {function[:20]!r} is not linear, linear-exact or sigmoid")
    return Window(float(center), float(width), _FUNCTIONS[function.lower()])


def _viewport(text: str, thumbnail: bool) -> Viewport:
    """PS3.18 8.3.5.1.3: ``viewport=vw,vh[,sx,sy,sw,sh]``; vw or vh may be left empty for the other
    to decide, sx and sy default to 0, sw and sh to the image's far edges (negative: flipped)."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (2, 6) or (thumbnail and len(parts) != 2):
        shape = "vw,vh" if thumbnail else "vw,vh or vw,vh,sx,sy,sw,sh"
        raise InvalidRequest(f"viewport must be {shape}")
    values = [_optional_integer(part, name) for part, name in zip(parts, ("vw", "vh", "sx", "sy", "sw", "sh"),
                                                                   strict=False)]
    width, height = values[0], values[1]
    if width is None and height is None:
        raise InvalidRequest("viewport needs vw or vh")
    for name, value in (("vw", width), ("vh", height)):
        if value is not None and value < 1:
            raise InvalidRequest(f"viewport {name} must be a positive number of pixels")
    source = None
    if len(values) == 6:
        x, y, sw, sh = values[2:]
        if (x is not None and x < 0) or (y is not None and y < 0):
            raise InvalidRequest("viewport sx and sy must not be negative")
        if sw == 0 or sh == 0:
            raise InvalidRequest("viewport sw and sh must not be 0")
        source = SourceRect(x or 0, y or 0, sw, sh)
    return Viewport(width, height, source)


def _optional_integer(text: str, name: str) -> int | None:
    if text == "":
        return None
    if not _INTEGER.match(text):
        raise InvalidRequest(f"viewport {name} {text[:20]!r} is not an integer")
    return int(text)


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    announce(app, "WADO-RS (rendered, thumbnail)", f"{DICOMWEB}/studies/{{study}}/rendered")
