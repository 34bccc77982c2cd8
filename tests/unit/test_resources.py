"""The WSDL and schemas xdsi serves: found, only by their own names, and loadable."""

from __future__ import annotations

from lxml import etree

from xdsi import resources


def test_every_schema_is_found_by_name_and_compiles() -> None:
    assert resources.schema_names() == {
        "DICOM/dicom.wado.ws.2011.xsd", "IHE/XDS.b_DocumentRepository.xsd", "IHE/XDSI.b_ImagingDocumentSource.xsd",
        "ebRS/rim.xsd", "ebRS/rs.xsd"}
    for name in resources.schema_names():
        path = resources.schema(name)
        assert path is not None
        etree.XMLSchema(etree.parse(str(path)))


def test_no_other_path_is_a_schema() -> None:
    for name in ("../wsdl/XDS-I.b_ImagingDocumentSource.wsdl", "/etc/passwd", "IHE/../../pyproject.toml", ""):
        assert resources.schema(name) is None


def test_the_wsdl_names_the_published_service() -> None:
    wsdl = etree.parse(str(resources.WSDL)).getroot()
    assert wsdl.get("targetNamespace") == "urn:ihe:rad:xdsi-b:2009"
    operations = wsdl.xpath("//*[local-name()='portType']/*[local-name()='operation']/@name")
    assert operations == ["ImagingDocumentSource_RetrieveImagingDocumentSet",
                          "ImagingDocumentSource_RetrieveRenderedImagingDocumentSet",
                          "ImagingDocumentSource_RetrieveImagingDocumentSetInformation"]
