"""Imaging documents as an XDS-I.b Imaging Document Source serves them (RAD TF-3 4.69, PS3.18 WADO-WS).

A RAD-69 or WADO-WS request names documents (SOP instances) one by one, each with the repository
and home community it expects to find them in. Every document has its own outcome, a value and
not an exception (ITI TF-2b 3.43.4.2.3): ``Located`` (found here, with the transfer syntax it
will be sent in) or ``Refused`` (the domain error saying why). The SOAP edge turns a list of
outcomes into Success, PartialSuccess or Failure.

Everything that decides an outcome runs before the answer starts (the index lookup, the
repository and community check, the choice of transfer syntax), so the RegistryResponse at the
head of the message is true for the documents streamed after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from xdsi.config import Settings
from xdsi.dicom import uids
from xdsi.errors import NotAcceptable, NotFound, UnknownCommunity, UnknownRepository, XdsiError
from xdsi.repository import index
from xdsi.repository.index import StoredInstance
from xdsi.services import retrieve


@dataclass(frozen=True)
class DocumentRequest:
    """One requested document. Study and series are None where the request form has none
    (the 2017 WADO-WS metadata request); identifiers are as the client sent them, trimmed."""

    document_uid: str
    study_uid: str | None = None
    series_uid: str | None = None
    repository_id: str | None = None
    home_community_id: str | None = None


@dataclass(frozen=True)
class Located:
    """A document found here; ``transfer_syntax`` None means as stored (byte for byte)."""

    request: DocumentRequest
    instance: StoredInstance
    transfer_syntax: str | None = None


@dataclass(frozen=True)
class Refused:
    """A document that cannot be returned, and why."""

    request: DocumentRequest
    error: XdsiError


Outcome = Located | Refused


def locate(session: Session, settings: Settings, requests: Sequence[DocumentRequest]) -> list[Outcome]:
    """Each request's document, in request order; a series is read from the index once."""
    series_cache: dict[tuple[str, str | None], dict[str, StoredInstance]] = {}
    outcomes: list[Outcome] = []
    for request in requests:
        try:
            outcomes.append(Located(request, _find(session, settings, request, series_cache)))
        except XdsiError as error:
            outcomes.append(Refused(request, error))
    return outcomes


def with_transfer_syntax(outcomes: Iterable[Outcome], wanted: Sequence[str]) -> list[Outcome]:
    """Each located document with the syntax it will be sent in (RAD TF-3 4.69.4.2.3: one of the
    requested list), or refused when none of the list can be produced from what is stored."""
    return [_with_syntax(outcome, wanted) if isinstance(outcome, Located) else outcome for outcome in outcomes]


def choose_transfer_syntax(instance: StoredInstance, wanted: Sequence[str]) -> str | None:
    """None when the stored syntax is one of ``wanted`` (sent byte for byte, whatever its place in
    the list, since RAD-69 gives the list no order of preference), else the first of ``wanted``
    that the stored syntax can be transcoded to."""
    if instance.transfer_syntax_uid in wanted:
        return None
    producible = retrieve.producible_syntaxes([instance])
    for syntax in wanted:
        if syntax in producible:
            return syntax
    listed = ", ".join(wanted) or "(none)"
    raise NotAcceptable(f"document {instance.sop_instance_uid} is stored in {instance.transfer_syntax_uid} and "
                        f"cannot be provided in any requested transfer syntax ({listed})")


def _with_syntax(outcome: Located, wanted: Sequence[str]) -> Outcome:
    try:
        return Located(outcome.request, outcome.instance, choose_transfer_syntax(outcome.instance, wanted))
    except NotAcceptable as error:
        return Refused(outcome.request, error)


def _find(session: Session, settings: Settings, request: DocumentRequest,
          series_cache: dict[tuple[str, str | None], dict[str, StoredInstance]]) -> StoredInstance:
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

