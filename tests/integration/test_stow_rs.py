"""STOW-RS against a running server: bodies, responses, status codes and bad input."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from tests.conftest import make_settings
from tests.consistency import assert_consistent
from tests.dicomfiles import make_dataset, make_instance, to_bytes, with_raw_uid, without
from tests.live import LiveServer, Reply
from xdsi.repository import index
from xdsi.repository.models import Instance, Series, Study
from xdsi.services.archive import Archive

JSON = "application/dicom+json"
MULTIPART_DICOM = 'multipart/related; type="application/dicom"; boundary={}'


def multipart(parts: list[tuple[dict[str, str], bytes]], boundary: str = "xdsi-test-boundary") -> bytes:
    chunks = []
    for headers, body in parts:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        chunks.append(f"--{boundary}\r\n{head}\r\n".encode() + body + b"\r\n")
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


def dicom_parts(*payloads: bytes) -> bytes:
    return multipart([({"Content-Type": "application/dicom"}, p) for p in payloads])


def post(live: LiveServer, body: bytes, content_type: str | None = MULTIPART_DICOM.format("xdsi-test-boundary"),
         path: str = "/dicom-web/studies", **headers: str) -> Reply:
    sent = {"Accept": JSON, **{k.replace("_", "-"): v for k, v in headers.items()}}
    if content_type is not None:
        sent["Content-Type"] = content_type
    return live.request("POST", path, body, sent)


def values(obj: dict, tag: str) -> list:
    return obj.get(tag, {}).get("Value", [])


def indexed(live: LiveServer, sop_instance_uid: str) -> bool:
    archive = Archive.open(live.settings)
    try:
        with archive.sessions() as session:
            return index.find_instance(session, sop_instance_uid) is not None
    finally:
        archive.close()


def test_store_multipart_dicom(live: LiveServer) -> None:
    study, patient = generate_uid(), f"STOW-{uuid.uuid4().hex[:8]}"
    datasets = [make_dataset(study_uid=study, patient_id=patient) for _ in range(3)]
    reply = post(live, dicom_parts(*(to_bytes(ds) for ds in datasets)))
    assert reply.status == 200, reply.body
    assert reply.header("Content-Type").startswith(JSON)
    answer = json.loads(reply.body)
    assert values(answer, "00081190") == [f"{live.root}/studies/{study}"]
    referenced = values(answer, "00081199")
    assert {values(item, "00081155")[0] for item in referenced} == {ds.SOPInstanceUID for ds in datasets}
    for item in referenced:
        assert values(item, "00081150") == ["1.2.840.10008.5.1.4.1.1.2"]
        assert values(item, "00081190")[0].startswith(f"{live.root}/studies/{study}/series/")
    assert "00081198" not in answer


def test_store_single_part_and_study_targeted(live: LiveServer) -> None:
    ds = make_dataset()
    reply = post(live, to_bytes(ds), "application/dicom", path=f"/dicom-web/studies/{ds.StudyInstanceUID}")
    assert reply.status == 200, reply.body
    assert indexed(live, ds.SOPInstanceUID)


@pytest.mark.parametrize(
    "content_type",
    [
        'multipart/related; type="application/dicom"; boundary=xdsi-test-boundary',
        "multipart/related; type=application/dicom; boundary=xdsi-test-boundary",
        'multipart/related; boundary="xdsi-test-boundary"; type="application/dicom"',
        'multipart/related; type="application/dicom"; boundary=xdsi-test-boundary; '
        "transfer-syntax=1.2.840.10008.1.2.1",
        "Multipart/Related; Type=application/dicom; Boundary=xdsi-test-boundary",
    ],
)
def test_content_type_spellings(live: LiveServer, content_type: str) -> None:
    ds = make_dataset()
    assert post(live, dicom_parts(to_bytes(ds)), content_type).status == 200
    assert indexed(live, ds.SOPInstanceUID)


def test_chunked_upload(live: LiveServer) -> None:
    ds = make_dataset(rows=128, columns=128)
    body = dicom_parts(to_bytes(ds))
    chunked = b"".join(
        f"{len(body[i:i + 7000]):x}\r\n".encode() + body[i:i + 7000] + b"\r\n" for i in range(0, len(body), 7000)
    ) + b"0\r\n\r\n"
    reply = post(live, chunked, Transfer_Encoding="chunked")
    assert reply.status == 200, reply.body
    assert indexed(live, ds.SOPInstanceUID)


def _chunked_post(live: LiveServer, content_type: str, body: Iterator[bytes]) -> Reply:
    """A POST whose body goes out as HTTP/1.1 chunks while it is being produced, with no Content-Length."""
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=300)
    try:
        connection.request("POST", "/dicom-web/studies", body=body, encode_chunked=True,
                           headers={"Content-Type": content_type, "Accept": JSON, "Transfer-Encoding": "chunked"})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def _peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])


def test_a_chunked_upload_with_a_256_character_boundary_streams(tmp_path: Path) -> None:
    """Three 40 MiB instances sent chunked: the worker's peak memory grows by less than one instance."""
    boundary = (uuid.uuid4().hex * 8)[:256]
    study, side, count = generate_uid(), 4480, 3
    sent: dict[str, str] = {}

    def body() -> Iterator[bytes]:
        for number in range(count):
            ds = make_dataset(study_uid=study, rows=side, columns=side, InstanceNumber=number + 1)
            data = to_bytes(ds)
            sent[ds.SOPInstanceUID] = hashlib.sha256(data).hexdigest()
            yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            for start in range(0, len(data), 1 << 16):
                yield data[start:start + (1 << 16)]
            yield b"\r\n"
            del data
        yield f"--{boundary}--\r\n".encode()

    server = LiveServer(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "store", workers=1)
    try:
        [worker] = map(int, Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split())
        assert post(server, dicom_parts(make_instance())).status == 200  # warm the worker
        Path(f"/proc/{worker}/clear_refs").write_text("5")  # proc(5): resets the peak RSS to the current RSS
        before = _peak_rss_kib(worker)
        reply = _chunked_post(server, MULTIPART_DICOM.format(f'"{boundary}"'), body())
        growth_mib = (_peak_rss_kib(worker) - before) / 1024
        assert reply.status == 200, reply.body
        referenced = {values(item, "00081155")[0]: values(item, "00081190")[0]
                      for item in values(json.loads(reply.body), "00081199")}
        assert set(referenced) == set(sent)
        instance_mib = side * side * 2 / (1 << 20)
        assert growth_mib < instance_mib, f"the worker's peak memory grew by {growth_mib:.0f} MiB"
        for sop, url in referenced.items():
            got = server.request("GET", url, headers={"Accept": "application/dicom; transfer-syntax=*"})
            assert got.status == 200 and hashlib.sha256(got.body).hexdigest() == sent[sop], sop
    finally:
        server.stop()


def test_xml_response_on_request(live: LiveServer) -> None:
    reply = post(live, dicom_parts(make_instance()), Accept="application/dicom+xml")
    assert reply.status == 200
    assert reply.header("Content-Type").startswith("application/dicom+xml")
    assert b'<DicomAttribute tag="00081199" vr="SQ"' in reply.body


def test_partial_success_is_202_and_keeps_the_good_instances(live: LiveServer) -> None:
    good = [make_dataset() for _ in range(2)]
    reply = post(live, dicom_parts(to_bytes(good[0]), b"not dicom", to_bytes(good[1])))
    assert reply.status == 202, reply.body
    answer = json.loads(reply.body)
    assert len(values(answer, "00081199")) == 2
    assert values(values(answer, "0008119A")[0], "00081197") == [0xC000]
    assert all(indexed(live, ds.SOPInstanceUID) for ds in good)


def test_conflicting_duplicate_fails_with_0111(live: LiveServer) -> None:
    first = make_dataset()
    again = make_dataset(sop_uid=first.SOPInstanceUID, study_uid=first.StudyInstanceUID,
                         series_uid=first.SeriesInstanceUID, InstanceNumber=9)
    assert post(live, dicom_parts(to_bytes(first))).status == 200
    assert post(live, dicom_parts(to_bytes(first))).status == 200  # identical: success
    reply = post(live, dicom_parts(to_bytes(again)))
    assert reply.status == 409
    [failed] = values(json.loads(reply.body), "00081198")
    assert values(failed, "00081155") == [first.SOPInstanceUID]
    assert values(failed, "00081197") == [0x0111]


@pytest.mark.parametrize(
    "other_patient",
    [{"patient_id": "OTHER-PATIENT"}, {"IssuerOfPatientID": "OTHER-ISSUER"}],
    ids=["another-patient-id", "same-id-another-issuer"],
)
def test_an_instance_that_would_move_its_study_to_another_patient_fails_with_0110(
    live: LiveServer, other_patient: dict[str, str]
) -> None:
    patient = f"P-{uuid.uuid4().hex[:8]}"
    first = make_dataset(patient_id=patient, IssuerOfPatientID="HOSP-A")
    moved = make_dataset(study_uid=first.StudyInstanceUID, **{"patient_id": patient,
                                                               "IssuerOfPatientID": "HOSP-A", **other_patient})
    assert post(live, dicom_parts(to_bytes(first))).status == 200
    reply = post(live, dicom_parts(to_bytes(moved)))
    assert reply.status == 409
    [failed] = values(json.loads(reply.body), "00081198")
    assert values(failed, "00081155") == [moved.SOPInstanceUID]
    assert values(failed, "00081197") == [0x0110]
    assert not indexed(live, moved.SOPInstanceUID)


def test_metadata_json_with_native_and_compressed_bulk_data(live: LiveServer) -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    study = generate_uid()
    native = make_dataset(study_uid=study, rows=8, columns=8)
    meta = {
        "00080016": {"vr": "UI", "Value": [native.SOPClassUID]},
        "00080018": {"vr": "UI", "Value": [native.SOPInstanceUID]},
        "0020000D": {"vr": "UI", "Value": [study]},
        "0020000E": {"vr": "UI", "Value": [native.SeriesInstanceUID]},
        "00100020": {"vr": "LO", "Value": ["STOW-JSON"]},
        "00280002": {"vr": "US", "Value": [1]},
        "00280004": {"vr": "CS", "Value": ["MONOCHROME2"]},
        "00280010": {"vr": "US", "Value": [8]},
        "00280011": {"vr": "US", "Value": [8]},
        "00280100": {"vr": "US", "Value": [16]},
        "00280101": {"vr": "US", "Value": [16]},
        "00280102": {"vr": "US", "Value": [15]},
        "00280103": {"vr": "US", "Value": [0]},
        "7FE00010": {"vr": "OW", "BulkDataURI": "urn:test:native"},
    }
    jpeg = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    frame = next(pydicom.encaps.generate_frames(jpeg.PixelData, number_of_frames=1))
    compressed = dict(meta)
    compressed.update({
        "00080018": {"vr": "UI", "Value": [generate_uid()]},
        "00280002": {"vr": "US", "Value": [3]},
        "00280004": {"vr": "CS", "Value": ["YBR_FULL_422"]},
        "00280006": {"vr": "US", "Value": [0]},
        "00280010": {"vr": "US", "Value": [jpeg.Rows]},
        "00280011": {"vr": "US", "Value": [jpeg.Columns]},
        "00280100": {"vr": "US", "Value": [8]},
        "00280101": {"vr": "US", "Value": [8]},
        "00280102": {"vr": "US", "Value": [7]},
        "7FE00010": {"vr": "OB", "BulkDataURI": "urn:test:jpeg"},
    })
    body = multipart([
        ({"Content-Type": JSON}, json.dumps([meta, compressed]).encode()),
        ({"Content-Type": "application/octet-stream", "Content-Location": "urn:test:native"}, native.PixelData),
        ({"Content-Type": "image/jpeg", "Content-Location": "urn:test:jpeg"}, frame),
    ])
    reply = post(live, body, 'multipart/related; type="application/dicom+json"; boundary=xdsi-test-boundary')
    assert reply.status == 200, reply.body
    archive = Archive.open(live.settings)
    try:
        with archive.sessions() as session:
            stored = index.find_instance(session, compressed["00080018"]["Value"][0])
            assert stored is not None and stored.transfer_syntax_uid == "1.2.840.10008.1.2.4.50"
            ds = pydicom.dcmread(archive.blobs.path(stored.blob_key))
            assert next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1)) == frame
            plain = index.find_instance(session, native.SOPInstanceUID)
            assert plain is not None
            assert pydicom.dcmread(archive.blobs.path(plain.blob_key)).PixelData == native.PixelData
    finally:
        archive.close()


def test_metadata_xml_with_pdf(live: LiveServer) -> None:
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    pdf = b"%PDF-1.4\n% xdsi test document\n%%EOF\n"
    document = f"""<?xml version="1.0" encoding="UTF-8"?>
<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM" xml:space="preserve">
 <DicomAttribute tag="00080016" vr="UI" keyword="SOPClassUID"><Value number="1">1.2.840.10008.5.1.4.1.1.104.1</Value></DicomAttribute>
 <DicomAttribute tag="00080018" vr="UI" keyword="SOPInstanceUID"><Value number="1">{sop}</Value></DicomAttribute>
 <DicomAttribute tag="00100010" vr="PN" keyword="PatientName"><PersonName number="1"><Alphabetic><FamilyName>Doc</FamilyName><GivenName>Pdf</GivenName></Alphabetic></PersonName></DicomAttribute>
 <DicomAttribute tag="0020000D" vr="UI" keyword="StudyInstanceUID"><Value number="1">{study}</Value></DicomAttribute>
 <DicomAttribute tag="0020000E" vr="UI" keyword="SeriesInstanceUID"><Value number="1">{series}</Value></DicomAttribute>
 <DicomAttribute tag="00420011" vr="OB" keyword="EncapsulatedDocument"><BulkData uri="pdf-1"/></DicomAttribute>
 <DicomAttribute tag="00420012" vr="LO" keyword="MIMETypeOfEncapsulatedDocument"><Value number="1">application/pdf</Value></DicomAttribute>
</NativeDicomModel>""".encode()
    body = multipart([
        ({"Content-Type": "application/dicom+xml"}, document),
        ({"Content-Type": "application/pdf", "Content-Location": "pdf-1"}, pdf),
    ])
    reply = post(live, body, 'multipart/related; type="application/dicom+xml"; boundary=xdsi-test-boundary')
    assert reply.status == 200, reply.body
    assert indexed(live, sop)


# Each case: (name, body, content type, extra headers, expected status, text the reason must contain).
def _bad_cases() -> list[tuple[str, Callable[[], tuple[bytes, str | None, dict[str, str]]], int, str]]:
    boundary = MULTIPART_DICOM.format("xdsi-test-boundary")
    return [
        ("no-content-type", lambda: (dicom_parts(make_instance()), None, {}), 415, "no Content-Type"),
        ("text-plain", lambda: (b"hello", "text/plain", {}), 415, "text/plain is not accepted"),
        ("no-boundary", lambda: (dicom_parts(make_instance()), 'multipart/related; type="application/dicom"', {}),
         415, "boundary"),
        ("boundary-too-long", lambda: (b"x", "multipart/related; boundary=" + "b" * 257, {}), 415,
         "257 characters long, more than the 256 accepted"),
        ("boundary-empty", lambda: (b"x", 'multipart/related; boundary=""', {}), 415, "boundary: it is empty"),
        ("boundary-bad-character", lambda: (b"x", 'multipart/related; boundary="a<b>"', {}), 415,
         "character '<' is not allowed"),
        ("unknown-part-type", lambda: (b"x", 'multipart/related; type="image/png"; boundary=a', {}), 415,
         "image/png"),
        ("gzip-encoding", lambda: (dicom_parts(make_instance()), boundary, {"Content-Encoding": "gzip"}), 415,
         "Content-Encoding"),
        ("body-without-boundary", lambda: (b"just some bytes\r\n", boundary, {}), 400, "boundary"),
        ("empty-body", lambda: (b"", boundary, {}), 400, "the body is empty"),
        ("huge-header-block", lambda: (b"--xdsi-test-boundary\r\nX-Pad: " + b"a" * 100_000 + b"\r\n\r\nx\r\n"
                                       b"--xdsi-test-boundary--\r\n", boundary, {}), 400, "header"),
        ("declared-length-over-limit", lambda: (b"x", boundary, {"Content-Length": str(5 << 30)}), 413,
         "exceeds the limit"),
        ("accept-not-offered", lambda: (dicom_parts(make_instance()), boundary, {"Accept": "text/html"}), 406,
         "text/html"),
        ("malformed-accept", lambda: (dicom_parts(make_instance()), boundary, {"Accept": "application/"}), 400, "media subtype"),
        ("json-metadata-not-json", lambda: (multipart([({"Content-Type": JSON}, b"{not json")]),
                                            'multipart/related; type="application/dicom+json"; '
                                            "boundary=xdsi-test-boundary", {}), 400, "JSON"),
        ("bulk-part-without-location", lambda: (
            multipart([({"Content-Type": JSON}, b"[]"), ({"Content-Type": "application/octet-stream"}, b"1234")]),
            'multipart/related; type="application/dicom+json"; boundary=xdsi-test-boundary', {}), 400,
         "Content-Location"),
        ("xml-with-doctype", lambda: (
            multipart([({"Content-Type": "application/dicom+xml"},
                        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><NativeDicomModel/>')]),
            'multipart/related; type="application/dicom+xml"; boundary=xdsi-test-boundary', {}), 409, "DOCTYPE"),
    ]


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_requests_get_the_standard_answer_and_store_nothing(live: LiveServer, case: tuple) -> None:
    _name, make, status, reason = case
    body, content_type, headers = make()
    before = _count(live)
    reply = post(live, body, content_type, **{k.replace("-", "_"): v for k, v in headers.items()})
    assert reply.status == status, reply.body
    said = reply.body.decode(errors="replace") + " ".join(reply.headers.get_all("Warning") or [])
    assert reason.lower() in said.lower()
    assert _count(live) == before
    assert live.request("GET", "/healthz").status == 200


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("not-dicom", lambda: b"GIF89a" + bytes(300), 0xC000),
        ("truncated", lambda: make_instance(rows=32, columns=32)[:-200], 0xC000),
        ("missing-sop-instance-uid", lambda: without("SOPInstanceUID"), 0xA900),
        ("unsupported-sop-class", lambda: make_instance(sop_class_uid="1.2.840.10008.1.3.10"), 0x0122),
        ("unsupported-transfer-syntax",
         lambda: make_instance().replace(b"1.2.840.10008.1.2.1\0", b"1.2.3.4.5.6.7.8.9.1\0", 1), 0xC122),
        ("uid-with-slash", lambda: with_raw_uid(0x00080018, b"1.2/3.4"), 0xA900),
        ("uid-traversal", lambda: with_raw_uid(0x0020000D, b"../../etc/passwd"), 0xA900),
    ],
)
def test_bad_instances_fail_with_their_failure_reason(live: LiveServer, name: str, make: Callable[[], bytes],
                                                      reason: int) -> None:
    before = _count(live)
    reply = post(live, dicom_parts(make()))
    assert reply.status == 409, reply.body
    answer = json.loads(reply.body)
    failures = values(answer, "00081198") + values(answer, "0008119A")
    assert [values(f, "00081197") for f in failures] == [[reason]]
    assert _count(live) == before
    assert live.request("GET", "/healthz").status == 200


def test_study_targeted_store_of_another_study_fails_with_c409(live: LiveServer) -> None:
    ds = make_dataset()
    reply = post(live, dicom_parts(to_bytes(ds)), path=f"/dicom-web/studies/{generate_uid()}")
    assert reply.status == 409
    [failed] = values(json.loads(reply.body), "00081198")
    assert values(failed, "00081197") == [0xC409]
    assert not indexed(live, ds.SOPInstanceUID)


def test_invalid_study_uid_in_the_path(live: LiveServer) -> None:
    reply = post(live, dicom_parts(make_instance()), path="/dicom-web/studies/1.2..3")
    assert reply.status == 400
    assert b"not a valid UID" in reply.body


def test_truncated_body_keeps_the_complete_parts(live: LiveServer) -> None:
    good = make_dataset()
    body = dicom_parts(to_bytes(good), make_instance(rows=64, columns=64))
    reply = post(live, body[: len(body) - 3000])
    assert reply.status == 202, reply.body
    answer = json.loads(reply.body)
    assert [values(i, "00081155")[0] for i in values(answer, "00081199")] == [good.SOPInstanceUID]
    assert values(answer, "0008119A")
    assert indexed(live, good.SOPInstanceUID)


def test_metadata_naming_a_missing_bulk_part_fails_that_instance(live: LiveServer) -> None:
    meta = {"00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.7"]},
            "00080018": {"vr": "UI", "Value": [generate_uid()]},
            "0020000D": {"vr": "UI", "Value": [generate_uid()]},
            "0020000E": {"vr": "UI", "Value": [generate_uid()]},
            "7FE00010": {"vr": "OB", "BulkDataURI": "urn:nowhere"}}
    body = multipart([({"Content-Type": JSON}, json.dumps([meta]).encode())])
    reply = post(live, body, 'multipart/related; type="application/dicom+json"; boundary=xdsi-test-boundary')
    assert reply.status == 409
    assert "urn:nowhere" in " ".join(reply.headers.get_all("Warning") or [])
    assert values(values(json.loads(reply.body), "00081198")[0], "00081197") == [0xC000]


def _jpeg_metadata() -> dict:
    return {"00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.7"]},
            "00080018": {"vr": "UI", "Value": [generate_uid()]},
            "0020000D": {"vr": "UI", "Value": [generate_uid()]},
            "0020000E": {"vr": "UI", "Value": [generate_uid()]},
            "00280002": {"vr": "US", "Value": [1]},
            "00280004": {"vr": "CS", "Value": ["MONOCHROME2"]},
            "00280010": {"vr": "US", "Value": [8]},
            "00280011": {"vr": "US", "Value": [8]},
            "00280100": {"vr": "US", "Value": [8]},
            "7FE00010": {"vr": "OB", "BulkDataURI": "urn:test:frame"}}


def _lossless_frame() -> bytes:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("JPEG-LL.dcm"))
    return next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))


def test_an_image_jpeg_part_without_transfer_syntax_is_stored_as_the_process_it_is(live: LiveServer) -> None:
    """PS3.18's default for image/jpeg is lossless SV1; a baseline frame (the other test) stays
    baseline, and a lossless frame is SV1 because its predictor says so."""
    meta = _jpeg_metadata()
    body = multipart([({"Content-Type": JSON}, json.dumps([meta]).encode()),
                      ({"Content-Type": "image/jpeg", "Content-Location": "urn:test:frame"}, _lossless_frame())])
    assert post(live, body, 'multipart/related; type="application/dicom+json"; boundary=xdsi-test-boundary').status == 200
    archive = Archive.open(live.settings)
    try:
        with archive.sessions() as session:
            stored = index.find_instance(session, meta["00080018"]["Value"][0])
            assert stored is not None and stored.transfer_syntax_uid == "1.2.840.10008.1.2.4.70"
    finally:
        archive.close()


@pytest.mark.parametrize(
    "part_type,data,reason",
    [
        ("image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.90", None, "is not one image/jpeg carries"),
        ("image/jpeg", b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "is not a JPEG codestream"),
    ],
    ids=["syntax-of-another-type", "not-a-jpeg"],
)
def test_an_image_jpeg_part_that_is_not_what_it_says_fails_its_instance(
    live: LiveServer, part_type: str, data: bytes | None, reason: str
) -> None:
    meta = _jpeg_metadata()
    body = multipart([({"Content-Type": JSON}, json.dumps([meta]).encode()),
                      ({"Content-Type": part_type, "Content-Location": "urn:test:frame"}, data or _lossless_frame())])
    reply = post(live, body, 'multipart/related; type="application/dicom+json"; boundary=xdsi-test-boundary')
    assert reply.status == 409
    assert reason in " ".join(reply.headers.get_all("Warning") or [])
    assert values(values(json.loads(reply.body), "00081198")[0], "00081197") == [0xC000]
    assert not indexed(live, meta["00080018"]["Value"][0])


def _count(live: LiveServer) -> int:
    archive = Archive.open(live.settings)
    try:
        with archive.sessions() as session:
            return index.counts(session)["instances"]
    finally:
        archive.close()


def test_store_stays_consistent(live: LiveServer) -> None:
    assert post(live, dicom_parts(make_instance(), make_instance())).status == 200
    archive = Archive.open(live.settings)
    try:
        assert assert_consistent(archive) >= 2
    finally:
        archive.close()


def test_coercion_is_reported_with_warning_reason_b000(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = LiveServer(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "store", workers=1,
                        coerce_issuer_of_patient_id="HOSP-A")
    try:
        reply = post(server, dicom_parts(make_instance(), make_instance(IssuerOfPatientID="X")))
        assert reply.status == 202, reply.body
        referenced = values(json.loads(reply.body), "00081199")
        assert sorted(values(item, "00081196") for item in referenced) == [[], [0xB000]]
    finally:
        server.stop()


def test_an_index_out_of_space_answers_503_and_keeps_nothing(tmp_path: Path) -> None:
    """SQLite's own page limit makes the index really full; the request then stores nothing."""
    from sqlalchemy import event

    from xdsi.app import create_app
    from xdsi.repository import db

    url = f"sqlite:///{tmp_path / 'xdsi.db'}"
    engine = db.create_engine_for(url)
    db.upgrade(engine)
    engine.dispose()
    archive = Archive.open(make_settings(url, tmp_path / "store"))
    archive.prepare()
    with archive.engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar()

    @event.listens_for(archive.engine, "connect")
    def _full(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    archive.engine.dispose()
    client = create_app(archive.settings, archive).test_client()
    reply = client.post("/dicom-web/studies", data=dicom_parts(*(make_instance(rows=64, columns=64) for _ in range(20))),
                        content_type=MULTIPART_DICOM.format("xdsi-test-boundary"))
    assert reply.status_code == 503, reply.data
    assert reply.headers["Retry-After"] and "out of space" in reply.headers["Warning"]
    [failure] = values(json.loads(reply.data), "0008119A")
    assert values(failure, "00081197") == [0xA700]  # PS3.18 Table I.2-2: out of resources
    assert assert_consistent(archive) == 0
    archive.close()


def test_json_metadata_numbers_are_stored_as_the_text_the_client_wrote(live: LiveServer) -> None:
    """PS3.18 F.2.3: a DS or IS may come as a JSON number; its token is the value, so 5.000000
    is stored as 5.000000 and 1.5e3 as 1.5e3, not as the text of a float."""
    import pydicom

    meta = _jpeg_metadata()
    del meta["7FE00010"]
    text = json.dumps([meta])[:-2] + ', "00180050": {"vr": "DS", "Value": [5.000000]}' \
        ', "00281050": {"vr": "DS", "Value": [1.5e3, 40]}, "00200013": {"vr": "IS", "Value": [7]}}]'
    body = multipart([({"Content-Type": JSON}, text.encode())])
    reply = post(live, body, 'multipart/related; type="application/dicom+json"; boundary=xdsi-test-boundary')
    assert reply.status == 200, reply.body
    study, series, sop = (meta[tag]["Value"][0] for tag in ("0020000D", "0020000E", "00080018"))
    stored = live.request("GET", f"/dicom-web/studies/{study}/series/{series}/instances/{sop}",
                          headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert stored.status == 200
    ds = pydicom.dcmread(io.BytesIO(stored.body))
    raw = {tag: ds.get_item(tag).value for tag in (0x00180050, 0x00281050, 0x00200013)}
    assert raw == {0x00180050: b"5.000000", 0x00281050: b"1.5e3\\40", 0x00200013: b"7 "}


def _store_response_items(reply: Reply) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(Failed SOP Sequence items, Other Failures Sequence items) as tag -> values, from JSON or XML."""
    if reply.header("Content-Type").startswith(JSON):
        answer = json.loads(reply.body)
        return ([{tag: element.get("Value") for tag, element in item.items()} for item in values(answer, tag)]
                for tag in ("00081198", "0008119A"))  # type: ignore[return-value]
    from lxml import etree

    namespace = {"d": "http://dicom.nema.org/PS3.19/models/NativeDICOM"}
    root = etree.fromstring(reply.body)

    def items(tag: str) -> list[dict[str, object]]:
        found = []
        for item in root.xpath(f"d:DicomAttribute[@tag='{tag}']/d:Item", namespaces=namespace):
            found.append({
                attribute.get("tag"): [value.text if attribute.get("vr") == "UI" else int(value.text)
                                       for value in attribute.xpath("d:Value", namespaces=namespace)]
                for attribute in item.xpath("d:DicomAttribute", namespaces=namespace)
            })
        return found

    return items("00081198"), items("0008119A")


@pytest.mark.parametrize("accept", [JSON, "application/dicom+xml"])
def test_every_refusal_of_a_known_instance_names_it_in_the_failed_sop_sequence(live: LiveServer, accept: str) -> None:
    """PS3.18 Table I.1-1: a Failed SOP Sequence item references the SOP Instance; a failure that
    knows no SOP Instance is an Other Failures Sequence item, with no UID made up."""
    import io

    import pydicom
    from pydicom.data import get_testdata_file

    study = generate_uid()
    earlier = make_dataset(study_uid=study)
    assert post(live, dicom_parts(to_bytes(earlier))).status == 200
    bad_series = with_raw_uid(0x0020000E, b"1.2/3.4")
    no_series = make_dataset(study_uid=study)
    del no_series.SeriesInstanceUID
    other_study = make_dataset()
    changed = make_dataset(study_uid=study, series_uid=earlier.SeriesInstanceUID, sop_uid=earlier.SOPInstanceUID,
                           InstanceNumber=7)
    not_storage = make_dataset(study_uid=study, sop_class_uid="1.2.840.10008.5.1.4.33")  # an N-CREATE class
    real_without_study = Path(get_testdata_file("JPEGLSNearLossless_08.dcm")).read_bytes()
    bad_sop_uid = with_raw_uid(0x00080018, b"1.2/3.4")
    sent = [bad_series, to_bytes(no_series), to_bytes(other_study), to_bytes(changed), to_bytes(not_storage),
            real_without_study, b"GIF89a" + bytes(300), without("SOPInstanceUID"), bad_sop_uid]

    def named(payload: bytes) -> tuple[str, str]:
        ds = pydicom.dcmread(io.BytesIO(payload))
        return str(ds.SOPClassUID), str(ds.SOPInstanceUID)

    expected_failed = sorted([
        (*named(sent[0]), 0xA900),  # a bad Series Instance UID
        (*named(sent[1]), 0xA900),  # Series Instance UID missing
        (*named(sent[2]), 0xC409),  # another study than the request's
        (*named(sent[3]), 0x0111),  # a different instance under a stored SOP Instance UID
        (*named(sent[4]), 0x0122),  # not a storage SOP class
        (*named(sent[5]), 0xA900),  # a pydicom file without Study and Series Instance UID
    ])
    for body in (dicom_parts(*sent), None):
        if body is None:  # the single-part route parses in the request thread, not in a parser process
            replies = [post(live, payload, "application/dicom", path=f"/dicom-web/studies/{study}", Accept=accept)
                       for payload in sent]
        else:
            replies = [post(live, body, path=f"/dicom-web/studies/{study}", Accept=accept)]
        failed, other = [], []
        for reply in replies:
            assert reply.status == 409, reply.body
            assert reply.header("Content-Type").startswith(accept)
            more_failed, more_other = _store_response_items(reply)
            failed += more_failed
            other += more_other
        assert sorted((item["00081150"][0], item["00081155"][0], item["00081197"][0])  # type: ignore[index]
                      for item in failed) == expected_failed
        assert all(set(item) == {"00081150", "00081155", "00081197"} for item in failed)
        # Not DICOM, no SOP Instance UID, an unusable SOP Instance UID: no UID is invented or echoed.
        assert sorted(item["00081197"][0] for item in other) == [0xA900, 0xA900, 0xC000]  # type: ignore[index]
        assert all(set(item) == {"00081197"} for item in other)


def test_metadata_refusals_name_the_instance_only_by_real_uids(live: LiveServer) -> None:
    def meta(sop_uid: str) -> dict:
        return {"00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.7"]},
                "00080018": {"vr": "UI", "Value": [sop_uid]},
                "0020000D": {"vr": "UI", "Value": [generate_uid()]},
                "0020000E": {"vr": "UI", "Value": [generate_uid()]},
                "7FE00010": {"vr": "OB", "BulkDataURI": "urn:nowhere"}}

    known = generate_uid()
    body = multipart([({"Content-Type": JSON}, json.dumps([meta(known), meta("not<a>uid")]).encode())])
    reply = post(live, body, 'multipart/related; type="application/dicom+json"; boundary=xdsi-test-boundary')
    assert reply.status == 409, reply.body
    failed, other = _store_response_items(reply)
    assert [(item["00081150"], item["00081155"]) for item in failed] == [(["1.2.840.10008.5.1.4.1.1.7"], [known])]
    assert other == [{"00081197": [0xC000]}]


def test_a_stored_instance_that_disagrees_with_its_study_is_told_so_in_a_warning_header(live: LiveServer) -> None:
    first = make_dataset(StudyDescription="Chest")
    later = make_dataset(study_uid=first.StudyInstanceUID, StudyDescription="Abdomen")
    assert post(live, dicom_parts(to_bytes(first))).status == 200
    reply = post(live, dicom_parts(to_bytes(later)))
    assert reply.status == 200, reply.body  # stored as sent; PS3.18 has no Warning Reason for it
    [said] = reply.headers.get_all("Warning") or []
    assert said.startswith(f"299 {live.root}: {later.SOPInstanceUID}: study study_description: ")
    assert "'Chest'" in said and "'Abdomen'" in said


def test_sixteen_clients_storing_into_one_new_study_at_once(live: LiveServer) -> None:
    """Concurrent senders of one study (a router's parallel associations): exact counts, one row per level.

    The live server runs two worker processes of eight threads: the requests meet in group
    commits inside each process and queue for the index between the two.
    """
    study, series, clients = generate_uid(), generate_uid(), 16
    datasets = [make_dataset(study_uid=study, series_uid=series, InstanceNumber=n + 1, Modality="MR",
                             sop_class_uid="1.2.840.10008.5.1.4.1.1.4") for n in range(clients)]
    bodies = [dicom_parts(to_bytes(ds)) for ds in datasets]
    start = threading.Barrier(clients)
    replies: dict[int, Reply] = {}

    def send(number: int) -> None:
        start.wait(30)
        replies[number] = post(live, bodies[number])

    threads = [threading.Thread(target=send, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(reply.status for reply in replies.values()) == [200] * clients
    for number, reply in replies.items():  # each answer names its own instance as stored
        [item] = values(json.loads(reply.body), "00081199")
        assert values(item, "00081155") == [datasets[number].SOPInstanceUID]

    [found] = json.loads(live.request("GET", f"/dicom-web/studies?StudyInstanceUID={study}",
                                      headers={"Accept": JSON}).body)
    assert values(found, "00201208") == [clients]  # NumberOfStudyRelatedInstances
    assert values(found, "00201206") == [1]  # NumberOfStudyRelatedSeries
    assert values(found, "00080061") == ["MR"]
    [found_series] = json.loads(live.request("GET", f"/dicom-web/studies/{study}/series",
                                             headers={"Accept": JSON}).body)
    assert values(found_series, "00201209") == [clients]  # NumberOfSeriesRelatedInstances
    metadata = json.loads(live.request("GET", f"/dicom-web/studies/{study}/metadata",
                                       headers={"Accept": JSON}).body)
    assert sorted(values(item, "00080018")[0] for item in metadata) == sorted(ds.SOPInstanceUID for ds in datasets)
    archive = Archive.open(live.settings)
    try:
        with archive.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Study).where(Study.study_uid == study)) == 1
            assert session.scalar(select(func.count()).select_from(Series).where(Series.series_uid == series)) == 1
            assert session.scalar(select(func.count()).select_from(Instance).join(Series)
                                  .where(Series.series_uid == series)) == clients
    finally:
        archive.close()
