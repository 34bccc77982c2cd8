"""Person Name search keys."""

from __future__ import annotations

import pytest

from xdsi.dicom.names import normalize, person_name_keys, soundex


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Müller", "muller"), ("MÜLLER", "muller"), ("Ødegård", "odegard"), ("Núñez", "nunez"),
     ("STRAßE", "strasse"), ("  Doe ", "doe"), ("ＡＢＣ", "abc")],
)
def test_normalize_folds_case_accents_and_width(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("name", "code"),
    [("Robert", "R163"), ("Rupert", "R163"), ("Rubin", "R150"), ("Ashcraft", "A261"),
     ("Tymczak", "T522"), ("Pfister", "P236"), ("Honeyman", "H555"), ("Müller", "M460"), ("", ""), ("山田", "")],
)
def test_soundex_matches_the_published_examples(name: str, code: str) -> None:
    assert soundex(name) == code


def test_person_name_keys_split_groups_and_components() -> None:
    keys = person_name_keys("Yamada^Tarou=山田^太郎=やまだ^たろう")
    assert (keys.family, keys.given, keys.middle) == ("yamada", "tarou", "")
    assert keys.ideographic == "山田^太郎"
    assert keys.phonetic == "やまだ^たろう"
    assert keys.family_soundex == "Y530"


def test_person_name_keys_of_empty_value() -> None:
    keys = person_name_keys("")
    assert keys.family == keys.given == keys.family_soundex == ""


def test_all_five_components() -> None:
    keys = person_name_keys("Adams^John Robert Quincy^Q^Rev.^B.A. M.Div.")
    assert (keys.family, keys.given, keys.middle, keys.prefix, keys.suffix) == (
        "adams", "john robert quincy", "q", "rev.", "b.a. m.div.")
