"""Rendered images of stored instances, for every protocol that asks for one (WADO-RS
``/rendered`` and ``/thumbnail``, PS3.18 8.3.5 and 10.4.1.1.3; WADO-URI, PS3.18 9.1.2).

Two steps, so that a protocol can negotiate between them: ``Renderer.prepare`` finds the
instance a resource stands for (a study or series: a representative image) and says which
media types it can be rendered in, in the order of the standard's defaults; ``Renderer.render``
decodes the frames asked for, alone, and renders them with ``dicom.render``. Answers are cached
per worker (``render_cache``), keyed by the stored object's identity and content and by every
parameter of the request.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy.orm import Session

from xdsi.config import Settings
from xdsi.dicom import annotation, imaging
from xdsi.dicom.imaging import GRAYSCALE, DecodedFrame
from xdsi.dicom.luts import VOI_FUNCTIONS, Grayscale, VoiFunction, Window, frame_attributes, grayscale, object_window
from xdsi.dicom.parsing import Limits
from xdsi.dicom.presentation import PresentationState
from xdsi.dicom.render import (
    GIF,
    ICC_CHOICES,
    JPEG,
    MEDIA_TYPES,
    PNG,
    FrameContext,
    IccChoice,
    ImageStep,
    Region,
    RenderParams,
    Size,
    SourceRect,
    render,
)
from xdsi.dicom.transcode import PixelDescription
from xdsi.errors import InvalidRequest, MalformedDicom, NotAcceptable
from xdsi.repository.blobs import BlobStore
from xdsi.repository.index import StoredInstance
from xdsi.services import anonymize, charset, plans, retrieve, video_render
from xdsi.services import presentation as presentation_states
from xdsi.services.plans import ObjectKind, ObjectPlan
from xdsi.services.render_cache import RenderCache
from xdsi.services.retrieve import Target

__all__ = [
    "ANNOTATIONS",
    "GIF",
    "ICC_CHOICES",
    "JPEG",
    "MEDIA_TYPES",
    "PNG",
    "VOI_FUNCTIONS",
    "IccChoice",
    "Prepared",
    "PresentationRef",
    "Region",
    "RenderRequest",
    "Rendered",
    "Renderer",
    "SourceRect",
    "Viewport",
    "VoiFunction",
    "Window",
]

# What a parsed header holds in memory, from its size in the file: a 6 KiB CT header took 126 KB
# once every element was converted (tracemalloc, pydicom 3.0).
HEADER_MEMORY_FACTOR = 20
HEADER_MEMORY_BASE = 16 * 1024

# PS3.18 8.3.5.1.1 / 9.1.2.2.1: the annotation values.
ANNOTATIONS = annotation.KINDS
Purpose = Literal["rendered", "thumbnail"]


@dataclass(frozen=True)
class Viewport:
    """PS3.18 8.3.5.1.3: the output box (``vw``, ``vh``; either may be left to the other) and the
    source rectangle of the image to show in it."""

    width: int | None
    height: int | None
    source: SourceRect | None = None


@dataclass(frozen=True)
class PresentationRef:
    """A presentation state to apply (WADO-URI presentationSeriesUID/presentationUID)."""

    series_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class RenderRequest:
    """Everything a rendering request may ask, whatever protocol carried it.

    ``frames``: 1-based frame numbers; None lets the resource decide (an animated GIF of every
    frame of a multi-frame image when GIF is asked, else its first frame; a thumbnail shows the
    middle frame). ``rows``/``columns`` (WADO-URI) and ``viewport`` (WADO-RS) bound the output
    size, keeping the aspect ratio.
    """

    media_type: str = JPEG
    frames: tuple[int, ...] | None = None
    window: Window | None = None
    rows: int | None = None
    columns: int | None = None
    viewport: Viewport | None = None
    region: Region | None = None
    quality: int | None = None
    annotation: tuple[str, ...] = ()
    charset: tuple[str, ...] = ()
    presentation: PresentationRef | None = None
    icc_profile: IccChoice = "default"  # PS3.18 8.3.5.1.5 iccprofile; see dicom.render
    anonymize: bool = False  # WADO-WS Anonymize: see ``_deidentified``


@dataclass(frozen=True)
class Prepared:
    """The instance a rendering resource stands for, and the media types it can be rendered in,
    the resource's default first (PS3.18 8.7.4: JPEG for one frame, GIF for several)."""

    instance: StoredInstance
    frames: tuple[int, ...] | None
    purpose: Purpose
    media_types: tuple[str, ...]
    presentation: presentation_states.Loaded | None = None


@dataclass(frozen=True)
class Rendered:
    data: bytes
    media_type: str
    etag: str


@dataclass(frozen=True)
class _Header:
    """A parsed header and what every rendering of it reads first: its pixel description (None, and
    why, when it has none usable) and the object's own grayscale pipeline of its first frame."""

    ds: Dataset
    pixel: PixelDescription | None
    fault: str | None
    gray: Grayscale | None

    @classmethod
    def of(cls, ds: Dataset) -> _Header:
        try:
            pixel = PixelDescription.from_dataset(ds)
        except MalformedDicom as exc:
            return cls(ds, None, str(exc), None)
        gray = None
        # A fault in the window or LUT attributes is left for a rendering to meet again and answer.
        with contextlib.suppress(MalformedDicom):
            if pixel.photometric_interpretation in GRAYSCALE:
                gray = grayscale(ds, 0, pixel.photometric_interpretation)
        return cls(ds, pixel, None, gray)


class Renderer:
    """Built once per worker (``Archive.open``) over the blob store, with its cache."""

    def __init__(self, settings: Settings, blobs: BlobStore, limits: Limits) -> None:
        self.settings = settings
        self.blobs = blobs
        self.limits = limits
        self.cache: RenderCache[bytes] = RenderCache(settings.render_cache_bytes)
        self.headers: RenderCache[_Header] = RenderCache(settings.render_header_cache_bytes)

    def prepare(self, session: Session, target: Target, *, frames: tuple[int, ...] | None = None,
                purpose: Purpose = "rendered", presentation: PresentationRef | None = None,
                plan: plans.RetrievePlan | None = None) -> Prepared:
        """The instance to render for ``target``, from its retrieve plan (``plan``, when the caller
        has made it already): itself, or for a study or series the middle image of its first
        series that has images (PS3.18 8.3.5.1: a representative image); and the presentation
        state named, read from the image's study (404 if absent, 400 if it is no GSPS or does not
        reference the image)."""
        if plan is None:
            plan = plans.plan(session, target)
        elif plan.target != target:
            raise ValueError(f"the plan given is for {plan.target.describe()}, not {target.describe()}")
        if target.sop_instance_uid is None:
            images = _first_series_images(plan.objects)
            if not images:
                raise NotAcceptable(f"{target.describe()} holds no image that can be rendered")
            item = images[(len(images) - 1) // 2]
        else:
            [item] = plan.objects
        offered = _image_types(item)
        if not offered:
            forms = ", ".join(item.rendered) or "nothing"
            what = "has no pixel data to render as an image" if item.kind is ObjectKind.OTHER else (
                f"({item.kind.value}) cannot be rendered as an image; it offers {forms}")
            if item.kind is ObjectKind.VIDEO and not video_render.available():
                what += f" ({video_render.MISSING})"
            raise NotAcceptable(f"instance {item.instance.sop_instance_uid} {what}")
        if frames is not None and len(frames) > 1:
            media_types: tuple[str, ...] = (GIF,)  # the one type here that holds several frames
        elif frames is None and purpose == "rendered":
            media_types = offered  # the plan's order: PS3.18 Table 8.7.4-1, GIF first for multi-frame
        else:
            media_types = tuple(t for t in MEDIA_TYPES if t in offered)  # one frame: JPEG first
        loaded = None
        if presentation is not None:
            loaded = presentation_states.load(
                session, self.blobs, self.limits, study_uid=item.instance.study_uid,
                series_uid=presentation.series_uid, sop_uid=presentation.sop_instance_uid,
                image_uid=item.instance.sop_instance_uid, frame=frames[0] if frames else 1)
        return Prepared(item.instance, frames, purpose, media_types, loaded)

    def render(self, prepared: Prepared, request: RenderRequest) -> Rendered:
        """Render ``prepared`` as ``request`` asks, from the cache when it holds the answer."""
        if request.media_type not in prepared.media_types:
            raise NotAcceptable(f"{request.media_type} cannot be produced here; offered: "
                                f"{', '.join(prepared.media_types)}")
        if (request.presentation is None) != (prepared.presentation is None):
            raise ValueError("a presentation state is named to Renderer.prepare, and with it to render")
        instance = prepared.instance
        state_key = (prepared.presentation.stored.blob_key, prepared.presentation.stored.sha256) \
            if prepared.presentation else None
        key = (instance.blob_key, instance.sha256, prepared.frames, prepared.purpose, request, state_key)
        etag = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
        cached = self.cache.get(key)
        if cached is not None:
            return Rendered(cached, request.media_type, etag)
        data = self._render(prepared, request)
        self.cache.put(key, data, len(data))
        return Rendered(data, request.media_type, etag)

    def _render(self, prepared: Prepared, request: RenderRequest) -> bytes:
        instance = prepared.instance
        header = self._header(instance)
        ds = header.ds
        if request.anonymize:
            ds = _deidentified(ds, instance, request)
        if header.pixel is None:
            raise NotAcceptable(f"instance {instance.sop_instance_uid} cannot be rendered: {header.fault}")
        pixel = header.pixel
        numbers = self._frame_numbers(prepared, request, ds, pixel.number_of_frames)
        as_video = request.media_type in video_render.MEDIA_TYPES
        # The frame pipeline is the images' one; which format its frames end in is the encoder's.
        params = self._params(prepared, replace(request, media_type=PNG) if as_video else request, ds,
                              header.gray if numbers == (1,) else None)
        try:
            frames = self._decoded(instance, ds, pixel, numbers)
            if as_video:
                return video_render.encoded(ds, frames, params, request.media_type)
            return render(ds, frames, params)
        except MalformedDicom as exc:
            # Stored pixels this server cannot decode: the object exists, its rendering cannot be made.
            raise NotAcceptable(f"instance {instance.sop_instance_uid} cannot be rendered: {exc}") from exc

    def _header(self, instance: StoredInstance) -> _Header:
        """The stored attributes up to the pixel data (palettes and LUTs come with them), with what
        every rendering reads of them first.

        Parsing the header is the largest single step of rendering a small image, so parsed headers
        are kept (read only from here on: nothing in the pipeline writes to them). Every element is
        converted before the header is shared, so threads reading it never race on pydicom's lazy
        conversion of raw elements.
        """
        key = (instance.blob_key, instance.sha256)
        cached = self.headers.get(key)
        if cached is not None:
            return cached
        with self.blobs.open(instance.blob_key) as handle:
            try:
                ds = dcmread(handle, stop_before_pixels=True)
                # Private elements draw nothing and are most of a vendor's header: they are dropped
                # unread, before every other element is converted (2.7 -> 1.2 ms for a CT of 170).
                for tag in [tag for tag in ds.keys() if tag.is_private]:  # noqa: SIM118 - keys() leaves them raw
                    del ds[tag]
                for _ in ds.iterall():
                    pass
            except Exception as exc:
                raise NotAcceptable(f"instance {instance.sop_instance_uid} cannot be read for rendering") from exc
        header = _Header.of(ds)
        header_bytes = instance.pixel_data_offset if instance.pixel_data_offset is not None else instance.size
        self.headers.put(key, header, HEADER_MEMORY_FACTOR * header_bytes + HEADER_MEMORY_BASE)
        return header

    def _frame_numbers(self, prepared: Prepared, request: RenderRequest, ds: Dataset, count: int) -> tuple[int, ...]:
        frames = request.frames or prepared.frames
        if frames is not None:
            return frames
        if prepared.purpose == "rendered" and count > 1 and request.media_type in (GIF, *video_render.MEDIA_TYPES):
            return tuple(range(1, count + 1))
        if plans.object_kind(prepared.instance) is ObjectKind.VIDEO:
            return (video_render.still_frame(ds, count),)
        if prepared.purpose == "thumbnail":
            return ((count + 1) // 2,)  # the middle frame represents a cine best
        return (1,)

    def _params(self, prepared: Prepared, request: RenderRequest, ds: Dataset,
                own_gray: Grayscale | None) -> RenderParams:
        """``own_gray``: the object's own grayscale pipeline of the frame rendered, when it is known."""
        viewport = request.viewport
        if viewport is not None:
            size: Size | None = Size(viewport.width, viewport.height)
        elif request.rows is not None or request.columns is not None:
            size = Size(request.columns, request.rows)
        elif prepared.purpose == "thumbnail":
            size = Size(self.settings.thumbnail_size, self.settings.thumbnail_size)
        else:
            size = None
        steps = _Steps()
        if prepared.presentation is not None:
            size = steps.presentation_state(prepared.presentation.state, request, ds, size)
        if request.annotation:
            steps.burned_in(request)
        return RenderParams(
            media_type=request.media_type, window=request.window,
            region=request.region if prepared.presentation is None else None,  # the state crops it
            source=viewport.source if viewport is not None else None, size=size,
            quality=request.quality if request.quality is not None else RenderParams.quality,
            icc_profile=request.icc_profile, max_output_pixels=self.settings.render_max_output_pixels,
            grayscale=steps.grayscale or (own_gray if request.window is None else None),
            presentation=tuple(steps.presentation), annotation=tuple(steps.annotation),
        )

    def _decoded(self, instance: StoredInstance, ds: Dataset, pixel: PixelDescription,
                 numbers: tuple[int, ...]) -> Iterator[tuple[int, DecodedFrame]]:
        """Each frame read alone through the frame table and decoded as it is reached."""
        limit = self.settings.max_transcode_bytes
        if plans.object_kind(instance) is ObjectKind.VIDEO:
            yield from video_render.decoded(self.blobs, instance, self.limits, numbers, limit)
            return
        stored = retrieve.frames(self.blobs, instance, numbers, instance.transfer_syntax_uid, self.limits, limit)
        for number, frame in zip(numbers, stored, strict=True):
            yield number, imaging.decode(frame.data, pixel, frame.transfer_syntax, ds, max_pixel_bytes=limit)


@dataclass
class _Steps:
    """The steps a request adds to the pixel pipeline (``dicom.render``): a presentation state's
    grayscale transformation, spatial step and graphics (PS3.4 N.2), and burned-in text last."""

    grayscale: Grayscale | None = None
    presentation: list[ImageStep] = field(default_factory=list)
    annotation: list[ImageStep] = field(default_factory=list)

    def presentation_state(self, state: PresentationState, request: RenderRequest, ds: Dataset,
                           size: Size | None) -> Size:
        """Add ``state``'s steps; the output size its displayed area and size mode give."""
        if request.viewport is not None and request.viewport.source is not None:
            raise InvalidRequest("a viewport source rectangle cannot be combined with a presentation state: its "
                                 "displayed area chooses the pixels shown")
        if request.window is not None:
            raise InvalidRequest("a window cannot be combined with a presentation state: the state sets the window")
        rows, columns = int(ds.Rows), int(ds.Columns)
        if request.anonymize:
            state = state.deidentified()
        if request.region is not None:  # PS3.18 9.5.1.2.7: the part of the image to show, in the area's place
            state = state.showing(request.region.pixels(columns, rows))
        self.grayscale = state.grayscale
        self.presentation.append(
            lambda image, _context: Image.fromarray(state.spatial(state.shuttered(np.asarray(image)))))
        self.annotation.append(lambda image, context: state.draw(image, rows, columns, context.dataset, context.number))
        width, height = state.output_size(rows, columns, (size.width, size.height) if size else None)
        return Size(width, height)

    def burned_in(self, request: RenderRequest) -> None:
        """PS3.18 8.3.5.1.1 / 9.1.2.2.1: the patient and technique text, in the charset asked for."""
        kinds = annotation.parse_kinds(",".join(request.annotation))
        limit = charset.first_known(request.charset)

        def step(image: Image.Image, context: FrameContext) -> Image.Image:
            window = request.window or (self.grayscale.window if self.grayscale else None) or \
                object_window(frame_attributes(context.dataset, context.number - 1))
            shown = (window.center, window.width) if window is not None else None
            text = annotation.annotation_for(context.dataset, kinds, window=shown, frame=context.number,
                                             charset=limit)
            return annotation.burn(image, text)

        self.annotation.append(step)


def _deidentified(ds: Dataset, instance: StoredInstance, request: RenderRequest) -> Dataset:
    """A copy of ``ds`` (the header the rendering reads, annotation included; the cached one stays
    as stored) de-identified by the Basic Profile, so burned-in technique text shows no date or
    other Table E.1-1 attribute. Patient annotation contradicts the request (InvalidRequest);
    pixels with burned-in text cannot be de-identified by this profile (AnonymizationUnavailable)."""
    if request.annotation and annotation.PATIENT in annotation.parse_kinds(",".join(request.annotation)):
        raise InvalidRequest("annotation 'patient' cannot be burnt into a de-identified rendering: "
                             "Anonymize removes the patient's name, ID and birth date")
    anonymize.check_pixels(ds, instance)
    return anonymize.Anonymizer().dataset(copy.deepcopy(ds))


def _image_types(item: ObjectPlan) -> tuple[str, ...]:
    """The rendered forms the plan allows that are made here, in the plan's order: images, a
    video's frames as images, a multi-frame image's frames as video."""
    if item.kind not in (ObjectKind.IMAGE, ObjectKind.MULTI_FRAME, ObjectKind.VIDEO):
        return ()
    made = MEDIA_TYPES if item.kind is ObjectKind.VIDEO else (*MEDIA_TYPES, *video_render.MEDIA_TYPES)
    return tuple(media_type for media_type in item.rendered if media_type in made)


def _first_series_images(objects: tuple[ObjectPlan, ...]) -> list[ObjectPlan]:
    """The renderable images of the first series that has any, in instance number order."""
    for series in dict.fromkeys(item.instance.series_uid for item in objects):
        images = [item for item in objects if item.instance.series_uid == series and _image_types(item)]
        if images:
            return images
    return []
