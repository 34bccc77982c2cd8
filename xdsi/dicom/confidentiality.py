"""PS3.15 Annex E Basic Application Level Confidentiality Profile, table-driven, applied to a pydicom data set.

The table is PS3.15 Table E.1-1's Basic Profile column. Where an action depends on the IOD
(X/Z, X/D, Z/D, X/Z/D, X/Z/U*), xdsi does not know each attribute's type in every IOD, so it
takes the choice that keeps any IOD conformant: X/Z is Z (a Type 2 stays present, empty), X/D,
Z/D and X/Z/D are D (a Type 1 keeps a dummy value), X/Z/U* is U* (a reference sequence stays, its
UIDs replaced). Attributes the table does not list are kept (E.1.1), in nested items too; private
attributes (odd groups), curves (50xx) and overlay data and comments (60xx,3000 / 60xx,4000) are
removed. UIDs are replaced by ``2.25`` UIDs derived from a key, so one key maps each UID the same
way in every instance it is applied to: references between the instances stay consistent.

Why not dicognito: it replaces names and IDs with generated look-alikes, shifts dates, and keeps
descriptions, comments and private attributes, which Table E.1-1 removes; it does not implement
the table.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

DEIDENTIFICATION_METHOD = "DICOM PS3.15 E.1 Basic Application Level Confidentiality Profile"
# PS3.16 CID 7050: the code of the profile applied.
BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")

# PS3.15 Table E.1-1, Basic Profile column: tag (GGGGEEEE) and action. Repeating groups are
# handled in ``action_for``.
_TABLE_TEXT = """
00001000 X  00001001 U  00020003 U  00041511 U  00080014 U  00080015 X  00080018 U  00080020 Z
00080021 X/D  00080022 X/Z  00080023 Z/D  00080024 X  00080025 X  0008002A X/Z/D  00080030 Z
00080031 X/D  00080032 X/Z  00080033 Z/D  00080034 X  00080035 X  00080050 Z  00080058 U
00080080 X/Z/D  00080081 X  00080082 X/Z/D  00080090 Z  00080092 X  00080094 X  00080096 X
0008009C Z  0008009D X  00080201 X  00081010 X/Z/D  00081030 X  0008103E X  00081040 X
00081041 X  00081048 X  00081049 X  00081050 X  00081052 X  00081060 X  00081062 X  00081070 X/Z/D
00081072 X/D  00081080 X  00081084 X  00081110 X/Z  00081111 X/Z/D  00081120 X  00081140 X/Z/U*
00081155 U  00081195 U  00082111 X  00082112 X/Z/U*  00083010 U  00084000 X
00100010 Z  00100020 Z  00100021 X  00100030 Z  00100032 X  00100040 Z  00100050 X  00100101 X
00100102 X  00101000 X  00101001 X  00101002 X  00101005 X  00101010 X  00101020 X  00101030 X
00101040 X  00101050 X  00101060 X  00101080 X  00101081 X  00101090 X  00101100 X  00102000 X
00102110 X  00102150 X  00102152 X  00102154 X  00102155 X  00102160 X  00102180 X  001021A0 X
001021B0 X  001021C0 X  001021D0 X  001021F0 X  00102203 X/Z  00102297 X  00102299 X  00104000 X
00120010 D  00120020 D  00120021 Z  00120030 Z  00120031 Z  00120040 D  00120042 D  00120050 Z
00120051 X  00120060 Z  00120071 X  00120072 X  00120081 D  00120082 X
0016002B X  0016004B X  0016004D X  0016004E X  0016004F X  00160050 X  00160051 X
00160070 X  00160071 X  00160072 X  00160073 X  00160074 X  00160075 X  00160076 X  00160077 X
00160078 X  00160079 X  0016007A X  0016007B X  0016007C X  0016007D X  0016007E X  0016007F X
00160080 X  00160081 X  00160082 X  00160083 X  00160084 X  00160085 X  00160086 X  00160087 X
00160088 X  00160089 X  0016008A X  0016008B X  0016008C X  0016008D X  0016008E X
00180010 Z/D  00181000 X/Z/D  00181002 U  00181004 X  00181005 X  00181007 X  00181008 X
00181009 X  0018100A X  0018100B U  00181030 X/D  001811BB D  00181400 X/D  00182042 U  00184000 X
00185011 X  0018700A X/D  00189185 X  00189367 D  00189369 D  0018936A D  00189371 D  00189373 X
0018937B X  0018937F X  00189424 X  00189516 X/D  00189517 X/D  00189937 X  0018A003 X
0020000D U  0020000E U  00200010 Z  00200052 U  00200200 U  00203401 X  00203406 X  00204000 X
00209158 X  00209161 U  00209164 U  00281199 U  00281214 U  00284000 X
00320012 X  00321020 X  00321021 X  00321030 X  00321032 X  00321033 X  00321060 X/Z  00321066 X
00321067 X  00321070 X  00324000 X  00340001 D  00340002 D  00340005 D  00340007 D
00380004 X  00380010 X  00380011 X  00380014 X  0038001E X  00380020 X  00380021 X  00380040 X
00380050 X  00380060 X  00380061 X  00380062 X  00380064 X  00380300 X  00380400 X  00380500 X
00384000 X  003A0310 U  003A0314 D
00400001 X  00400002 X  00400003 X  00400004 X  00400005 X  00400006 X  00400007 X  00400009 X
0040000B X  00400010 X  00400011 X  00400012 X  00400241 X  00400242 X  00400243 X  00400244 X
00400245 X  00400250 X  00400251 X  00400253 X  00400254 X  00400275 X  00400280 X  00400310 X
00400512 D  00400513 Z  0040050A X  0040051A X  00400551 D  00400554 U  00400555 X/Z  00400562 Z
00400600 X  00400602 X  00400610 Z  004006FA X  00401001 X  00401002 X  00401004 X  00401005 X
0040100A X  00401010 X  00401011 X  00401101 D  00401102 X  00401103 X  00401104 X  00401400 X
00402001 X  00402008 X  00402009 X  00402010 X  00402011 X  00402016 Z  00402017 Z  00402400 X
00403001 X  00404005 X  00404008 X  00404010 X  00404011 X  00404023 U  00404025 X  00404027 X
00404028 X  00404030 X  00404034 X  00404035 X  00404036 X  00404037 X  00404050 X  00404051 X
00404052 X  0040A027 D  0040A073 D  0040A075 D  0040A078 X  0040A07A X  0040A07C X  0040A088 Z
0040A123 D  0040A124 U  0040A171 U  0040A172 U  0040A192 X  0040A193 X  0040A307 X  0040A352 X
0040A353 X  0040A354 X  0040A358 X  0040A402 U  0040A730 D  0040DB0C U  0040DB0D U
0050001B X  00500020 X  00500021 X  00620021 U  00700001 D  00700084 Z/D  00700086 X  0070031A U
00701101 U  00701102 U  00880140 U  00880200 X  00880904 X  00880906 X  00880910 X  00880912 X
04000100 U  04000402 X  04000403 X  04000404 X  04000550 X  04000551 X  04000552 X  04000561 X
04000600 X  20300020 X  22000002 X/Z  22000005 X/Z  30060002 D  30060004 X  30060006 X
30060008 Z  30060009 X/D  30060024 U  30060026 Z  30060028 X  30060038 X  30060085 X  30060088 X
300600A6 Z  300600C2 U  30080054 X/D  30080056 X/D  30080105 X/Z  30080250 X/D  30080251 X/D
300A0002 D  300A0003 X  300A0004 X  300A0006 X/D  300A0007 X/D  300A000E X  300A0013 U  300A0016 X
300A0072 X  300A0083 U  300A00B2 X  300A00C3 X  300A00DD X  300A0196 X  300A01A6 X  300A01B2 X
300A0216 X  300A02EB X  300A0608 D  300A0609 U  300A0611 Z  300A0615 Z  300A0619 D  300A0623 D
300A062A D  300A0650 U  300A0676 X  300A067C D  300A067D Z  300A0700 U  300A0734 D  300A0736 D
300A073A D  300A0741 D  300A0742 D  300A0760 D  300A0783 D  300C0113 X  300E0008 X/Z
30100006 U  3010000B U  3010000F Z  30100013 U  30100015 U  30100017 Z  3010001B Z  3010002D D
30100031 U  30100033 D  30100034 D  30100035 D  30100036 X  30100037 X  30100038 D  3010003B U
30100043 Z  3010004C X/D  3010004D X/D  30100054 D  30100056 X/D  3010005A Z  3010005C Z
30100061 X  3010006E U  3010006F U  30100077 D  3010007A Z  3010007B Z  3010007F Z  30100081 Z
40000010 X  40004000 X  40080042 X  40080102 X  4008010A X  4008010B X  4008010C X  40080111 X
40080114 X  40080115 X  40080118 X  40080119 X  4008011A X  40080202 X  40080300 X  40084000 X
FFFAFFFA X  FFFCFFFC X
"""

# The choice made for the IOD-dependent actions (see the module docstring).
_RESOLVED = {"X": "X", "Z": "Z", "D": "D", "U": "U", "K": "K",
             "X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}


def _parse_table(text: str) -> dict[int, str]:
    words = text.split()
    return {int(tag, 16): _RESOLVED[action] for tag, action in zip(words[0::2], words[1::2], strict=True)}


TABLE: dict[int, str] = _parse_table(_TABLE_TEXT)

# PS3.15 E.1.1 D: a dummy value of the VR; numbers zero, dates the first day of 1900.
_DUMMY: dict[str, object] = {
    "AE": "ANONYMIZED", "AS": "000D", "CS": "ANONYMIZED", "DA": "19000101", "DS": "0", "DT": "19000101000000",
    "IS": "0", "LO": "ANONYMIZED", "LT": "ANONYMIZED", "PN": "ANONYMIZED", "SH": "ANONYMIZED", "ST": "ANONYMIZED",
    "TM": "000000", "UC": "ANONYMIZED", "UR": "urn:anonymized", "UT": "ANONYMIZED",
    "FL": 0.0, "FD": 0.0, "SL": 0, "SS": 0, "UL": 0, "US": 0, "SV": 0, "UV": 0,
}


def action_for(tag: int) -> str:
    """The Basic Profile's action for ``tag``: X, Z, D, U, or K for an attribute it does not list."""
    group, element = tag >> 16, tag & 0xFFFF
    if group & 1:
        return "X"  # private attributes
    if 0x5000 <= group <= 0x50FF:
        return "X"  # curve data (retired repeating group)
    if 0x6000 <= group <= 0x60FF and element in (0x3000, 0x4000):
        return "X"  # overlay data and comments
    return TABLE.get(tag, "K")


class UIDMap:
    """UIDs replaced by ``2.25.<128-bit HMAC of the UID>`` under one key (PS3.5 B.2): the same UID
    always maps to the same replacement, and nothing of it can be recovered without the key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, uid: str) -> str:
        digest = hmac.new(self._key, uid.strip("\0 ").encode("ascii", "replace"), hashlib.sha256).digest()
        return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def deidentify(ds: Dataset, uid_map: Callable[[str], str]) -> None:
    """Apply the Basic Profile to ``ds`` (and its File Meta Information) in place, and record it
    (PS3.15 E.1.1: Patient Identity Removed, De-identification Method and its code)."""
    apply_profile(ds, uid_map)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = uid_map(str(meta.MediaStorageSOPInstanceUID))
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE_CODE
    ds.DeidentificationMethodCodeSequence = Sequence([code])


def burned_in(ds: Dataset) -> bool:
    """Whether the pixels carry burned-in identifying text (Burned In Annotation (0028,0301) YES): the
    Basic Profile leaves the pixels as they are (PS3.15 E.1.1; the Clean Pixel Data Option cleans them)."""
    return str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES"


def apply_profile(ds: Dataset, uid_map: Callable[[str], str]) -> None:
    """The table's actions on every attribute of ``ds``, nested items included, without recording them.

    Group Length elements go too (PS3.5 7.2: optional, and no longer true once attributes are removed).
    """
    for tag in list(ds.keys()):
        element = ds[tag]
        action = action_for(int(tag))
        if action == "X" or tag.element == 0:
            del ds[tag]
        elif element.VR == "SQ":
            if action == "Z":
                element.value = Sequence()
            else:  # K, D and U* keep the sequence; the profile applies within its items
                for item in element.value:
                    apply_profile(item, uid_map)
        elif action == "Z":
            element.value = None
        elif action == "D":
            _dummy(element)
        elif action == "U":
            _replace_uids(element, uid_map)


def _dummy(element: DataElement) -> None:
    dummy = _DUMMY.get(element.VR)
    if dummy is None:  # binary or UI values have no meaningful dummy: emptied instead
        element.value = None
        return
    if isinstance(dummy, str) and element.VR in ("SH", "AE", "CS"):
        dummy = dummy[:16]
    element.value = dummy


def _replace_uids(element: DataElement, uid_map: Callable[[str], str]) -> None:
    if element.VR != "UI":  # a U action on another VR holds no UID to map: emptied
        element.value = None
        return
    if element.VM == 0:
        return
    values = element.value if element.VM > 1 else [element.value]
    replaced = [uid_map(str(value)) for value in values]
    element.value = replaced if element.VM > 1 else replaced[0]
