"""HTTP answers to a download and to Range requests (Content-Range, ETag, Last-Modified,
status, short or dropped bodies), from a server that lies or whose file changes: every answer
is refused with a SourceError or UsageError, or the bytes read are the file's own."""

from __future__ import annotations

import random
from unittest import mock

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from grid.errors import SourceError, UsageError
from grid.sources.http_ranges import RangeFile
from grid.sources.http_stream import HttpStream, content_range
from tests.fuzz.fuzzing import corpus, fuzz_settings, typed_or_nothing

EXPECTED = (SourceError, UsageError)
URL = "http://fuzz.invalid/a.zip"
FILE = random.Random(1).randbytes(3000)
OTHER = random.Random(2).randbytes(3000)  # the file after it changed on the server
N = len(FILE)

ranges = st.one_of(
    st.text(max_size=40),
    st.builds(
        "bytes {}-{}/{}".format,
        st.integers(-1, 2 * N) | st.just(2**70),
        st.integers(-1, 2 * N),
        st.sampled_from([N, N + 1, 0, "*", "-3", "3000 "]),
    ),
)
answers = st.fixed_dictionaries(
    {
        "status": st.sampled_from([206, 206, 206, 200, 416, 500, 404]),
        "range": st.none() | ranges,  # None: the right Content-Range
        "etag": st.sampled_from(['"a"', '"a"', 'W/"b"', '"b"', None]),
        "changed": st.booleans(),  # the body is of the changed file (with ETag "b")
        "cut": st.none() | st.integers(0, N),  # the body stops (cleanly) after this many bytes
        "drop": st.none() | st.integers(0, N),  # the connection drops after this many bytes
    }
)


def server(draw_answer):
    """A MockTransport whose every answer is drawn by hypothesis."""

    def handle(request: httpx.Request) -> httpx.Response:
        a = draw_answer()
        start = int(request.headers.get("range", "bytes=0-")[6:].rstrip("-") or 0)
        body = (OTHER if a["changed"] else FILE)[start:]
        etag = '"b"' if a["changed"] else a["etag"]
        headers: dict[str, str | bytes] = {
            "accept-ranges": "bytes",
            "content-length": str(len(body)),
        }
        if etag:
            headers["etag"] = etag
        headers["content-range"] = (a["range"] or f"bytes {start}-{N - 1}/{N}").encode()
        if a["cut"] is not None:
            body = body[: a["cut"]]
            headers["content-length"] = str(len(body))

        def chunks():
            for i in range(0, len(body), 700):
                if a["drop"] is not None and i >= a["drop"]:
                    raise httpx.ReadError("connection reset")
                yield body[i : i + 700]

        return (
            httpx.Response(a["status"], headers=headers, stream=httpx.ByteStream(b""))
            if (not body)
            else httpx.Response(a["status"], headers=headers, content=chunks())
        )

    return httpx.Client(transport=httpx.MockTransport(handle))


@fuzz_settings(150)
@given(st.data(), st.lists(st.tuples(st.integers(0, N + 10), st.integers(1, 2000)), max_size=4))
def test_range_reads_give_the_files_bytes_or_fail(data, reads):
    client = server(lambda: data.draw(answers))
    f = RangeFile(client, URL, N, True, validator='"a"')

    def read_all() -> None:
        for pos, n in reads:
            f.seek(pos)
            got = f.read(n)
            assert got == FILE[pos : pos + len(got)], "a Range read gave other bytes"

    with mock.patch("grid.sources.http_stream.time.sleep"):
        exc = typed_or_nothing(read_all)
    f.close()
    assert exc is None or isinstance(exc, EXPECTED), repr(exc)


@fuzz_settings(150)
@given(st.data())
def test_a_resumed_download_gives_the_files_bytes_or_fails(data):
    client = server(lambda: data.draw(answers))
    got = bytearray()

    def download() -> None:
        stream = HttpStream(client, URL, True)
        try:
            while chunk := stream.read(1000):
                got.extend(chunk)
        finally:
            stream.close()

    with mock.patch("grid.sources.http_stream.time.sleep"):
        exc = typed_or_nothing(download)
    assert exc is None or isinstance(exc, EXPECTED), repr(exc)
    assert bytes(got) in (FILE[: len(got)], OTHER[: len(got)]), "a resume spliced two files"
    if len(got) > 0 and bytes(got) != FILE[: len(got)]:
        assert bytes(got) == OTHER[: len(got)]  # the first answer was the changed file


@fuzz_settings(300)
@given(st.text(max_size=60) | ranges)
def test_any_content_range_parses_or_is_none(text):
    found = content_range(httpx.Headers({"content-range": text.encode("utf-8")}))
    assert found is None or (found[0] >= 0 and (found[1] is None or found[1] >= 0))


@pytest.mark.parametrize("data", corpus("content-range"))
def test_content_range_corpus(data):
    found = content_range(httpx.Headers({"content-range": data}))
    assert found is None or found[0] >= 0


def test_a_first_range_answer_of_a_changed_file_is_refused():
    """Bug found: the first Range answer was not compared with the validator RangeFile was
    given, so a server ignoring If-Range spliced the changed file in."""
    answer = {"status": 206, "range": None, "etag": None, "changed": True, "cut": None}
    f = RangeFile(server(lambda: {**answer, "drop": None}), URL, N, True, validator='"a"')
    with pytest.raises(SourceError, match="changed"):
        f.read(10)
