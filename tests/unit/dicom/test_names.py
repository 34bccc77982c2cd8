"""Person Name search keys."""

from __future__ import annotations

import pytest

from xdsi.dicom.names import casefold, fold, person_name_keys, soundex


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Müller", "muller"), ("MÜLLER", "muller"), ("Ødegård", "odegard"), ("Núñez", "nunez"),
     ("STRAßE", "strasse"), ("  Doe ", "doe"), ("ＡＢＣ", "abc")],
)
def test_fold_removes_case_accents_and_width(text: str, expected: str) -> None:
    assert fold(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("MÜLLER", "müller"), ("ｍüｌｌｅｒ", "müller"), ("STRAßE", "strasse"), ("やまだ", "やまだ"), (" Doe ", "doe")],
)
def test_casefold_keeps_accents(text: str, expected: str) -> None:
    assert casefold(text) == expected


@pytest.mark.parametrize(
    ("name", "code"),
    [("Robert", "6163"), ("Rupert", "6163"), ("Rubin", "6150"), ("Ashcraft", "0261"),
     ("Tymczak", "3522"), ("Pfister", "1236"), ("Honeyman", "0555"), ("Müller", "5460"), ("Miller", "5460"),
     ("Collins", "2452"), ("Kollins", "2452"), ("", ""), ("山田", "")],
)
def test_soundex_follows_the_published_examples_with_the_first_letter_coded(name: str, code: str) -> None:
    assert soundex(name) == code


def test_person_name_keys_split_groups_and_components() -> None:
    keys = person_name_keys("Yamada^Tarou=山田^太郎=やまだ^たろう")
    assert (keys.family, keys.given, keys.middle) == ("yamada", "tarou", "")
    assert keys.ideographic == "山田^太郎"
    assert keys.phonetic == "やまだ^たろう"
    assert keys.family_soundex == "0530"
    assert keys.folded == "yamada^tarou"


def test_accents_are_kept_for_literal_matching_and_folded_for_fuzzy() -> None:
    keys = person_name_keys("Müller^Jürgen")
    assert (keys.family, keys.alphabetic, keys.folded) == ("müller", "müller^jürgen", "muller^jurgen")


def test_person_name_keys_of_empty_value() -> None:
    keys = person_name_keys("")
    assert keys.family == keys.given == keys.family_soundex == ""


def test_all_five_components() -> None:
    keys = person_name_keys("Adams^John Robert Quincy^Q^Rev.^B.A. M.Div.")
    assert (keys.family, keys.given, keys.middle, keys.prefix, keys.suffix) == (
        "adams", "john robert quincy", "q", "rev.", "b.a. m.div.")
