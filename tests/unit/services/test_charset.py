"""The charset parameter: a list with q-values, the first that can carry the text, 406 when none can."""

from __future__ import annotations

import pytest

from xdsi.errors import InvalidRequest, NotAcceptable
from xdsi.services import charset


def test_parse_orders_by_quality_and_keeps_ties_in_order() -> None:
    assert charset.parse(None) == ()
    assert charset.parse("") == ()
    assert charset.parse("UTF-8") == ("UTF-8",)
    assert charset.parse("ISO-8859-1;q=0.5, GB18030, utf-8;q=0.9") == ("GB18030", "utf-8", "ISO-8859-1")
    assert charset.parse("ISO-8859-1, UTF-8;q=0, *;q=0.1") == ("ISO-8859-1", "*")


@pytest.mark.parametrize("text", ["UTF 8", "utf-8;q=2", "utf-8;level=1", "<script>", "utf-8;q=0.1234", ","])
def test_malformed_lists_name_the_entry(text: str) -> None:
    with pytest.raises(InvalidRequest, match="charset"):
        charset.parse(text)


def test_too_many_entries_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="more than 32"):
        charset.parse(",".join(["utf-8"] * 33))


def test_encode_takes_the_first_that_carries_the_text() -> None:
    assert charset.encode("Jérôme", (), html=False) == charset.Encoded("Jérôme".encode(), "UTF-8")
    assert charset.encode("Jérôme", ("ISO-8859-1",), html=False).data == "Jérôme".encode("latin-1")
    chosen = charset.encode("王小东", ("ISO-8859-1", "x-unknown", "GB18030"), html=False)
    assert chosen == charset.Encoded("王小东".encode("gb18030"), "GB18030")
    assert charset.encode("王", ("*",), html=False).charset == "UTF-8"


def test_html_always_fits_the_first_known_charset() -> None:
    assert charset.encode("王<", ("x-unknown", "US-ASCII"), html=True) == charset.Encoded(b"&#29579;<", "US-ASCII")


def test_nothing_acceptable_is_406() -> None:
    with pytest.raises(NotAcceptable, match="ISO-8859-1"):
        charset.encode("王", ("ISO-8859-1",), html=False)
    with pytest.raises(NotAcceptable):
        charset.encode("a", ("x-unknown", "rot13"), html=True)


def test_first_known() -> None:
    assert charset.first_known(("x-unknown", "ISO-2022-JP")) == "iso2022_jp"
    assert charset.first_known(("x-unknown",)) is None
