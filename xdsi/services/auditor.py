"""Audit events of the archive's transactions (PS3.15 A.5.3; IHE ITI-20), recorded on the audit trail.

The edges call it once the service answered: a store with its outcomes, a retrieve with the
instances it sends, a search with its query, a caller's login or refusal. A streamed retrieve is a
``Transfer``: Begin Transferring when its answer starts, Instances Transferred once the answer is
closed, as a failure when the client did not take all of it. Nothing here waits for the
repository (``audit.trail``), and without ``audit_syslog`` every call returns at once.
"""

from __future__ import annotations

import logging
import socket
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from xdsi.audit import messages as audit
from xdsi.audit.syslog import Transport, transport_for
from xdsi.audit.trail import AuditTrail, Counts
from xdsi.config import Settings
from xdsi.repository.index import StoredInstance, study_patients
from xdsi.security.identity import Identity
from xdsi.services.store import Outcome

log = logging.getLogger(__name__)

Transaction = Literal["WADO-RS", "WADO-URI", "RAD-69", "WADO-WS"]
# The WADO-WS rendered and metadata operations have no IHE transaction: no event type code is sent.
TRANSACTIONS: dict[Transaction, audit.Code | None] = {
    "WADO-RS": audit.WADO_RS,
    "WADO-URI": audit.WADO_URI,
    "RAD-69": audit.RAD_69,
    "WADO-WS": None,
}


@dataclass(frozen=True)
class Requester:
    """Who asked and from where: the identity the edge established, the client's address."""

    identity: Identity
    address: str | None


class Auditor:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.trail: AuditTrail | None = None
        # A.5.3: this archive as a participant, by its URL and the machine it runs on.
        self.server_id = settings.base_url or f"{'https' if settings.tls_enabled else 'http'}://{settings.bind}"
        self.server_host = socket.gethostname()
        if settings.audit_syslog:
            url = settings.audit_syslog

            def transport() -> Transport:
                return transport_for(url, ca=settings.audit_tls_ca, cert=settings.audit_tls_cert,
                                     key=settings.audit_tls_key)

            source = audit.Source(settings.audit_source_id or self.server_host, settings.audit_site_id)
            self.trail = AuditTrail(transport, source, capacity=settings.audit_queue_size)

    @property
    def enabled(self) -> bool:
        """Whether events are recorded: an edge skips the work of describing one otherwise."""
        return self.trail is not None

    def counts(self) -> Counts | None:
        return self.trail.counts() if self.trail else None

    def close(self) -> None:
        if self.trail is not None:
            self.trail.close()

    # --- A.5.3.1 Application Activity -------------------------------------------------------------------------

    def application_activity(self, started: bool, launcher: str) -> None:
        event_type = audit.APPLICATION_START if started else audit.APPLICATION_STOP
        self._record(audit.Event(
            audit.APPLICATION_ACTIVITY, "E", audit.SUCCESS, event_types=[event_type],
            participants=[audit.Participant(self.server_id, False, audit.APPLICATION, self.server_host),
                          audit.Participant(launcher, True, audit.APPLICATION_LAUNCHER)],
        ))

    # --- A.5.3.5 DICOM Instances Transferred --------------------------------------------------------------------

    def stored(self, requester: Requester, outcomes: Sequence[Outcome]) -> None:
        """STOW-RS: the instances stored (action C), as a failure when some were refused."""
        if self.trail is None:
            return
        stored = [(o.study_uid, o.sop_class_uid, o.sop_instance_uid) for o in outcomes if o.status.succeeded
                  and o.study_uid and o.sop_class_uid and o.sop_instance_uid]
        failed = len(outcomes) - len(stored)
        outcome = audit.SUCCESS if not failed else (audit.MINOR_FAILURE if stored else audit.SERIOUS_FAILURE)
        description = f"{failed} of {len(outcomes)} instances refused" if failed else None
        # A.5.3.5: the requestor sent (source), this archive received (destination).
        self._transferred("C", outcome, description, stored, [audit.STOW_RS],
                          source=self._requester(requester, audit.SOURCE),
                          destination=audit.Participant(self.server_id, False, audit.DESTINATION,
                                                        self.server_host),
                          requester=requester)

    def retrieved(self, requester: Requester, found: Sequence[StoredInstance], transaction: Transaction) -> None:
        """A retrieve of any protocol: the instances sent (action R) to the requestor."""
        self.transferred(requester, found, transaction, audit.SUCCESS, None)

    def transferred(self, requester: Requester, found: Sequence[StoredInstance], transaction: Transaction,
                    outcome: str, description: str | None) -> None:
        if self.trail is None:
            return
        self._transferred("R", outcome, description, _instance_keys(found), _event_types(transaction),
                          source=audit.Participant(self.server_id, False, audit.SOURCE, self.server_host),
                          destination=self._requester(requester, audit.DESTINATION), requester=requester)

    def begin_transfer(self, requester: Requester, found: Sequence[StoredInstance],
                       transaction: Transaction) -> Transfer:
        """A retrieve whose answer streams: Begin Transferring now (A.5.3.4), Instances Transferred when
        ``Transfer.end`` is called."""
        transfer = Transfer(self, requester, found, transaction)
        if self.trail is not None:
            by_study = _by_study(_instance_keys(found))
            self._record(audit.Event(
                audit.BEGIN_TRANSFERRING, "E", audit.SUCCESS, event_types=_event_types(transaction),
                participants=[audit.Participant(self.server_id, False, audit.SOURCE, self.server_host),
                              self._requester(requester, audit.DESTINATION)],
                studies=_studies(by_study), patients=self._patients(by_study),
            ))
        return transfer

    def _transferred(self, action: str, outcome: str, description: str | None,
                     instances: Iterable[tuple[str | None, str | None, str | None]], event_types: list[audit.Code],
                     *, source: audit.Participant, destination: audit.Participant, requester: Requester) -> None:
        by_study = _by_study(instances)
        self._record(audit.Event(
            audit.INSTANCES_TRANSFERRED, action, outcome, event_types=event_types, outcome_description=description,
            participants=[source, destination], studies=_studies(by_study), patients=self._patients(by_study),
        ))

    # --- A.5.3.10 Query -----------------------------------------------------------------------------------------

    def queried(self, requester: Requester, query: bytes) -> None:
        """QIDO-RS: the query as sent (path and query string), with the requestor and this archive."""
        if self.trail is None:
            return
        self._record(audit.Event(
            audit.QUERY, "E", audit.SUCCESS, event_types=[audit.QIDO_RS],
            participants=[self._requester(requester, audit.SOURCE),
                          audit.Participant(self.server_id, False, audit.DESTINATION, self.server_host)],
            query=query,
        ))

    # --- A.5.3.11 Security Alert, A.5.3.12 User Authentication --------------------------------------------------

    def logged_in(self, requester: Requester) -> None:
        """A caller's credentials verified: a successful Login, the user (requestor) and this archive."""
        identity = requester.identity
        self._record(audit.Event(
            audit.USER_AUTHENTICATION, "E", audit.SUCCESS, event_types=[audit.LOGIN],
            participants=[audit.Participant(identity.name, True, address=requester.address,
                                            user_name=f"{identity.name} ({identity.mechanism})"),
                          audit.Participant(self.server_id, False, address=self.server_host)],
        ))

    def refused_login(self, address: str | None, user: str | None, reason: str) -> None:
        """Credentials presented and refused: a failed Login (outcome 4)."""
        self._record(audit.Event(
            audit.USER_AUTHENTICATION, "E", audit.MINOR_FAILURE, event_types=[audit.LOGIN],
            outcome_description=reason,
            participants=[audit.Participant(user or "unknown", True, address=address),
                          audit.Participant(self.server_id, False, address=self.server_host)],
        ))

    def refused_access(self, requester: Requester, target: str, reason: str) -> None:
        """A known caller asked for what its roles do not allow: Use of Restricted Function."""
        self._record(audit.Event(
            audit.SECURITY_ALERT, "E", audit.MINOR_FAILURE, event_types=[audit.USE_OF_RESTRICTED_FUNCTION],
            outcome_description=reason,
            participants=[self._requester(requester, None),
                          audit.Participant(self.server_id, False, address=self.server_host)],
            alert_subject=target,
        ))

    def refused_node(self, address: str | None, reason: str) -> None:
        """A client whose TLS certificate was missing or not trusted: a Node Authentication failure (ITI-20)."""
        self._record(audit.Event(
            audit.SECURITY_ALERT, "E", audit.MINOR_FAILURE, event_types=[audit.NODE_AUTHENTICATION],
            outcome_description=reason,
            participants=[audit.Participant(address or "unknown", True, address=address),
                          audit.Participant(self.server_id, False, address=self.server_host)],
        ))

    # ---------------------------------------------------------------------------------------------------------------

    def _record(self, event: audit.Event) -> None:
        if self.trail is not None:
            self.trail.record(event)

    def _requester(self, requester: Requester, role: audit.Code | None) -> audit.Participant:
        identity = requester.identity
        return audit.Participant(identity.name, True, role, requester.address,
                                 user_name=f"{identity.name} ({identity.mechanism})")

    def _patients(self, by_study: dict[str, dict[str, list[str]]]) -> list[audit.Patient]:
        if not by_study:
            return []
        try:
            with self.sessions() as session:
                found = study_patients(session, list(by_study))
        except Exception:  # an audit message without the patient beats none at all
            log.exception("the patients of an audit message could not be read")
            return []
        unique = {(patient_id, issuer) for patient_id, issuer in found.values() if patient_id}
        return [audit.Patient(patient_id, issuer or None) for patient_id, issuer in sorted(unique)]


class Transfer:
    """A streamed retrieve under way: ``watch`` the answer's chunks, ``end`` once it is closed."""

    def __init__(self, auditor: Auditor, requester: Requester, found: Sequence[StoredInstance],
                 transaction: Transaction) -> None:
        self.auditor = auditor
        self.requester = requester
        self.found = found
        self.transaction = transaction
        self.complete = False
        self.ended = False

    def watch(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The chunks unchanged; the transfer is complete once the last one was taken."""
        yield from chunks
        self.complete = True

    def end(self) -> None:
        """Instances Transferred: success if the client took the whole answer, else a minor failure."""
        if self.ended:
            return
        self.ended = True
        if self.complete:
            self.auditor.transferred(self.requester, self.found, self.transaction, audit.SUCCESS, None)
        else:
            self.auditor.transferred(self.requester, self.found, self.transaction, audit.MINOR_FAILURE,
                                     "the answer was cut off before its end")


def _instance_keys(found: Iterable[StoredInstance]) -> list[tuple[str | None, str | None, str | None]]:
    return [(i.study_uid, i.sop_class_uid, i.sop_instance_uid) for i in found]


def _by_study(instances: Iterable[tuple[str | None, str | None, str | None]]) -> dict[str, dict[str, list[str]]]:
    by_study: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for study_uid, sop_class, sop_uid in instances:
        if study_uid and sop_class and sop_uid:
            by_study[study_uid][sop_class].append(sop_uid)
    return by_study


def _studies(by_study: dict[str, dict[str, list[str]]]) -> list[audit.Study]:
    return [audit.Study(uid, dict(classes)) for uid, classes in sorted(by_study.items())]


def _event_types(transaction: Transaction) -> list[audit.Code]:
    code = TRANSACTIONS[transaction]
    return [] if code is None else [code]
