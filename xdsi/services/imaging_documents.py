"""Imaging documents as an XDS-I.b Imaging Document Source serves them (RAD TF-3 4.69, PS3.18 WADO-WS).

A RAD-69 or WADO-WS request names documents (SOP instances) one by one, each with the repository
and home community it expects to find them in. Every document has its own outcome, a value and
not an exception (ITI TF-2b 3.43.4.2.3): ``Located`` (found here, with the retrieve plan's
answer for it) or ``Refused`` (the domain error saying why). The SOAP edge turns a list of
outcomes into Success, PartialSuccess or Failure.

Everything that decides an outcome runs before the answer starts: the index lookup, the
repository and community check, the plan's choice of transfer syntax, and the transcoding itself
(``DocumentSet.prepare``), since a plan knows which syntaxes a codec can write but not whether
these pixels fit the target (16-bit pixels are no JPEG baseline). Transcoded documents wait in
anonymous temporary files, one in memory at a time; stored files stream from the store. So the
RegistryResponse at the head of the message is true for every document streamed after it.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import BinaryIO

from sqlalchemy.orm import Session

from xdsi.config import Settings
from xdsi.dicom import uids
from xdsi.dicom.parsing import Limits
from xdsi.encoding import xpath
from xdsi.encoding.xpath import XPathFilter
from xdsi.errors import (
    NotAcceptable,
    NotFound,
    UnknownCommunity,
    UnknownRepository,
    UnsupportedParameter,
    XdsiError,
    XPathTooCostly,
)
from xdsi.repository import index
from xdsi.repository.blobs import BlobStore
from xdsi.repository.index import StoredInstance
from xdsi.services import plans, retrieve
from xdsi.services.anonymize import Anonymizer, Spliced
from xdsi.services.plans import ObjectPlan, Resolved, Unavailable
from xdsi.services.render import Rendered, Renderer, RenderRequest
from xdsi.services.retrieve import Body, Target

CHUNK = retrieve.CHUNK


@dataclass(frozen=True)
class DocumentRequest:
    """One requested document. Study and series are None where the request form has none
    (the 2017 WADO-WS metadata request); identifiers are as the client sent them, trimmed.
    ``anonymize`` and ``frame_number`` (as sent) are the 2017 WADO-WS extension of a RAD-69
    DocumentRequest."""

    document_uid: str
    study_uid: str | None = None
    series_uid: str | None = None
    repository_id: str | None = None
    home_community_id: str | None = None
    anonymize: bool = False
    frame_number: str | None = None


@dataclass(frozen=True)
class Located:
    """A document found here: its plan, and once resolved, what will be sent of it."""

    request: DocumentRequest
    plan: ObjectPlan
    resolved: Resolved | None = None
    prepared: BinaryIO | None = None  # the transcoded (or de-identified) file, made before the answer starts
    spliced: Spliced | None = None  # a de-identified header around the stored pixel data

    @property
    def instance(self) -> StoredInstance:
        return self.plan.instance

    @property
    def length(self) -> int | None:
        """The body's length when known before it is sent."""
        if self.prepared is not None:
            return self.prepared.seek(0, 2)
        if self.spliced is not None:
            return self.spliced.length
        return None if self.resolved is None else self.resolved.length


@dataclass(frozen=True)
class Refused:
    """A document that cannot be returned, and why."""

    request: DocumentRequest
    error: XdsiError


Outcome = Located | Refused


def locate(session: Session, settings: Settings, requests: Sequence[DocumentRequest]) -> list[Outcome]:
    """Each request's document, in request order. A series that several requests name is read
    from the index once; a lone document is read alone (a series may hold thousands)."""
    wanted = Counter((request.study_uid, request.series_uid) for request in requests)
    series_cache: dict[tuple[str, str | None], dict[str, StoredInstance]] = {}
    outcomes: list[Outcome] = []
    for request in requests:
        try:
            whole_series = wanted[(request.study_uid, request.series_uid)] > 1
            found = _find(session, settings, request, series_cache if whole_series else None)
            outcomes.append(Located(request, ObjectPlan.of(found)))
        except XdsiError as error:
            outcomes.append(Refused(request, error))
    return outcomes


def resolve(outcomes: Sequence[Outcome], syntaxes: Sequence[str]) -> list[Outcome]:
    """Each located document in one of ``syntaxes`` (RAD TF-3 4.69.4.2.3), or refused when it
    can be sent in none. A document stored in a listed syntax is sent as stored, byte for byte,
    wherever the list names it (RAD-69 gives the list no order of preference; the stored file is
    the faithful and the cheap answer); any other gets the first listed syntax its plan allows.

    A FrameNumber refuses its document: a RAD-69 document is the SOP instance as a PS3.10 file,
    all of it (RAD TF-3 4.69.4.2.3), and a file of one frame would be a new instance with UIDs of
    its own, which the request's DocumentUniqueId does not name."""
    listed = plans.Syntaxes(tuple(syntaxes))
    resolved: list[Outcome] = []
    for outcome in outcomes:
        if isinstance(outcome, Refused):
            resolved.append(outcome)
            continue
        if outcome.request.frame_number is not None:
            resolved.append(Refused(outcome.request, UnsupportedParameter(
                f"FrameNumber {outcome.request.frame_number[:20]}: document {outcome.request.document_uid} is "
                f"answered as its whole PS3.10 instance; RetrieveRenderedImagingDocumentSet renders one frame")))
            continue
        answer = outcome.plan.resolve(plans.AS_STORED if outcome.plan.stored_syntax in syntaxes else listed)
        if isinstance(answer, Unavailable):
            resolved.append(Refused(outcome.request, NotAcceptable(answer.reason)))
        else:
            resolved.append(replace(outcome, resolved=answer))
    return resolved


class DocumentSet:
    """The files of the located documents, pinned so that a delete committed meanwhile cannot
    cut the answer short, and the transcoded copies; ``close`` releases both.

    Documents asked with Anonymize are de-identified by one ``Anonymizer`` (one key for the set:
    a UID maps the same way in every document of the answer, and differently in another answer).
    """

    def __init__(self, blobs: BlobStore, outcomes: Sequence[Outcome], max_transcode_bytes: int,
                 limits: Limits) -> None:
        self.blobs = blobs
        self.max_transcode_bytes = max_transcode_bytes
        self.limits = limits
        self.anonymizer = Anonymizer()
        self.files = retrieve.opened_files(blobs, [o.instance for o in outcomes if isinstance(o, Located)])
        self.temporary: list[BinaryIO] = []

    def prepare(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """Transcode or de-identify now each document that needs it; one that cannot be becomes Refused."""
        prepared: list[Outcome] = []
        for outcome in outcomes:
            if not isinstance(outcome, Located) or outcome.resolved is None or (
                    not outcome.resolved.transcoded and not outcome.request.anonymize):
                prepared.append(outcome)
                continue
            try:
                prepared.append(self._anonymized(outcome, outcome.resolved) if outcome.request.anonymize
                                else self._copied(outcome, plans.dicom_body(self.files, outcome.resolved,
                                                                            self.max_transcode_bytes)))
            except XdsiError as error:
                prepared.append(Refused(outcome.request, error))
        return prepared

    def _anonymized(self, outcome: Located, resolved: Resolved) -> Located:
        """The de-identified document: its new header spliced around the stored pixel data where it is
        sent as stored, else rewritten whole (transcoded, Deflated, no pixel data) into a copy."""
        syntax = resolved.transfer_syntax if resolved.transcoded else None
        spliced = self.anonymizer.spliced(self.blobs, outcome.instance, syntax, self.limits)
        if spliced is not None:
            return replace(outcome, spliced=spliced)
        return self._copied(outcome, self.anonymizer.instance_body(
            self.blobs, outcome.instance, syntax, self.limits, self.max_transcode_bytes, self.files))

    def _copied(self, outcome: Located, body: Body) -> Located:
        copy = tempfile.TemporaryFile()  # noqa: SIM115 - kept open until the answer is sent; close() closes it
        self.temporary.append(copy)
        for chunk in body.chunks:
            copy.write(chunk)
        return replace(outcome, prepared=copy)

    def chunks(self, outcome: Located) -> Iterator[bytes]:
        """The document's bytes: its transcoded copy, or its stored file, in large chunks."""
        if outcome.prepared is not None:
            outcome.prepared.seek(0)
            while chunk := outcome.prepared.read(CHUNK):
                yield chunk
            return
        if outcome.spliced is not None:
            yield from outcome.spliced.chunks(self.files)
            return
        if outcome.resolved is None:
            raise ValueError(f"document {outcome.request.document_uid} was not resolved")
        yield from plans.dicom_body(self.files, outcome.resolved, self.max_transcode_bytes).chunks

    def close(self) -> None:
        for copy in self.temporary:
            copy.close()
        self.files.close()

class XPathBudget:
    """The time one request's filters may spend evaluating, all documents together, beyond each
    evaluation's own sandbox bound: a request naming many documents cannot multiply that bound.
    Only evaluation is counted, not reading and building each document's model."""

    def __init__(self, seconds: float) -> None:
        self.left = seconds

    def evaluate(self, selected: XPathFilter, document: xpath.Document) -> str:
        if self.left <= 0:
            raise XPathTooCostly("XPath: the filters of this request took longer than allowed")
        started = time.monotonic()
        try:
            value = selected.evaluate(document, time_limit_s=min(xpath.TIME_LIMIT_S, self.left))
            return selected.to_text(document, value)
        finally:
            self.left -= time.monotonic() - started


def document_information(session: Session, outcome: Located, root: str, filters: Sequence[XPathFilter],
                         budget: XPathBudget, native: bytes | None = None) -> list[str]:
    """PS3.18 2017b 6.4.3: the document's metadata as a PS3.19 Native DICOM Model (bulk data as
    BulkDataURIs under ``root``), or ``native`` when given (a de-identified model), and what each
    client filter selects of it, as text."""
    if native is None:
        instance = outcome.instance
        target = Target(instance.study_uid, instance.series_uid, instance.sop_instance_uid)
        native = retrieve.instance_metadata_xml(session, target, root)
    document = xpath.Document.from_bytes(native)
    return [budget.evaluate(selected, document) for selected in filters]


def render(session: Session, renderer: Renderer, outcome: Located, content_types: Sequence[str],
           request: RenderRequest) -> Rendered:
    """PS3.18 2017b 6.4.2: the document rendered by the shared engine in the first of
    ``content_types`` (``type/*`` and ``*/*`` allowed) its rendering offers; NotAcceptable when none."""
    instance = outcome.instance
    target = Target(instance.study_uid, instance.series_uid, instance.sop_instance_uid)
    prepared = renderer.prepare(session, target, frames=request.frames, presentation=request.presentation)
    for pattern in (content_type.lower() for content_type in content_types):
        for offered in prepared.media_types:
            if pattern in ("*/*", offered) or (pattern.endswith("/*") and offered.startswith(pattern[:-1])):
                return renderer.render(prepared, replace(request, media_type=offered))
    raise NotAcceptable(f"document {instance.sop_instance_uid} cannot be rendered as {', '.join(content_types)}; "
                        f"it can be rendered as {', '.join(prepared.media_types)}")


def _find(session: Session, settings: Settings, request: DocumentRequest,
          series_cache: dict[tuple[str, str | None], dict[str, StoredInstance]] | None) -> StoredInstance:
    check_source(settings, request)
    uids.validate_uid(request.document_uid, "DocumentUniqueId")
    study_uid, series_uid = request.study_uid, request.series_uid
    if study_uid is None:
        # No study in the request form: the SOP Instance UID alone names the document.
        row = index.find_instance(session, request.document_uid)
        if row is None:
            raise NotFound(f"document {request.document_uid} is not in this repository")
        study_uid, series_uid = row.series.study.study_uid, row.series.series_uid
    for uid, name in ((study_uid, "studyInstanceUID"), (series_uid, "seriesInstanceUID")):
        if uid is not None:
            uids.validate_uid(uid, name)
    if series_cache is None:
        found = index.stored_instances(session, study_uid, series_uid, request.document_uid)
        instance = found[0] if found else None
    else:
        key = (study_uid, series_uid)
        if key not in series_cache:
            series_cache[key] = {found.sop_instance_uid: found
                                 for found in index.stored_instances(session, study_uid, series_uid)}
        instance = series_cache[key].get(request.document_uid)
    if instance is None:
        where = f"series {series_uid} of study {study_uid}" if series_uid else f"study {study_uid}"
        raise NotFound(f"document {request.document_uid} is not in {where} in this repository")
    return instance


def check_source(settings: Settings, request: DocumentRequest) -> None:
    """UnknownCommunity or UnknownRepository when the request is addressed to another source.

    RAD TF-3 4.69.4.1.2: one request may name several sources; only the documents of others fail.
    An absent RepositoryUniqueId (optional in the WADO-WS schemas) means this source.
    """
    if request.home_community_id is not None and request.home_community_id != settings.home_community_id:
        raise UnknownCommunity(f"home community {request.home_community_id[:80]} is not "
                               f"{settings.home_community_id}, the community of this source")
    if request.repository_id is not None and request.repository_id != settings.repository_unique_id:
        raise UnknownRepository(f"repository {request.repository_id[:80]} is not "
                                f"{settings.repository_unique_id}, the repository of this source")

