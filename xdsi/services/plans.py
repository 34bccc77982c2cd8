"""Retrieve plans: what the archive can send of the objects a request names, decided once for every
protocol (WADO-RS, WADO-URI, WADO-WS), each of which only maps its own request form onto it.

A plan is built from the index alone (no file is opened) and is immutable::

    plan = plans.plan(session, target)        # NotFound when the target holds no instance
    plan.objects                              # one ObjectPlan per instance, in series/instance order
    plan.syntaxes                             # transfer syntaxes every object can be sent in, EVRLE first
    plan.as_stored                            # the one stored syntax, or EVRLE when they differ

    item = plan.objects[0]
    item.kind                                 # ObjectKind: image, multi-frame, video, SR, PDF, CDA, other
    item.stored_syntax, item.size             # as stored, and its exact length in bytes
    item.syntaxes                             # what it can be sent in (stored and transcoded), EVRLE first
    item.frames                               # FrameForm per media type its frames can be sent as
    item.rendered                             # rendered media types its kind allows, default first

A protocol states what its client asked for as one of three neutral choices, and resolves it per
object into a ``Resolved`` (what to send) or an ``Unavailable`` (why this object cannot be sent
that way; the others are unaffected, as RAD-69 answers each document on its own)::

    AS_STORED                                 # each object exactly as stored
    Syntaxes(("1.2.840.10008.1.2.4.50", ...)) # the first of these each object can be sent in
    MediaTypes(("image/png", "image/*"))      # the first rendered form each object allows

    outcomes = plan.resolve(Syntaxes(uids))   # tuple[Resolved | Unavailable, ...], one per object
    resolved = plan.require(choice)           # tuple[Resolved, ...], NotAcceptable on the first Unavailable
    body = plans.dicom_body(files, resolved[0], max_transcode_bytes)  # a PS3.10 file, streamed

``Resolved.transcoded`` is False when the stored file is sent unchanged (then ``length`` is known
and a single-part answer may use sendfile). Rendered bodies (``Resolved.media_type`` other than
application/dicom) are produced by the rendering and document services; a plan only says they are
allowed for the object's kind and pixel encoding.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy.orm import Session

from xdsi.dicom import transcode, uids, video
from xdsi.errors import NotAcceptable
from xdsi.repository.blobs import BlobReader
from xdsi.services import frame_forms, retrieve
from xdsi.services.frame_forms import FrameForm
from xdsi.services.retrieve import Body, StoredInstance, Target

DICOM = "application/dicom"

# PS3.4 Annex A / PS3.6 Annex A: the SOP classes whose rendering is a document rather than pixels.
_SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."  # every Structured Report Storage class (Basic Text .11 ...)
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
ENCAPSULATED_CDA = "1.2.840.10008.5.1.4.1.1.104.2"


class ObjectKind(enum.Enum):
    """The categories PS3.18 Table 8.7.4-1 gives rendered media types for."""

    IMAGE = "single-frame image"
    MULTI_FRAME = "multi-frame image"
    VIDEO = "video"
    STRUCTURED_REPORT = "structured report"
    PDF = "encapsulated PDF"
    CDA = "encapsulated CDA"
    OTHER = "non-image object"


# PS3.18 Table 8.7.4-1 (rendered media types by category), default first. image/jp2 (optional)
# and text/rtf (optional) are not produced; a multi-frame image renders one frame as a still
# image too (WADO-URI frameNumber, WADO-RS rendered frames), or all of them as an animated GIF.
_RENDERED: dict[ObjectKind, tuple[str, ...]] = {
    ObjectKind.IMAGE: ("image/jpeg", "image/png", "image/gif"),
    ObjectKind.MULTI_FRAME: ("image/gif", "image/jpeg", "image/png"),
    ObjectKind.STRUCTURED_REPORT: ("text/html", "text/plain"),
    ObjectKind.PDF: ("application/pdf",),
    ObjectKind.CDA: ("text/xml",),
    ObjectKind.OTHER: (),
}


@lru_cache(maxsize=32)
def _video_media_type(syntax: str) -> str | None:
    """PS3.18 Table 8.7.3-5: the media type a video transfer syntax's stream is sent as."""
    for media_type, syntaxes in uids.COMPRESSED_MEDIA_TYPES.items():
        if media_type.startswith("video/") and syntax in syntaxes:
            return media_type
    return None


def object_kind(instance: StoredInstance) -> ObjectKind:
    """The rendering category of a stored instance, from its SOP class, pixel data and syntax."""
    sop_class = instance.sop_class_uid
    if sop_class.startswith(_SR_PREFIX):
        return ObjectKind.STRUCTURED_REPORT
    if sop_class == ENCAPSULATED_PDF:
        return ObjectKind.PDF
    if sop_class == ENCAPSULATED_CDA:
        return ObjectKind.CDA
    if _video_media_type(instance.transfer_syntax_uid) is not None:
        return ObjectKind.VIDEO
    # A Deflated file's pixel data lies inside its compressed stream, where the index keeps no
    # offset: it is taken for an image, and one without pixels is refused when it is rendered.
    if (instance.pixel_data_offset is None and instance.frame_table is None and instance.number_of_frames is None
            and not uids.is_deflated(instance.transfer_syntax_uid)):
        return ObjectKind.OTHER
    return ObjectKind.MULTI_FRAME if (instance.number_of_frames or 1) > 1 else ObjectKind.IMAGE


def _rendered(kind: ObjectKind, stored: str) -> tuple[str, ...]:
    if kind is ObjectKind.VIDEO:
        # Video is rendered as its stream, unchanged; with PyAV its frames are still images too.
        stills = _RENDERED[ObjectKind.IMAGE] if video.available() else ()
        return (_video_media_type(stored) or "", *stills)
    if kind in (ObjectKind.IMAGE, ObjectKind.MULTI_FRAME) and not transcode.can_transcode(
            stored, uids.EXPLICIT_VR_LITTLE_ENDIAN):
        return ()  # pixels no codec here can decode cannot be rendered
    if kind is ObjectKind.MULTI_FRAME and video.available():
        return _RENDERED[kind] + video.MEDIA_TYPES  # PS3.18 Table 8.7.4-1: multi-frame as video
    return _RENDERED[kind]


@lru_cache(maxsize=256)
def producible(stored: frozenset[str]) -> tuple[str, ...]:
    """Transfer syntaxes objects stored in every one of ``stored`` can all be sent in, EVRLE first."""
    common: set[str] | None = None
    for syntax in stored:
        here = {t for t in transcode.target_syntaxes() if transcode.can_transcode(syntax, t)}
        here.add(syntax)
        common = here if common is None else common & here
    ordered = sorted(common or ())
    if uids.EXPLICIT_VR_LITTLE_ENDIAN in ordered:
        ordered.remove(uids.EXPLICIT_VR_LITTLE_ENDIAN)
        ordered.insert(0, uids.EXPLICIT_VR_LITTLE_ENDIAN)
    return tuple(ordered)


@dataclass(frozen=True)
class AsStored:
    """Each object exactly as stored (PS3.18 8.7.3.5.2 'transfer-syntax=*')."""


AS_STORED = AsStored()


@dataclass(frozen=True)
class Syntaxes:
    """Transfer syntax UIDs in the client's preference order; each object gets the first it can be
    sent in (RAD-69 TransferSyntaxUIDList, WADO-URI transferSyntax, a WADO-RS transfer-syntax)."""

    uids: tuple[str, ...]


@dataclass(frozen=True)
class MediaTypes:
    """Rendered media types (or ``type/*``, ``*/*``) in preference order; each object gets the
    first of its rendered forms the list matches (WADO-URI contentType, WADO-RS rendered Accept)."""

    types: tuple[str, ...]


Request = AsStored | Syntaxes | MediaTypes


@dataclass(frozen=True)
class Resolved:
    """What to send for one object: a PS3.10 file in ``transfer_syntax``, or a rendered ``media_type``."""

    object: ObjectPlan
    media_type: str
    transfer_syntax: str | None  # None for a rendered form

    @property
    def transcoded(self) -> bool:
        """Whether the bytes differ from the stored file (a rendered form always does)."""
        return self.transfer_syntax != self.object.stored_syntax

    @property
    def length(self) -> int | None:
        """The body's length when known before it is produced: only an unchanged file's."""
        return None if self.transcoded else self.object.size


@dataclass(frozen=True)
class Unavailable:
    """Why one object cannot be sent as asked; a value, so the other objects still are."""

    object: ObjectPlan
    reason: str


@dataclass(frozen=True)
class ObjectPlan:
    """What one stored instance can be sent as."""

    instance: StoredInstance
    kind: ObjectKind
    syntaxes: tuple[str, ...]
    frames: tuple[FrameForm, ...]
    rendered: tuple[str, ...]

    @classmethod
    def of(cls, instance: StoredInstance) -> ObjectPlan:
        stored = instance.transfer_syntax_uid
        kind = object_kind(instance)
        # PS3.18 8.7.3.5: video streams have no per-frame media type, so no frame forms.
        frames = () if kind is ObjectKind.VIDEO else frame_forms.frame_forms(stored)
        return cls(instance, kind, producible(frozenset((stored,))), frames, _rendered(kind, stored))

    @property
    def stored_syntax(self) -> str:
        return self.instance.transfer_syntax_uid

    @property
    def size(self) -> int:
        """The stored file's length in bytes."""
        return self.instance.size

    @property
    def number_of_frames(self) -> int:
        """Frames in the pixel data (1 for a single-frame image, 0 for an object without pixels)."""
        if self.kind in (ObjectKind.IMAGE, ObjectKind.MULTI_FRAME, ObjectKind.VIDEO):
            return self.instance.number_of_frames or 1
        return 0

    def resolve(self, request: Request) -> Resolved | Unavailable:
        """This object's answer to ``request``, or why there is none."""
        if isinstance(request, AsStored):
            return Resolved(self, DICOM, self.stored_syntax)
        if isinstance(request, Syntaxes):
            for syntax in request.uids:
                if syntax in self.syntaxes:
                    return Resolved(self, DICOM, syntax)
            return Unavailable(self, f"instance {self.instance.sop_instance_uid}, stored in "
                                     f"{_syntax_name(self.stored_syntax)}, cannot be provided in "
                                     f"{_listed(request.uids)}; it can be in {_listed(self.syntaxes)}")
        for pattern in request.types:
            for media_type in self.rendered:
                if _media_matches(pattern.lower(), media_type):
                    return Resolved(self, media_type, None)
        offered = ", ".join(self.rendered) or "no rendered form"
        return Unavailable(self, f"instance {self.instance.sop_instance_uid} ({self.kind.value}) cannot be "
                                 f"rendered as {', '.join(request.types) or 'nothing'}; it offers {offered}")


@dataclass(frozen=True)
class RetrievePlan:
    """What the objects of one target can be sent as."""

    target: Target
    objects: tuple[ObjectPlan, ...]

    @property
    def instances(self) -> list[StoredInstance]:
        return [item.instance for item in self.objects]

    @property
    def stored_syntaxes(self) -> frozenset[str]:
        return frozenset(item.stored_syntax for item in self.objects)

    @property
    def syntaxes(self) -> tuple[str, ...]:
        """Transfer syntaxes every object can be sent in, Explicit VR Little Endian first."""
        return producible(self.stored_syntaxes)

    @property
    def as_stored(self) -> str:
        """The stored syntax when all objects share one, else Explicit VR Little Endian: what
        'transfer-syntax=*' names when one syntax must label the whole answer."""
        stored = self.stored_syntaxes
        return next(iter(stored)) if len(stored) == 1 else uids.EXPLICIT_VR_LITTLE_ENDIAN

    def resolve(self, request: Request) -> tuple[Resolved | Unavailable, ...]:
        """Each object's answer to ``request``, in order."""
        return tuple(item.resolve(request) for item in self.objects)

    def require(self, request: Request) -> tuple[Resolved, ...]:
        """Each object's answer, or NotAcceptable for the first that has none: for protocols
        whose answer is all or nothing (WADO-RS, WADO-URI)."""
        resolved = []
        for outcome in self.resolve(request):
            if isinstance(outcome, Unavailable):
                raise NotAcceptable(outcome.reason)
            resolved.append(outcome)
        return tuple(resolved)


def plan(session: Session, target: Target) -> RetrievePlan:
    """The plan for the target's instances, from the index; NotFound when there are none."""
    return plan_of(target, retrieve.instances(session, target))


def plan_of(target: Target, found: Sequence[StoredInstance]) -> RetrievePlan:
    """The plan for instances already looked up."""
    return RetrievePlan(target, tuple(ObjectPlan.of(instance) for instance in found))


def dicom_body(files: BlobReader, resolved: Resolved, max_transcode_bytes: int) -> Body:
    """A resolved object as a PS3.10 file: the stored file streamed, or transcoded (bounded)."""
    if resolved.transfer_syntax is None:
        raise ValueError(f"{resolved.media_type} is a rendered form, not a PS3.10 file")
    syntax = None if not resolved.transcoded else resolved.transfer_syntax
    return retrieve.instance_body(files, resolved.object.instance, syntax, max_transcode_bytes)


def _media_matches(pattern: str, media_type: str) -> bool:
    if pattern == "*/*":
        return True
    if pattern.endswith("/*"):
        return media_type.startswith(pattern[:-1])
    return pattern == media_type


def _syntax_name(uid: str) -> str:
    return uids.transfer_syntax_name(uid) if uids.is_known_transfer_syntax(uid) else uid


def _listed(syntaxes: Sequence[str]) -> str:
    shown = ", ".join(syntaxes[:6]) + (", ..." if len(syntaxes) > 6 else "")
    return shown or "no transfer syntax"
