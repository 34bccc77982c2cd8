"""MTOM/XOP: an answer written as a stream whose parts are produced only when reached; a request's root part."""

from __future__ import annotations

import pytest

from xdsi.soap import mtom
from xdsi.soap.envelope import SOAP11, SOAP12
from xdsi.soap.faults import Fault


def test_parts_are_produced_when_the_stream_reaches_them_and_the_length_is_exact() -> None:
    produced: list[str] = []

    def producer(name: str, data: bytes):
        def produce() -> list[bytes]:
            produced.append(name)
            return [data[:3], data[3:]]
        return produce

    attachments = [mtom.Attachment(mtom.new_content_id(n), "application/dicom", producer(str(n), b"DICM-%d" % n), 6)
                   for n in (1, 2)]
    stream = mtom.iter_message(SOAP12, "B", b"<root/>", attachments)
    first = next(stream)
    assert first.endswith(b"<root/>") and b'type="application/soap+xml"' in first and produced == []
    body = first + b"".join(stream)
    assert produced == ["1", "2"]
    assert len(body) == mtom.message_length(SOAP12, "B", b"<root/>", attachments)
    assert body.endswith(b"\r\n--B--\r\n")
    assert f"Content-ID: <{attachments[1].content_id}>".encode() in body
    assert attachments[0].href == "cid:" + attachments[0].content_id
    unknown = mtom.Attachment("x@y", "application/dicom", lambda: [b""], None)
    assert mtom.message_length(SOAP12, "B", b"<root/>", [unknown]) is None


def test_content_type_names_root_start_info_and_action() -> None:
    assert mtom.content_type(SOAP11, "B", "urn:a") == (
        'multipart/related; boundary="B"; type="application/xop+xml"; start="<root.message@xdsi>"; '
        'start-info="text/xml"; action="urn:a"')


def test_the_root_part_is_the_start_part() -> None:
    body = (b"--b\r\nContent-ID: <other>\r\n\r\nnot this\r\n--b\r\nContent-Type: application/xop+xml\r\n"
            b"Content-ID: <root@c>\r\n\r\n<e/>\r\n--b--\r\n")
    root, params = mtom.root_part('multipart/related; boundary=b; start="<root@c>"; action="urn:a"', body)
    assert root == b"<e/>" and params["action"] == "urn:a"
    root, _ = mtom.root_part("multipart/related; boundary=b", body)
    assert root == b"not this"


@pytest.mark.parametrize(("content_type", "body"), [
    ("multipart/related", b"--b\r\n\r\nx\r\n--b--"),
    ("multipart/related; boundary=b", b"no parts here"),
    ('multipart/related; boundary=b; start="<missing>"', b"--b\r\nContent-ID: <a>\r\n\r\nx\r\n--b--\r\n"),
])
def test_malformed_multipart_requests_are_sender_faults(content_type: str, body: bytes) -> None:
    with pytest.raises(Fault):
        mtom.root_part(content_type, body)
