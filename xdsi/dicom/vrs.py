"""The value representations of PS3.5 6.2, and which of them carry a 32-bit length."""

from __future__ import annotations

# PS3.5 6.2: the VRs a data set may carry (the dictionary's ambiguous ones resolve to these).
ALL_VRS = frozenset(
    [
        "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV",
        "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV",
    ]
)
# PS3.5 7.1.2: these VRs carry 2 reserved bytes and a 32-bit length in explicit VR.
LONG_VRS = frozenset(["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"])
