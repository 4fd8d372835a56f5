"""Tar archives (plain and gzip) as an upload or an archive URL delivers them: damaged member
headers (ustar, GNU long names, PAX records, sparse maps), cut or spliced streams and random
bytes give an ArchiveError (or UsageError: not an archive), never a tarfile, struct, Unicode or
Recursion error, and never a hang."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grid.errors import ArchiveError, UsageError
from tests.fuzz.archive_input import consume
from tests.fuzz.fuzzing import corpus, fuzz_settings, mutations, typed_or_nothing

EXPECTED = (ArchiveError, UsageError)
FILES = {"top/one.txt": b"one\n", "top/" + "long-" * 30 + ".bin": bytes(range(256))}


def make_tar(fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        folder = tarfile.TarInfo("top")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for path, data in FILES.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime = len(data), 1_700_000_000
            if fmt == tarfile.PAX_FORMAT:
                info.pax_headers = {"comment": "fuzz", "mtime": "1700000000.5"}
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("top/link")
        link.type, link.linkname = tarfile.SYMTYPE, "one.txt"
        tar.addfile(link)
    return buf.getvalue()


GNU, PAX = make_tar(tarfile.GNU_FORMAT), make_tar(tarfile.PAX_FORMAT)
HEADERS = {"gnu": GNU[:2048], "pax": PAX[:3072]}  # the header blocks, where damage bites


def check(data: bytes, name: str = "a.tar") -> None:
    exc = typed_or_nothing(lambda: consume(data, name))
    assert exc is None or isinstance(exc, EXPECTED), repr(exc)


@pytest.mark.parametrize("tar", [GNU, PAX], ids=["gnu", "pax"])
def test_a_valid_tar_reads_back(tar):
    got = consume(tar)
    assert {p: got[p] for p in FILES} == FILES and got["top/link"] == b"-> one.txt"
    assert consume(gzip.compress(tar), "a.tar.gz") == got


@pytest.mark.parametrize("kind", sorted(HEADERS))
@fuzz_settings(120)
@given(data=st.data())
def test_a_damaged_tar_header_is_refused(kind, data):
    tar = GNU if kind == "gnu" else PAX
    head = data.draw(mutations(HEADERS[kind]))
    check(head + tar[len(HEADERS[kind]) :])


@fuzz_settings(80)
@given(mutations(PAX))
def test_a_damaged_tar_is_refused(data):
    check(data)


@fuzz_settings(60)
@given(mutations(gzip.compress(GNU, mtime=0)))
def test_a_damaged_tar_gz_is_refused(data):
    check(data, "a.tar.gz")


@pytest.mark.parametrize("data", corpus("tar"))
def test_tar_corpus(data):
    check(data)


def with_pax(payload: bytes, data: bytes = b"x" * 600) -> bytes:
    """A ustar archive: a PAX header of ``payload`` (records, raw), then a file of ``data``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        pax = tarfile.TarInfo("././@PaxHeader")
        pax.type, pax.size = tarfile.XHDTYPE, len(payload)
        tar.addfile(pax, io.BytesIO(payload))
        info = tarfile.TarInfo("f")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    n = len(body) + len(str(len(body)))
    n = len(body) + len(str(n))  # the length counts its own digits
    return str(n).encode() + body


PAX_KEYS = [
    *("path", "linkpath", "size", "uid", "gid", "mtime", "atime", "hdrcharset", "uname"),
    *("GNU.sparse.map", "GNU.sparse.size", "GNU.sparse.realsize", "GNU.sparse.name"),
    *("GNU.sparse.major", "GNU.sparse.minor", "GNU.sparse.numblocks", "GNU.sparse.offset"),
    "GNU.sparse.numbytes",
]
PAX_VALUES = st.one_of(
    st.sampled_from([b"0", b"1", b"-1", b"1e400", b"nan", b"9" * 30, b"1,2,3", b"0,10", b""]),
    st.sampled_from([b"BINARY", b"\xff\xfe", b"1_0", " ١".encode(), b"../../x", b"/abs"]),
    st.binary(max_size=12),
)


@fuzz_settings(150)
@given(
    st.lists(st.tuples(st.sampled_from(PAX_KEYS), PAX_VALUES), max_size=6), st.binary(max_size=24)
)
def test_pax_records_of_any_value_are_refused_or_read(records, tail):
    """PAX records (sizes, times, sparse maps, names) with any value, then raw junk."""
    check(with_pax(b"".join(record(k, v) for k, v in records) + tail))


@fuzz_settings(100)
@given(st.binary(max_size=64), mutations(b"1\n0\n100\n" + b"\n" * 20))
def test_a_pax_1_0_sparse_map_of_any_bytes_is_refused_or_read(junk, map_text):
    """A GNU sparse 1.0 member: its map is the first bytes of its data."""
    pax = b"".join(
        record(k, v)
        for k, v in [
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"sparse"),
            ("GNU.sparse.realsize", b"100000"),
        ]
    )
    block = (map_text + junk).ljust(512, b"\0")
    check(with_pax(pax, block + b"y" * 100))


def gnu_sparse(structs: list[tuple[int, int]], extended: bytes, realsize: int, size: int) -> bytes:
    """An old GNU sparse member (type S): ``structs`` in its header, ``extended`` blocks after."""
    info = tarfile.TarInfo("sparse")
    info.size = size
    head = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    head[156:157] = b"S"
    for i, (offset, numbytes) in enumerate(structs[:4]):
        head[386 + 24 * i : 398 + 24 * i] = tarfile.itn(offset, 12, tarfile.GNU_FORMAT)
        head[398 + 24 * i : 410 + 24 * i] = tarfile.itn(numbytes, 12, tarfile.GNU_FORMAT)
    head[482] = 1 if extended else 0
    head[483:495] = tarfile.itn(realsize, 12, tarfile.GNU_FORMAT)
    head[148:156] = b" " * 8
    head[148:155] = b"%06o\0" % sum(head)
    data = bytes(size).ljust(-(-size // 512) * 512, b"\0")
    return bytes(head) + extended + data + bytes(1024)


numbers = st.one_of(st.integers(0, 1 << 20), st.integers(0, 1 << 62), st.just(-1))


@fuzz_settings(100)
@given(
    st.lists(st.tuples(numbers, numbers), max_size=5),
    st.sampled_from([b"", b"\0" * 512, bytes(504) + b"\1" + bytes(7)]),
    numbers,
    st.integers(0, 2048),
)
def test_an_old_gnu_sparse_map_of_any_numbers_is_refused_or_read(structs, extended, real, size):
    check(gnu_sparse(structs, extended, max(real, 0), size))
