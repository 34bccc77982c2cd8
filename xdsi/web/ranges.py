"""Single-part answers with HTTP Range (RFC 9110 14): a byte range of a value that knows its length."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from flask import Response, request
from werkzeug.datastructures import ContentRange

from xdsi.web.errors import text_response


def ranged(chunks: Callable[[int, int], Iterator[bytes]], length: int, content_type: str, what: str) -> Response:
    """The whole value (200), or the one range asked for (206), or 416 for a range outside it.

    Several ranges in one request get the whole value: a multipart/byteranges answer buys a
    client nothing here (RFC 9110 14.2 lets a server ignore Range).
    """
    start, end, status = 0, length, 200
    ranges = request.range
    if ranges is not None and len(ranges.ranges) == 1:
        first, last = ranges.ranges[0]
        if first < 0 and last is None and length > 0:
            # RFC 9110 14.1.3: a suffix longer than the value selects all of it (werkzeug refuses it).
            bounds: tuple[int, int] | None = (max(0, length + first), length)
        else:
            bounds = ranges.range_for_length(length)
        if bounds is None:
            response = text_response(416, f"the range {request.headers.get('Range')} is outside the "
                                          f"{length} bytes of this {what}")
            response.headers["Content-Range"] = f"bytes */{length}"
            return response
        (start, end), status = bounds, 206
    response = Response(chunks(start, end), status=status, content_type=content_type)
    response.content_length = end - start
    response.accept_ranges = "bytes"
    if status == 206:
        response.content_range = ContentRange("bytes", start, end, length)
    return response
