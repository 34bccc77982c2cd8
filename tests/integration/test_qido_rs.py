"""QIDO-RS against a running server: every matching type, paging, media types and bad input."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote, urlencode

import pytest

from tests.dicomfiles import make_dataset, to_bytes
from tests.integration.test_stow_rs import dicom_parts, post
from tests.live import LiveServer, Reply

JSON = "application/dicom+json"


def get(live: LiveServer, path: str, accept: str = JSON) -> Reply:
    return live.request("GET", path, headers={"Accept": accept})


def uids(reply: Reply, tag: str = "0020000D") -> set[str]:
    assert reply.status == 200, reply.body
    return {obj[tag]["Value"][0] for obj in json.loads(reply.body)}


@pytest.fixture
def clinic(live: LiveServer) -> dict[str, object]:
    """Three patients, four studies, with a unique accession prefix so searches see only them."""
    tag = uuid.uuid4().hex[:8].upper()
    pid = {name: f"{name}-{tag}" for name in ("muller", "collins", "yamada")}
    studies = {
        "muller-ct": make_dataset(patient_id=pid["muller"], patient_name="Müller^Jürgen", modality="CT",
                                  StudyDate="20240105", StudyTime="083000", AccessionNumber=f"{tag}-1"),
        "muller-mr": make_dataset(patient_id=pid["muller"], patient_name="Müller^Jürgen", modality="MR",
                                  sop_class_uid="1.2.840.10008.5.1.4.1.1.4", StudyDate="20240320",
                                  StudyTime="141500", AccessionNumber=f"{tag}-2"),
        "collins": make_dataset(patient_id=pid["collins"], patient_name="Collins^Jennifer", modality="CT",
                                StudyDate="20231231", StudyTime="235959", AccessionNumber=f"{tag}-3",
                                TimezoneOffsetFromUTC="-0500"),
        "yamada": make_dataset(patient_id=pid["yamada"], patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう",
                               modality="US", StudyDate="20220610", StudyTime="120000",
                               AccessionNumber=f"{tag}-4", ReferringPhysicianName="Smythe^Anne",
                               ImageType=["ORIGINAL", "PRIMARY"], IssuerOfPatientID="HOSP-A"),
    }
    extra = make_dataset(study_uid=studies["muller-ct"].StudyInstanceUID, patient_id=pid["muller"],
                         patient_name="Müller^Jürgen", modality="SR", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.11",
                         StudyDate="20240105", StudyTime="083000", AccessionNumber=f"{tag}-1", InstanceNumber=2)
    from pydicom.dataset import Dataset

    item = Dataset()
    item.RequestedProcedureID = f"RP-{tag}"
    item.ScheduledProcedureStepID = f"SPS-{tag}"
    studies["muller-ct"].RequestAttributesSequence = [item]
    reply = post(live, dicom_parts(*(to_bytes(ds) for ds in [*studies.values(), extra])))
    assert reply.status == 200, reply.body
    return {"tag": tag, "pid": pid, "studies": studies, "extra": extra}


def study_uids(clinic: dict, *names: str) -> set[str]:
    return {clinic["studies"][n].StudyInstanceUID for n in names}  # type: ignore[index]


def search(live: LiveServer, clinic: dict, **params: str) -> set[str]:
    query = urlencode({"AccessionNumber": f"{clinic['tag']}-*", **params})
    return uids(get(live, f"/dicom-web/studies?{query}"))


def test_single_value_and_universal(live: LiveServer, clinic: dict) -> None:
    assert search(live, clinic, PatientID=clinic["pid"]["collins"]) == study_uids(clinic, "collins")
    assert search(live, clinic) == study_uids(clinic, "muller-ct", "muller-mr", "collins", "yamada")
    assert search(live, clinic, PatientID="") == search(live, clinic)


def test_uid_lists_with_comma_or_backslash(live: LiveServer, clinic: dict) -> None:
    wanted = study_uids(clinic, "collins", "yamada")
    assert search(live, clinic, StudyInstanceUID=",".join(wanted)) == wanted
    assert search(live, clinic, StudyInstanceUID="\\".join(wanted)) == wanted


def test_wildcards(live: LiveServer, clinic: dict) -> None:
    assert search(live, clinic, PatientID=f"coll?ns-{clinic['tag']}") == study_uids(clinic, "collins")
    assert search(live, clinic, AccessionNumber=f"{clinic['tag']}-?") == study_uids(
        clinic, "muller-ct", "muller-mr", "collins", "yamada")


def test_person_names_case_insensitive_by_component(live: LiveServer, clinic: dict) -> None:
    assert search(live, clinic, PatientName="collins") == study_uids(clinic, "collins")
    assert search(live, clinic, PatientName="COLL*") == study_uids(clinic, "collins")
    assert search(live, clinic, PatientName="collins^jennifer") == study_uids(clinic, "collins")
    assert search(live, clinic, PatientName="*^jenn*") == study_uids(clinic, "collins")
    assert search(live, clinic, PatientName="jennifer") == set()
    assert search(live, clinic, PatientName="*jenn*") == study_uids(clinic, "collins")
    assert search(live, clinic, PatientName="MÜLLER") == study_uids(clinic, "muller-ct", "muller-mr")
    assert search(live, clinic, PatientName="Muller") == set()  # literal matching keeps accents
    assert search(live, clinic, PatientName="=山田*") == study_uids(clinic, "yamada")
    assert search(live, clinic, ReferringPhysicianName="smythe") == study_uids(clinic, "yamada")


def test_percent_encoded_values_are_decoded(live: LiveServer, clinic: dict) -> None:
    path = f"/dicom-web/studies?AccessionNumber={clinic['tag']}-%2A&PatientName=M%C3%BCller%2A"
    assert uids(get(live, path)) == study_uids(clinic, "muller-ct", "muller-mr")


def test_fuzzy_matching(live: LiveServer, clinic: dict) -> None:
    assert search(live, clinic, PatientName="Muller", fuzzymatching="true") == study_uids(
        clinic, "muller-ct", "muller-mr")
    assert search(live, clinic, PatientName="Kollins", fuzzymatching="true") == study_uids(clinic, "collins")
    assert search(live, clinic, PatientName="Mul*", fuzzymatching="true") == study_uids(
        clinic, "muller-ct", "muller-mr")
    assert search(live, clinic, PatientName="Kollins", fuzzymatching="false") == set()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("20240101-20240331", ("muller-ct", "muller-mr")), ("2024", ("muller-ct", "muller-mr")),
     ("-20231231", ("collins", "yamada")), ("20231231-", ("collins", "muller-ct", "muller-mr")),
     ("20240105", ("muller-ct",)), ("202403", ("muller-mr",))],
)
def test_date_ranges(live: LiveServer, clinic: dict, value: str, expected: tuple[str, ...]) -> None:
    assert search(live, clinic, StudyDate=value) == study_uids(clinic, *expected)


def test_time_and_combined_date_time_ranges(live: LiveServer, clinic: dict) -> None:
    assert search(live, clinic, StudyTime="08-12") == study_uids(clinic, "muller-ct", "yamada")
    assert search(live, clinic, StudyTime="1415") == study_uids(clinic, "muller-mr")


def test_timezone_offset_adjusts_date_matching(live: LiveServer, clinic: dict) -> None:
    # Collins: 2023-12-31 23:59:59 at -0500 is 2024-01-01 04:59:59 UTC, i.e. 2024-01-01 in +0100.
    assert search(live, clinic, StudyDate="20240101", TimezoneOffsetFromUTC="+0100") == study_uids(clinic, "collins")
    assert search(live, clinic, StudyDate="20231231", TimezoneOffsetFromUTC="-0500") == study_uids(clinic, "collins")


def test_modalities_and_sop_classes_in_study(live: LiveServer, clinic: dict) -> None:
    assert search(live, clinic, ModalitiesInStudy="SR") == study_uids(clinic, "muller-ct")
    assert search(live, clinic, ModalitiesInStudy="MR,US") == study_uids(clinic, "muller-mr", "yamada")
    assert search(live, clinic, SOPClassesInStudy="1.2.840.10008.5.1.4.1.1.4") == study_uids(clinic, "muller-mr")
    [study] = json.loads(get(live, f"/dicom-web/studies?AccessionNumber={clinic['tag']}-1").body)
    assert study["00080061"]["Value"] == ["CT", "SR"]
    assert study["00201206"]["Value"] == [2] and study["00201208"]["Value"] == [2]


def test_sequence_matching_by_keyword_and_tag(live: LiveServer, clinic: dict) -> None:
    tag = clinic["tag"]
    by_keyword = uids(get(live, f"/dicom-web/series?RequestAttributesSequence.ScheduledProcedureStepID=SPS-{tag}"),
                      "0020000E")
    by_tag = uids(get(live, f"/dicom-web/series?00400275.00401001=RP-{tag}"), "0020000E")
    assert by_keyword == by_tag == {clinic["studies"]["muller-ct"].SeriesInstanceUID}  # type: ignore[index]
    [series] = json.loads(get(live, f"/dicom-web/series?00400275.00401001=RP-{tag}").body)
    assert series["00400275"]["Value"][0]["00400009"]["Value"] == [f"SPS-{tag}"]


def test_levels_and_nested_resources(live: LiveServer, clinic: dict) -> None:
    muller = clinic["studies"]["muller-ct"]  # type: ignore[index]
    extra = clinic["extra"]
    series = uids(get(live, f"/dicom-web/studies/{muller.StudyInstanceUID}/series"), "0020000E")
    assert series == {muller.SeriesInstanceUID, extra.SeriesInstanceUID}
    instances = uids(get(live, f"/dicom-web/studies/{muller.StudyInstanceUID}/instances"), "00080018")
    assert instances == {muller.SOPInstanceUID, extra.SOPInstanceUID}
    path = f"/dicom-web/studies/{muller.StudyInstanceUID}/series/{extra.SeriesInstanceUID}/instances"
    [instance] = json.loads(get(live, path).body)
    assert instance["00080018"]["Value"] == [extra.SOPInstanceUID]
    assert instance["00081190"]["Value"] == [f"{live.base}{path}/{extra.SOPInstanceUID}"]
    assert uids(get(live, f"/dicom-web/instances?SOPClassUID=1.2.840.10008.5.1.4.1.1.88.11&"
                          f"AccessionNumber={clinic['tag']}-1"), "00080018") == {extra.SOPInstanceUID}
    assert uids(get(live, f"/dicom-web/series?Modality=US&AccessionNumber={clinic['tag']}-*"), "0020000E") == {
        clinic["studies"]["yamada"].SeriesInstanceUID}  # type: ignore[index]


def test_return_attributes_and_includefield(live: LiveServer, clinic: dict) -> None:
    path = f"/dicom-web/studies?AccessionNumber={clinic['tag']}-4"
    [plain] = json.loads(get(live, path).body)
    for tag in ("00080020", "00080030", "00080050", "00080061", "00080090", "00100010", "00100020", "00100030",
                "00100040", "0020000D", "00200010", "00201206", "00201208", "00081190"):
        assert tag in plain
    assert plain["00100010"]["Value"] == [{"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎",
                                           "Phonetic": "やまだ^たろう"}]
    assert "00081030" not in plain
    [more] = json.loads(get(live, path + "&includefield=StudyDescription,00100021&includefield=ImageType").body)
    assert more["00081030"]["Value"] == ["Test study"]
    # Attributes the index does not hold come from the study's stored metadata.
    assert more["00080008"] == {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY"]}
    assert more["00100021"]["Value"] == ["HOSP-A"]
    [everything] = json.loads(get(live, path + "&includefield=all").body)
    assert "00080062" in everything and "00081030" in everything


def test_limit_offset_and_truncation_warning(live: LiveServer, clinic: dict) -> None:
    base = f"/dicom-web/studies?AccessionNumber={clinic['tag']}-*&orderby=StudyDate"
    pages = [json.loads(get(live, f"{base}&limit=3&offset={offset}").body) for offset in (0, 3)]
    seen = [study["0020000D"]["Value"][0] for page in pages for study in page]
    assert len(seen) == 4 and set(seen) == study_uids(clinic, "muller-ct", "muller-mr", "collins", "yamada")
    dates = [study["00080020"]["Value"][0] for study in pages[0]]
    assert dates == sorted(dates)
    first = get(live, f"{base}&limit=3")
    assert any("There are 1 additional results" in w for w in first.headers.get_all("Warning") or [])
    newest = json.loads(get(live, f"/dicom-web/studies?AccessionNumber={clinic['tag']}-*&orderby=-StudyDate&limit=1").body)
    assert newest[0]["00080020"]["Value"] == ["20240320"]


def test_empty_result_is_an_empty_array(live: LiveServer) -> None:
    reply = get(live, f"/dicom-web/studies?PatientID=nobody-{uuid.uuid4().hex}")
    assert reply.status == 200 and json.loads(reply.body) == []


def test_xml_answer_is_multipart_of_native_dicom_model(live: LiveServer, clinic: dict) -> None:
    reply = get(live, f"/dicom-web/studies?AccessionNumber={clinic['tag']}-*",
                'multipart/related; type="application/dicom+xml"')
    assert reply.status == 200
    assert reply.header("Content-Type").startswith('multipart/related; type="application/dicom+xml"')
    assert reply.body.count(b"<NativeDicomModel") == 4


def test_json_alias_and_quoted_accept(live: LiveServer, clinic: dict) -> None:
    path = f"/dicom-web/studies?AccessionNumber={clinic['tag']}-*"
    assert get(live, path, "application/json").header("Content-Type").startswith("application/json")
    assert get(live, path, "*/*").header("Content-Type").startswith(JSON)


def test_the_accept_query_parameter_takes_precedence_over_the_header(live: LiveServer, clinic: dict) -> None:
    """PS3.18 8.3.3.1: a browser link cannot set headers; ``accept`` is not a search key."""
    path = f"/dicom-web/studies?AccessionNumber={clinic['tag']}-*"
    xml = get(live, path + "&accept=" + quote('multipart/related; type="application/dicom+xml"'), JSON)
    assert xml.status == 200, xml.body
    assert xml.header("Content-Type").startswith('multipart/related; type="application/dicom+xml"')
    assert xml.body.count(b"<NativeDicomModel") == 4
    plain = get(live, path + "&accept=application/json", "*/*")
    assert plain.header("Content-Type").startswith("application/json") and len(json.loads(plain.body)) == 4
    assert get(live, path + "&accept=image/png").status == 406


BAD_QUERIES = [
    ("unknown-keyword", "/dicom-web/studies?PatientNam=x", "neither a DICOM keyword"),
    ("unsupported-key", "/dicom-web/studies?BodyPartExamined=CHEST", "not a search key"),
    ("bad-tag", "/dicom-web/studies?0010002=x", "neither a DICOM keyword"),
    ("invalid-date", "/dicom-web/studies?StudyDate=20241301", "not a valid date"),
    ("date-with-slashes", "/dicom-web/studies?StudyDate=2024/01/01", "not a DICOM date"),
    ("reversed-range", "/dicom-web/studies?StudyDate=20240301-20240101", "ends before it starts"),
    ("lone-hyphen", "/dicom-web/studies?StudyDate=-", "at least one bound"),
    ("invalid-time", "/dicom-web/studies?StudyTime=2561", "not a valid time"),
    ("limit-text", "/dicom-web/studies?limit=ten", "not a non-negative integer"),
    ("limit-zero", "/dicom-web/studies?limit=0", "at least 1"),
    ("offset-negative", "/dicom-web/studies?offset=-1", "not a non-negative integer"),
    ("offset-huge", "/dicom-web/studies?offset=999999999", "beyond the maximum"),
    ("fuzzy-maybe", "/dicom-web/studies?fuzzymatching=maybe", "neither true nor false"),
    ("includefield-unknown", "/dicom-web/studies?includefield=NotAKeyword", "neither a DICOM keyword"),
    ("series-key-in-study-search", "/dicom-web/studies?Modality=CT", "series-level attribute"),
    ("instance-key-in-series-search", "/dicom-web/series?SOPInstanceUID=1.2.3", "instance-level attribute"),
    ("uid-with-letters", "/dicom-web/studies?StudyInstanceUID=1.2.abc", "not a valid UID"),
    ("uid-wildcard", "/dicom-web/studies?StudyInstanceUID=1.2.*", "not a valid UID"),
    ("invalid-uid-in-path", "/dicom-web/studies/1..2/series", "not a valid UID"),
    ("dots-in-path", "/dicom-web/studies/../series", "not a valid UID"),
    ("timezone-out-of-range", "/dicom-web/studies?TimezoneOffsetFromUTC=%2B2500", "out of range"),
    ("sequence-path-on-plain-attribute", "/dicom-web/series?Modality.CodeValue=CT", "not a sequence"),
    ("sequence-without-item-key", "/dicom-web/series?RequestAttributesSequence=x", "match a key inside"),
    ("orderby-unknown", "/dicom-web/studies?orderby=Nothing", "neither a DICOM keyword"),
    ("person-name-four-groups", "/dicom-web/studies?PatientName=a%3Db%3Dc%3Dd", "at most three"),
    ("value-too-long", "/dicom-web/studies?PatientID=" + "x" * 300, "longer than"),
    ("list-with-wildcard", "/dicom-web/studies?PatientID=a*%5Cb", "wildcards cannot be combined"),
]


@pytest.mark.parametrize(("name", "path", "reason"), BAD_QUERIES, ids=[case[0] for case in BAD_QUERIES])
def test_bad_queries_are_400_with_a_reason(live: LiveServer, name: str, path: str, reason: str) -> None:
    reply = get(live, path)
    assert reply.status == 400, reply.body
    assert reply.header("Content-Type").startswith("text/plain")
    assert reason in reply.body.decode()
    assert live.request("GET", "/healthz").status == 200


@pytest.mark.parametrize(("accept", "status"), [("image/png", 406), ("application/", 400),
                                                 ('multipart/related; type="application/dicom"', 406)])
def test_unacceptable_or_malformed_accept(live: LiveServer, accept: str, status: int) -> None:
    assert get(live, "/dicom-web/studies?limit=1", accept).status == status


def test_encoded_slashes_in_a_uid_reach_no_resource(live: LiveServer) -> None:
    assert get(live, "/dicom-web/studies/..%2F..%2Fetc%2Fpasswd/series").status == 404


def test_sql_metacharacters_are_just_values(live: LiveServer) -> None:
    for value in ("' OR 1=1 --", "%", "_", "\\\\", "x'); DROP TABLE study; --"):
        reply = get(live, f"/dicom-web/studies?PatientID={quote(value)}")
        assert reply.status == 200 and json.loads(reply.body) == []
    assert get(live, "/dicom-web/studies?limit=1").status == 200


def test_cors_is_off_by_default(live: LiveServer) -> None:
    reply = live.request("OPTIONS", "/dicom-web/studies", headers={
        "Origin": "http://viewer.example", "Access-Control-Request-Method": "GET"})
    assert "Access-Control-Allow-Origin" not in reply.headers


class _Token(str):
    """A JSON number's exact text, as read by ``json.loads(parse_float=..., parse_int=...)``."""


def _tokens(reply: Reply) -> list[dict]:
    assert reply.status == 200, reply.body
    return json.loads(reply.body, parse_float=_Token, parse_int=_Token)


def _number(obj: dict, tag: str) -> str:
    """The one value of ``tag``, which must have been sent as a JSON number."""
    [value] = obj[tag]["Value"]
    assert isinstance(value, _Token), f"{tag} sent as {value!r}"
    return str(value)


def test_is_and_ds_values_are_json_numbers_keeping_their_text(live: LiveServer) -> None:
    """PS3.18 F.2.3: IS and DS go out as numbers (clients that read them as numbers refuse strings);
    the token is the stored text, so 5.000000 is not rounded to 5.0, in JSON or in XML."""
    patient = f"NUM-{uuid.uuid4().hex[:8]}"
    ds = make_dataset(patient_id=patient, SeriesNumber="7", InstanceNumber="12",
                      SliceThickness="5.000000", PixelSpacing=["0.50", "+1"], KVP="1.5e2")
    other = make_dataset(patient_id=patient, study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID,
                         SeriesNumber="7", InstanceNumber="13")
    assert post(live, dicom_parts(to_bytes(ds), to_bytes(other))).status == 200
    [study] = _tokens(get(live, f"/dicom-web/studies?StudyInstanceUID={ds.StudyInstanceUID}"))
    assert (_number(study, "00201206"), _number(study, "00201208")) == ("1", "2")
    [series] = _tokens(get(live, f"/dicom-web/studies/{ds.StudyInstanceUID}/series"))
    assert (_number(series, "00200011"), _number(series, "00201209")) == ("7", "2")
    path = (f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances"
            f"?InstanceNumber=12&includefield=SliceThickness,PixelSpacing,KVP")
    reply = get(live, path)
    [instance] = _tokens(reply)
    assert _number(instance, "00200013") == "12"
    assert (_number(instance, "00180050"), _number(instance, "00180060")) == ("5.000000", "1.5e2")
    assert instance["00280030"]["Value"] == ["0.50", "+1"]
    assert [type(v) for v in instance["00280030"]["Value"]] == [_Token, str]  # +1 is no JSON number
    assert b'"00180050":{"vr":"DS","Value":[5.000000]}' in reply.body
    xml = get(live, path, 'multipart/related; type="application/dicom+xml"')
    assert xml.status == 200
    assert b'tag="00180050" vr="DS" keyword="SliceThickness"><Value number="1">5.000000</Value>' in xml.body
    assert b'<Value number="1">0.50</Value><Value number="2">+1</Value>' in xml.body
    assert b'tag="00200013" vr="IS" keyword="InstanceNumber"><Value number="1">12</Value>' in xml.body
