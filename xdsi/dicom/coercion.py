"""Attribute coercion on the way in, recorded in Original Attributes Sequence (PS3.3 C.12.1.1.9)."""

from __future__ import annotations

from datetime import datetime

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence


def fill_issuer_of_patient_id(ds: Dataset, issuer: str, now: datetime, system: str) -> bool:
    """Give an instance without Issuer of Patient ID (0010,0021) the archive's default.

    Returns whether the dataset changed. The inserted attribute is recorded, empty as it was,
    in an Original Attributes Sequence item with reason COERCE, so the change can be undone.
    """
    if not ds.get("PatientID") or ds.get("IssuerOfPatientID"):
        return False
    modified = Dataset()
    modified.IssuerOfPatientID = ""
    item = Dataset()
    item.ModifiedAttributesSequence = Sequence([modified])
    item.AttributeModificationDateTime = now.strftime("%Y%m%d%H%M%S.%f%z")
    item.ModifyingSystem = system
    item.SourceOfPreviousValues = ""
    item.ReasonForTheAttributeModification = "COERCE"
    ds.IssuerOfPatientID = issuer
    history = ds.get("OriginalAttributesSequence")
    ds.OriginalAttributesSequence = Sequence([*(history or []), item])
    return True
