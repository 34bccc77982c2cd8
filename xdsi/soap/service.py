"""The operations of the Imaging Document Source: each turns a request Body into an answer payload
and the documents to attach, through the shared services.

RAD TF-3 4.69.4.2 / ITI TF-2b 3.43.4.2: every document has its own outcome. No error gives
Success; errors beside at least one returned document give PartialSuccess; errors alone give
Failure. Each error is a RegistryError whose errorCode comes from errormap's RegistryError column,
with the document's UID as its location.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from lxml import etree
from sqlalchemy.orm import Session

from xdsi import errormap
from xdsi.errors import InvalidRequest, XdsiError
from xdsi.services import imaging_documents
from xdsi.services.anonymize import Anonymizer
from xdsi.services.archive import Archive
from xdsi.services.auditor import Transaction
from xdsi.services.imaging_documents import DocumentRequest, DocumentSet, Located, Outcome, Refused
from xdsi.services.render import PresentationRef, Region, Rendered, RenderRequest, Window
from xdsi.services.retrieve import StoredInstance
from xdsi.soap import namespaces as ns
from xdsi.soap import types
from xdsi.soap.mtom import Attachment, new_content_id

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL_SUCCESS = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
SEVERITY_ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
DICOM = "application/dicom"


@dataclass(frozen=True)
class Call:
    """What an operation works with: the archive, the call's database session, the request's
    Body payload, and the public DICOMweb root (for BulkDataURIs in metadata)."""

    archive: Archive
    session: Session
    body: etree._Element
    dicomweb_root: str


@dataclass
class Answer:
    """An operation's Body payload, the attachments its xop:Includes name, what to release once the
    message is sent (the pinned files), and the instances whose documents, renderings or metadata it
    sends (for the audit trail), by the transaction they are recorded under."""

    payload: etree._Element
    attachments: list[Attachment] = field(default_factory=list)
    close: Callable[[], None] = lambda: None
    sent: list[StoredInstance] = field(default_factory=list)
    transaction: Transaction = "RAD-69"


def retrieve_imaging_document_set(call: Call) -> Answer:
    """RAD-69: the requested instances as PS3.10 files, each in one of the listed transfer syntaxes."""
    archive, session = call.archive, call.session
    request = types.document_set_request(call.body)
    outcomes = imaging_documents.resolve(
        imaging_documents.locate(session, archive.settings, request.documents), request.transfer_syntaxes)
    documents = DocumentSet(archive.blobs, outcomes, archive.settings.max_transcode_bytes, archive.limits)
    try:
        outcomes = documents.prepare(outcomes)
        payload = etree.Element(ns.qname(ns.IHE, "RetrieveDocumentSetResponse"), nsmap={"ihe": ns.IHE, "rs": ns.RS})
        payload.append(registry_response(ns.qname(ns.RS, "RegistryResponse"), outcomes))
        attachments = []
        for number, outcome in enumerate((o for o in outcomes if isinstance(o, Located)), 1):
            document = etree.SubElement(payload, ns.qname(ns.IHE, "DocumentResponse"))
            identifiers(document, outcome.request, archive.settings.repository_unique_id)
            etree.SubElement(document, ns.qname(ns.IHE, "mimeType")).text = DICOM
            attachment = Attachment(new_content_id(number), DICOM, partial(documents.chunks, outcome), outcome.length)
            include(etree.SubElement(document, ns.qname(ns.IHE, "Document")), attachment)
            attachments.append(attachment)
    except BaseException:
        documents.close()
        raise
    sent = [outcome.instance for outcome in outcomes if isinstance(outcome, Located)]
    return Answer(payload, attachments, documents.close, sent)


# The whole of one request's XPath evaluations, beyond each filter's own sandbox bound.
INFORMATION_TIME_LIMIT_S = 1.0


def retrieve_imaging_document_set_information(call: Call) -> Answer:
    """PS3.18 2017b 6.4.3: each document's metadata (PS3.19 Native DICOM Model), filtered by the
    client's XPath, one XPathResponse per XPath in the order given. A filter the sandbox refuses
    (not XPath, outside the subset, too costly) faults the whole request: it is the client's
    program that is wrong, not one document. With Anonymize the filters run on the de-identified
    model, one key for the request (``Anonymizer``), bulk data inline or left out, never a URI."""
    archive = call.archive
    settings = archive.settings
    requests = types.information_request(call.body)
    outcomes = imaging_documents.locate(call.session, settings, [request.document for request in requests])
    payload = etree.Element(ns.qname(ns.WADO, "RetrieveImagingDocumentSetInformationResponse"),
                            nsmap={"wado": ns.WADO, "ihe": ns.IHE, "rs": ns.RS})
    budget = imaging_documents.XPathBudget(INFORMATION_TIME_LIMIT_S)
    anonymizer = Anonymizer()
    responses: list[etree._Element] = []
    for index, (request, outcome) in enumerate(zip(requests, outcomes, strict=True)):
        if isinstance(outcome, Refused):
            continue
        native = None
        if request.anonymize:
            try:
                native = anonymizer.metadata_xml(archive.blobs, outcome.instance, archive.limits,
                                                 settings.bulk_data_threshold)
            except XdsiError as error:
                outcomes[index] = Refused(outcome.request, error)
                continue
        texts = imaging_documents.document_information(call.session, outcome, call.dicomweb_root, request.filters,
                                                       budget, native)
        response = etree.Element(ns.qname(ns.WADO, "DocumentInformationResponse"))
        identifiers(response, outcome.request, settings.repository_unique_id)
        if request.frame_number is not None:
            etree.SubElement(response, ns.qname(ns.WADO, "FrameNumber")).text = str(request.frame_number)
        listing = etree.SubElement(response, ns.qname(ns.WADO, "XPathResponseList"))
        for text in texts:
            etree.SubElement(listing, ns.qname(ns.WADO, "XPathResponse")).text = text
        responses.append(response)
    payload.append(registry_response(ns.qname(ns.WADO, "RegistryResponse"), outcomes))
    payload.extend(responses)
    described = [outcome.instance for outcome in outcomes if isinstance(outcome, Located)]
    return Answer(payload, sent=described, transaction="WADO-WS")


def retrieve_rendered_imaging_document_set(call: Call) -> Answer:
    """PS3.18 2017b 6.4.2: each document rendered by the shared rendering engine in the first type
    of its ContentTypeList it can be rendered in, the parameters applied echoed beside it. Images
    are rendered before the answer starts (each is small), so every outcome is known by then."""
    settings = call.archive.settings
    requests = types.rendered_request(call.body)
    outcomes = imaging_documents.locate(call.session, settings, [request.document for request in requests])
    rendered: list[tuple[types.RenderedRequest, Located, Rendered]] = []
    for index, (request, outcome) in enumerate(zip(requests, outcomes, strict=True)):
        if isinstance(outcome, Refused):
            continue
        try:
            image = imaging_documents.render(call.session, call.archive.renderer, outcome, request.content_types,
                                             _render_request(request))
        except XdsiError as error:
            outcomes[index] = Refused(outcome.request, error)
            continue
        rendered.append((request, outcome, image))
    payload = etree.Element(ns.qname(ns.WADO, "RetrieveRenderedImagingDocumentResponse"),
                            nsmap={"wado": ns.WADO, "ihe": ns.IHE, "rs": ns.RS})
    wrapper = etree.SubElement(payload, ns.qname(ns.IHE, "RetrieveDocumentSetResponse"))
    wrapper.append(registry_response(ns.qname(ns.RS, "RegistryResponse"), outcomes))
    attachments = []
    for number, (request, outcome, image) in enumerate(rendered, 1):
        response = etree.SubElement(payload, ns.qname(ns.WADO, "RenderedDocumentResponse"))
        identifiers(response, outcome.request, settings.repository_unique_id,
                    ns.qname(ns.WADO, "SourceDocumentUniqueId"))
        _echo(response, request)
        attachment = Attachment(new_content_id(number), image.media_type, partial(iter, (image.data,)),
                                len(image.data))
        include(etree.SubElement(response, ns.qname(ns.IHE, "Document")), attachment)
        etree.SubElement(response, ns.qname(ns.IHE, "mimeType")).text = image.media_type
        attachments.append(attachment)
    return Answer(payload, attachments, sent=[outcome.instance for _, outcome, _ in rendered], transaction="WADO-WS")


def _render_request(request: types.RenderedRequest) -> RenderRequest:
    """The protocol-neutral rendering request; a parameter the engine refuses fails its document."""
    if request.problem is not None:
        raise request.problem
    if (request.window_center is None) != (request.window_width is None):
        raise InvalidRequest("WindowCenter and WindowWidth go together (PS3.18 9.1.2.2.6)")
    if (request.presentation_uid is None) != (request.presentation_series_uid is None):
        raise InvalidRequest("PresentationUID and PresentationSeriesUID go together (PS3.18 9.1.2.2.9)")
    return RenderRequest(
        frames=None if request.frame_number is None else (request.frame_number,),
        window=None if request.window_center is None or request.window_width is None
        else Window(request.window_center, request.window_width),
        rows=request.rows, columns=request.columns,
        region=None if request.region is None else Region(*request.region),
        quality=request.image_quality,
        annotation=tuple(part.strip() for part in (request.annotation or "").split(",") if part.strip()),
        charset=request.charsets,
        presentation=None if request.presentation_uid is None or request.presentation_series_uid is None
        else PresentationRef(request.presentation_series_uid, request.presentation_uid),
        anonymize=request.anonymize,
    )


def _echo(response: etree._Element, request: types.RenderedRequest) -> None:
    """PS3.18 6.4.2.2: the parameters applied, in the schema's order."""
    values: list[tuple[str, object]] = [("FrameNumber", request.frame_number), ("Annotation", request.annotation),
                                        ("Rows", request.rows), ("Columns", request.columns)]
    for name, value in values:
        if value is not None:
            etree.SubElement(response, ns.qname(ns.WADO, name)).text = str(value)
    if request.region is not None:
        region = etree.SubElement(response, ns.qname(ns.WADO, "Region"))
        for name, bound in zip(("XMin", "YMin", "XMax", "YMax"), request.region, strict=True):
            etree.SubElement(region, ns.qname(ns.WADO, name)).text = repr(bound)
    later: list[tuple[str, object]] = [("WindowCenter", request.window_center), ("WindowWidth", request.window_width),
                        ("ImageQuality", request.image_quality), ("PresentationUID", request.presentation_uid),
                        ("PresentationSeriesUID", request.presentation_series_uid),
                        ("Anonymize", "true" if request.anonymize else None)]
    for name, value in later:
        if value is not None:
            etree.SubElement(response, ns.qname(ns.WADO, name)).text = str(value)


def registry_response(tag: str, outcomes: Sequence[Outcome]) -> etree._Element:
    """rs:RegistryResponseType with the status the outcomes give and a RegistryError per refusal."""
    refused = [outcome for outcome in outcomes if isinstance(outcome, Refused)]
    returned = len(outcomes) - len(refused)
    status = SUCCESS if not refused else PARTIAL_SUCCESS if returned else FAILURE
    response = etree.Element(tag, status=status)
    if refused:
        errors = etree.SubElement(response, ns.qname(ns.RS, "RegistryErrorList"), highestSeverity=SEVERITY_ERROR)
        for outcome in refused:
            etree.SubElement(errors, ns.qname(ns.RS, "RegistryError"),
                             errorCode=errormap.lookup(outcome.error).registry_error,
                             codeContext=str(outcome.error), severity=SEVERITY_ERROR,
                             location=outcome.request.document_uid)
    return response


def identifiers(parent: etree._Element, request: DocumentRequest, repository_id: str,
                document_tag: str = ns.qname(ns.IHE, "DocumentUniqueId")) -> None:
    """HomeCommunityId (when the request had it: ITI TF-2b 3.43.4.2.2), RepositoryUniqueId (this
    source's, which a located document's request named or left out) and the document's UID."""
    if request.home_community_id is not None:
        etree.SubElement(parent, ns.qname(ns.IHE, "HomeCommunityId")).text = request.home_community_id
    etree.SubElement(parent, ns.qname(ns.IHE, "RepositoryUniqueId")).text = repository_id
    etree.SubElement(parent, document_tag).text = request.document_uid


def include(document: etree._Element, attachment: Attachment) -> None:
    etree.SubElement(document, ns.qname(ns.XOP, "Include"), nsmap={"xop": ns.XOP}, href=attachment.href)
