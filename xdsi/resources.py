"""The WSDL and XML schemas xdsi serves and validates with: the repository's top-level ``wsdl/`` and
``schemas/`` folders, which ``xdsi/wsdl`` and ``xdsi/schemas`` link to so that a wheel carries them
as package data."""

from __future__ import annotations

from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).parent
WSDL = PACKAGE / "wsdl" / "XDS-I.b_ImagingDocumentSource.wsdl"
SCHEMAS = PACKAGE / "schemas"


@cache
def schema_names() -> frozenset[str]:
    """Every schema by its path under ``schemas/`` ('IHE/XDS.b_DocumentRepository.xsd'), the only
    names a client may ask for."""
    return frozenset(path.relative_to(SCHEMAS).as_posix() for path in SCHEMAS.rglob("*.xsd"))


def schema(name: str) -> Path | None:
    """The schema file called ``name``, or None for any other name (no path of the client's own)."""
    return SCHEMAS / name if name in schema_names() else None
