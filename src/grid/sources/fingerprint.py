"""What a source looks like without reading it: a short text that changes when its content
may have (a scheduled re-import makes no version while it stays the same).

An archive URL: its strong ETag, Last-Modified and length, from the headers of a GET whose
body is never read (some servers refuse HEAD); none of the three means the server gives
nothing to tell by, and the answer is "" (the schedule then imports each time, and the
create's ``skip_unchanged`` still makes no version of an unchanged tree). An ``s3://``
prefix: a digest of every object's key, ETag and size.
"""

from __future__ import annotations

from grid.sources import http
from grid.sources.http_stream import validators
from grid.sources.s3 import S3Source


def fingerprint(source: str, *, endpoint_url: str | None, allow_private: bool) -> str:
    """The fingerprint of an archive URL or ``s3://`` prefix ("": cannot tell).

    Raises:
        UsageError: a refused address or a 4xx answer. SourceError: unreachable, or 5xx.
    """
    if source.startswith("s3://"):
        return S3Source(source, endpoint_url=endpoint_url).fingerprint()
    with http.client(allow_private) as session:
        response = http.get(session, source, {"Accept-Encoding": "identity"}, allow_private)
        try:
            etag, modified = validators(response.headers)
            length = response.headers.get("content-length", "")
        finally:
            response.close()
    if not (etag or modified):
        return ""
    return f"http:{etag}|{modified}|{length}"
