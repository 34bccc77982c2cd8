"""Person Name (PN) search keys: case-folded components, an accent-folded form, Soundex keys.

PS3.5 6.2: a PN value holds up to three component groups (alphabetic, ideographic,
phonetic) separated by '=', each with five components separated by '^'. PS3.4 C.2.2.2.1
lets PN matching ignore "some or all aspects of case, … accent": literal matching here
ignores case and character width only (``casefold``: NFKC, then Unicode case folding), so
'MÜLLER' finds 'Müller' but 'Muller' does not. Fuzzy matching also ignores accents (``fold``)
and compares Soundex keys (American Soundex with the first letter coded as a digit too, on
the accent-folded letters) of the family and given names. Each key has its own indexed column,
so a B-tree serves exact and prefix matches.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

COMPONENTS = ("family", "given", "middle", "prefix", "suffix")
# Letters that compatibility decomposition leaves whole but readers treat as accented.
_FOLD = str.maketrans({"ø": "o", "đ": "d", "ł": "l", "æ": "ae", "œ": "oe", "þ": "th", "ð": "d", "ı": "i"})
_SOUNDEX_CODES = {
    **dict.fromkeys("bfpv", "1"),
    **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"),
    "l": "4",
    **dict.fromkeys("mn", "5"),
    "r": "6",
}


def casefold(text: str) -> str:
    """Fold case and width, keep accents: 'MÜLLER' and 'ｍüｌｌｅｒ' become 'müller'."""
    return unicodedata.normalize("NFKC", text).casefold().strip()


def fold(text: str) -> str:
    """Fold case, width and accents so 'Müller', 'MULLER' and 'ｍｕｌｌｅｒ' compare equal.

    Accents are dropped only from alphabetic scripts (Latin, Greek, Cyrillic); elsewhere a
    combining mark changes the letter (Japanese だ is not た) and is kept.
    """
    kept = []
    base = ""
    for ch in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(ch):
            if not _in_alphabetic_script(base):
                kept.append(ch)
        else:
            base = ch
            kept.append(ch)
    return unicodedata.normalize("NFC", "".join(kept)).casefold().translate(_FOLD).strip()


def _in_alphabetic_script(ch: str) -> bool:
    return bool(ch) and ord(ch) < 0x0530  # Basic Latin through Cyrillic Supplement


def soundex(text: str) -> str:
    """Soundex of the accent-folded Latin letters, with the first letter coded too ('' if none).

    Classic American Soundex keeps the first letter, so 'Kollins' and 'Collins' (K452, C452)
    never meet; coding it as a digit like the rest (2452 for both) keeps the phonetic idea
    and lets a misheard first letter match. Vowels, h, w and y code as 0 in first position.
    """
    letters = [ch for ch in fold(text) if "a" <= ch <= "z"]
    if not letters:
        return ""
    previous = _SOUNDEX_CODES.get(letters[0], "")
    code = [previous or "0"]
    for ch in letters[1:]:
        digit = _SOUNDEX_CODES.get(ch, "")
        if digit and digit != previous:
            code.append(digit)
        if ch not in "hw":  # h and w do not separate letters with the same code
            previous = digit
    return ("".join(code) + "000")[:4]


@dataclass(frozen=True)
class PersonNameKeys:
    """The search columns of one PN value."""

    alphabetic: str = ""  # the whole alphabetic group, for patterns that span components
    family: str = ""
    given: str = ""
    middle: str = ""
    prefix: str = ""
    suffix: str = ""
    ideographic: str = ""
    phonetic: str = ""
    folded: str = ""  # the alphabetic group without accents, for fuzzy patterns
    family_soundex: str = ""
    given_soundex: str = ""


def split_groups(value: str) -> list[list[str]]:
    """Three groups of five components each, missing ones empty."""
    groups = (value.split("=") + ["", ""])[:3]
    return [(group.split("^") + [""] * 5)[:5] for group in groups]


def person_name_keys(value: str | None) -> PersonNameKeys:
    """Search keys for a PN value as decoded by pydicom (groups joined by '=')."""
    if not value:
        return PersonNameKeys()
    alphabetic, ideographic, phonetic = split_groups(value)
    parts = {name: casefold(component) for name, component in zip(COMPONENTS, alphabetic, strict=True)}
    whole = "^".join(alphabetic).rstrip("^")
    return PersonNameKeys(
        alphabetic=casefold(whole),
        **parts,
        ideographic=casefold("^".join(ideographic).rstrip("^")),
        phonetic=casefold("^".join(phonetic).rstrip("^")),
        folded=fold(whole),
        family_soundex=soundex(alphabetic[0]),
        given_soundex=soundex(alphabetic[1]),
    )
