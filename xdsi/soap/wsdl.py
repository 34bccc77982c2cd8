"""The WSDL at ``/wado-ws?wsdl`` and its schemas at ``/wado-ws?xsd=NAME``, with the service address
and every schemaLocation rewritten to this server's public URL, so a client that fetches the WSDL
(zeep, SoapUI, wsimport) resolves each import from here whatever the path it was served under."""

from __future__ import annotations

import posixpath
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from lxml import etree

from xdsi import resources

_XSD = "http://www.w3.org/2001/XMLSchema"
_SCHEMAS = "schemas"
_SOAP12_BINDING = "http://schemas.xmlsoap.org/wsdl/soap12/"


def wsdl_document(endpoint: str) -> bytes:
    return _rewritten(resources.WSDL, "wsdl", endpoint)


def schema_document(name: str, endpoint: str) -> bytes | None:
    """The schema ``name`` ('IHE/XDS.b_DocumentRepository.xsd'), or None when there is none."""
    path = resources.schema(name)
    return None if path is None else _rewritten(path, posixpath.dirname(f"{_SCHEMAS}/{name}"), endpoint)


@lru_cache(maxsize=64)
def _rewritten(path: Path, folder: str, endpoint: str) -> bytes:
    """``path`` with its imports pointing at ``endpoint?xsd=…``; ``folder``: where it lies in the repository."""
    tree = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))
    for element in tree.iter(f"{{{_XSD}}}import", f"{{{_XSD}}}include"):
        location = element.get("schemaLocation")
        if location:
            name = posixpath.normpath(posixpath.join(folder, location)).removeprefix(f"{_SCHEMAS}/")
            element.set("schemaLocation", f"{endpoint}?xsd={quote(name, safe='/')}")
    for address in tree.iter(f"{{{_SOAP12_BINDING}}}address"):
        address.set("location", endpoint)
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
