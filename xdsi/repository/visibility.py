"""Which patients a database session may see: the per-domain access rule, kept by the session.

A caller limited to some patient identifier domains (Issuers of Patient ID, '' for patients
recorded without one) gets a session that says so; every query that answers a search, a
metadata read or a retrieval (``index``, ``search``) narrows itself by it. Kept here, at the one
place those queries are built, so that a search can never show what a retrieval would refuse and
no protocol can forget the rule. Sessions the services open for their own work (storing,
deleting, auditing) are unlimited.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, bindparam
from sqlalchemy.orm import Session

from xdsi.repository.models import Patient

_KEY = "xdsi.patient_issuers"


def limit(session: Session, issuers: frozenset[str] | None) -> Session:
    """``session``, seeing from now on only patients of ``issuers`` (None: every patient)."""
    session.info[_KEY] = issuers
    return session


def issuers(session: Session) -> frozenset[str] | None:
    """The issuers ``session`` is limited to; None when it sees every patient."""
    found: frozenset[str] | None = session.info.get(_KEY)
    return found


def parameters(session: Session) -> dict[str, list[str]]:
    """The bound value ``condition()`` needs, for a limited session (empty for an unlimited one)."""
    limited = issuers(session)
    return {} if limited is None else {"issuers": sorted(limited)}


def condition() -> ColumnElement[bool]:
    """The patient row is in the bound ``issuers`` (a statement joined to Patient)."""
    return Patient.issuer_of_patient_id.in_(bindparam("issuers", expanding=True))
