"""A report, document or video in its own rendered media type (PS3.18 Table 8.7.4-1), byte ranges
served as asked: the one answer WADO-URI and WADO-RS ``/rendered`` give for them."""

from __future__ import annotations

from flask import Response

from xdsi.services import documents, retrieve
from xdsi.services.auditor import Transaction
from xdsi.services.plans import ObjectPlan
from xdsi.web.context import archive, requester
from xdsi.web.ranges import ranged

# A report's page (or a CDA a browser would style) is stored data shown in a browser: it may run
# nothing and load nothing, though an EHR may frame it; its own inline style is allowed.
MARKUP_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox"}
MARKUP = ("text/html", "text/xml")


def answer(item: ObjectPlan, media_type: str, charsets: tuple[str, ...], transaction: Transaction) -> Response:
    """``item`` as ``media_type`` (one of ``item.rendered``); text in the first of ``charsets`` that
    can carry it. The file stays open, and whole, until the answer has been sent."""
    current = archive()
    files = retrieve.opened_files(current.blobs, [item.instance])
    try:
        payload = documents.document(current.blobs, item.instance, media_type, current.limits, charsets)
        current.auditor.retrieved(requester(), [item.instance], transaction)
        response = ranged(lambda start, end: payload.chunks(files, start, end), payload.length,
                          payload.content_type, item.kind.value)
    except BaseException:
        files.close()
        raise
    response.call_on_close(files.close)
    response.headers["X-Content-Type-Options"] = "nosniff"
    if media_type in MARKUP:
        response.headers.update(MARKUP_HEADERS)
    return response
