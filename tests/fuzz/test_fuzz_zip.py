"""Zip archives as an upload or an archive URL delivers them: a damaged central directory, end
record or local header, cut or spliced archives and random bytes give an ArchiveError (or
UsageError: not an archive), never a zipfile, struct, zlib, Unicode or Overflow error; and a
member read whole has the bytes it was written with (its CRC-32 is checked) or is refused."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest
from hypothesis import given

from grid.errors import ArchiveError, UsageError
from tests.fuzz.archive_input import consume
from tests.fuzz.fuzzing import corpus, fuzz_settings, mutations, typed_or_nothing

EXPECTED = (ArchiveError, UsageError)
FILES = {
    "top/stored-file.txt": (b"stored\n" * 20, zipfile.ZIP_STORED),
    "top/deflated/ünïcode-名前.bin": (bytes(range(256)) * 8, zipfile.ZIP_DEFLATED),
    "top/bzip2-member.dat": (b"bz" * 300, zipfile.ZIP_BZIP2),
}


def make_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("top/", (2024, 1, 2, 3, 4, 6)), b"")
        for name, (data, method) in FILES.items():
            zf.writestr(zipfile.ZipInfo(name, (2024, 1, 2, 3, 4, 6)), data, method)
        link = zipfile.ZipInfo("top/link-to-stored", (2024, 1, 2, 3, 4, 6))
        link.create_system, link.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, b"stored-file.txt")
    return buf.getvalue()


ZIP = make_zip()
CENTRAL = ZIP.index(b"PK\x01\x02")
WRITTEN = {name: data for name, (data, _) in FILES.items()}


def check(data: bytes) -> None:
    """Refused with an ArchiveError, or every original member read back unchanged."""
    got: dict[str, bytes] = {}
    exc = typed_or_nothing(lambda: got.update(consume(data, "a.zip")))
    assert exc is None or isinstance(exc, EXPECTED), repr(exc)
    for name, content in got.items():
        if name in WRITTEN:
            assert content == WRITTEN[name], f"{name} read back other bytes"


def test_the_valid_zip_reads_back():
    got = consume(ZIP, "a.zip")
    assert {n: got[n] for n in WRITTEN} == WRITTEN
    assert got["top/link-to-stored"] == b"-> stored-file.txt"


@fuzz_settings(200)
@given(mutations(ZIP[CENTRAL:]))
def test_a_damaged_central_directory_is_refused(tail):
    check(ZIP[:CENTRAL] + tail)


@fuzz_settings(120)
@given(mutations(ZIP))
def test_a_damaged_zip_is_refused_or_read_unchanged(data):
    check(data)


@pytest.mark.parametrize("data", corpus("zip"))
def test_zip_corpus(data):
    check(data)
