"""More hostile archives: sparse members, huge headers, zip headers that disagree, odd
compression methods, impossible times and sizes, forward hardlinks and over-long paths. Each
refusal names the entry in a short message and leaves no version behind."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import struct
import subprocess
import tarfile
import time
import zipfile

import pytest

from grid.errors import ArchiveError
from tests.archive_server import ArchiveServer

pytestmark = pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")

_MIB = 1 << 20
_DATA_AT = 3 * _MIB + 5  # where the sparse file's only data lies
_INT64_NS = (-(2**63), 2**63 - 1)


# -- builders --------------------------------------------------------------------------------


def _sparse(tmp_path, *args: str) -> bytes:
    """A tar (GNU tar --sparse, ``args`` for format and compression) of one 64 MiB file that is
    a hole but for 4 bytes."""
    folder = tmp_path / "sparse"
    folder.mkdir(exist_ok=True)
    huge = folder / "huge.bin"
    with open(huge, "wb") as f:
        f.truncate(64 * _MIB)
        f.seek(_DATA_AT)
        f.write(b"data")
    out = tmp_path / "s.tar"
    subprocess.run(["tar", "-C", str(folder), "--sparse", *args, "-cf", str(out), "huge.bin"])
    return out.read_bytes()


def _pax(name: str, headers: dict[str, str], data: bytes = b"hello\n") -> bytes:
    """A PAX tar of ok.txt and ``name`` whose extended header holds ``headers`` verbatim."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        ok = tarfile.TarInfo("ok.txt")
        ok.size = 4
        tar.addfile(ok, io.BytesIO(b"fine"))
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.pax_headers = dict(headers)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _header(name: str, kind: bytes, size: int) -> bytes:
    """One 512-byte tar header, checksum and all."""
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    return info.tobuf(tarfile.GNU_FORMAT)


def _record(key: str, value: bytes) -> bytes:
    """One PAX record: its length counts its own digits."""
    body = f" {key}=".encode() + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def _big_header(kind: bytes, size: int) -> bytes:
    """A tar.gz whose first header is a ``kind`` header (x: PAX, L: GNU long name) of about
    ``size`` bytes holding a path that long, then a file."""
    if kind == tarfile.XHDTYPE:
        record = _record("path", b"a/" * (size // 2))
    else:
        record = b"n/" * (size // 2)
    pad = -len(record) % 512
    raw = _header("././@Header", kind, len(record)) + record + b"\0" * pad
    raw += _header("short.txt", tarfile.REGTYPE, 2) + b"hi" + b"\0" * 510 + b"\0" * 1024
    return gzip.compress(raw, mtime=0)


def _zip(*members: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def _zip_edit(data: bytes, name: str, *, local: dict[int, bytes], central: dict[int, bytes]):
    """``data`` with bytes replaced at offsets of member ``name``'s local and central headers."""
    out = bytearray(data)
    at = data.index(b"PK\x01\x02")
    while at >= 0:
        name_len = struct.unpack("<H", data[at + 28 : at + 30])[0]
        if data[at + 46 : at + 46 + name_len] == name.encode():
            for off, value in central.items():
                out[at + off : at + off + len(value)] = value
            local_at = struct.unpack("<I", data[at + 42 : at + 46])[0]
            for off, value in local.items():
                out[local_at + off : local_at + off + len(value)] = value
        at = data.find(b"PK\x01\x02", at + 1)
    return bytes(out)


_TWO = _zip(("ok.txt", b"fine"), ("victim.txt", b"payload"))


def _method(method: int) -> bytes:
    raw = struct.pack("<H", method)
    return _zip_edit(_TWO, "victim.txt", local={8: raw}, central={10: raw})


def _tar(*members: tuple[str, str, str]) -> bytes:
    """A tar of (name, kind, data or link target), kind file or hard."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, data
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data.encode()))
    return buf.getvalue()


# -- the harness -----------------------------------------------------------------------------


@pytest.fixture
def server():
    with ArchiveServer() as s:
        s.served.files["/good.tar"] = _tar(("data/a.txt", "file", "good"))
        yield s


def _refused(client, server, data: bytes, **options: object) -> str:
    """Serve ``data``, check that creating from it is refused with no version left (and the
    existing one intact); return the message."""
    server.served.files["/case"] = data
    good = client.create(server.url("/good.tar"), "keep")
    before = client.versions("keep")
    with pytest.raises(ArchiveError) as refused:
        client.create(server.url("/case"), "keep", **options)
    assert client.versions("keep") == before
    assert client.read_bytes("keep", good.number, "a.txt") == b"good"
    with pytest.raises(ArchiveError):
        client.create(server.url("/case"), "fresh", **options)
    assert [d.name for d in client.list()] == ["keep"]
    message = str(refused.value)
    assert len(message) < 600, message[:1000]
    return message


# -- 1. sparse members count their holes ---------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("-z",),  # GNU format (old sparse headers), gzip
        ("--format=posix", "-z"),  # PAX, sparse 1.0
        ("--format=posix", "--sparse-version=0.1", "-z"),
        ("--format=posix", "--sparse-version=0.0", "-z"),
        (),  # plain tar: not compressed, yet it expands
    ],
)
def test_sparse_holes_count_against_the_ratio(client, server, tmp_path, args):
    data = _sparse(tmp_path, *args)
    assert len(data) < 20_000
    message = _refused(client, server, data, max_ratio=2)
    assert "expands more than 2 times" in message and "'huge.bin'" in message, message


def test_sparse_holes_count_against_the_size(client, server, tmp_path):
    message = _refused(client, server, _sparse(tmp_path, "-z"), max_size=10 * _MIB)
    assert f"more than {10 * _MIB} bytes" in message and "'huge.bin'" in message, message


def test_sparse_within_the_limits_is_read_whole(client, server, tmp_path):
    server.served.files["/s.tar.gz"] = _sparse(tmp_path, "--format=posix", "-z")
    v = client.create(server.url("/s.tar.gz"), "sparse", max_ratio=1e6)
    content = client.read_bytes("sparse", v.number, "huge.bin")
    assert len(content) == 64 * _MIB
    assert content[_DATA_AT : _DATA_AT + 4] == b"data"
    assert content.count(0) == 64 * _MIB - 4


def test_sparse_map_out_of_order_is_refused(client, server):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("holes.bin")
        info.size = 8
        info.pax_headers = {
            "GNU.sparse.map": "1000,4,0,4",  # backwards
            "GNU.sparse.size": "2000",
        }
        tar.addfile(info, io.BytesIO(b"abcdefgh"))
    message = _refused(client, server, buf.getvalue())
    assert "'holes.bin'" in message and "sparse map" in message, message


# -- 2. headers are bounded before they are read --------------------------------------------


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME])
def test_huge_extended_header_is_refused_before_it_is_read(client, server, kind):
    data = _big_header(kind, 8 * _MIB)
    assert len(data) < 100_000
    started = time.monotonic()
    message = _refused(client, server, data)
    assert time.monotonic() - started < 30
    assert "header" in message and "1 MiB" in message, message


def test_header_claiming_more_than_it_holds_is_refused_on_its_claim(client, server):
    raw = _header("././@LongLink", tarfile.GNUTYPE_LONGNAME, 1 << 40) + b"x" * 512
    message = _refused(client, server, gzip.compress(raw, mtime=0))
    assert "header" in message and "1 MiB" in message, message


def test_long_names_are_quoted_short(cli, server):
    name = "d/" * 3000 + "f.txt"  # 6,000 characters, every segment short
    server.served.files["/long.tar"] = _tar(("ok.txt", "file", "x"), (name, "file", "x"))
    r = cli("datastore", "create", server.url("/long.tar"), "--name", "long")
    assert r.code == 5, r.err
    assert len(r.err) < 600 and "4096 bytes" in r.err and "'d/d/d/" in r.err, r.err[:1000]
    assert "…" in r.err
    assert "long" not in cli("datastore").out


# -- 4. zip headers and methods ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (_zip_edit(_TWO, "victim.txt", local={30: b"VICTIM"}, central={}), "differ"),
        (_method(9), "Deflate64"),
        (_method(99), "method 99"),
        (_zip_edit(_TWO, "victim.txt", local={0: b"PK\x03\x05"}, central={}), "header"),
    ],
    ids=["local name differs", "deflate64", "unknown method", "bad local signature"],
)
def test_zip_header_problems_are_refused_naming_the_entry(client, server, data, words):
    message = _refused(client, server, data)
    assert "'victim.txt'" in message and words in message, message


def test_unsupported_method_says_so(client, server):
    message = _refused(client, server, _method(9))
    assert "not supported" in message, message


def test_zip_path_over_4096_bytes_is_refused(client, server):
    name = "seg/" * 2250 + "x"  # 9,001 characters
    message = _refused(client, server, _zip(("ok.txt", b"x"), (name, b"x")))
    assert "4096 bytes" in message and "'seg/seg/" in message and "…" in message, message


def test_zip_with_an_impossible_date_keeps_its_files(client, server):
    data = _zip_edit(_TWO, "victim.txt", local={12: b"\x00\x00"}, central={14: b"\x00\x00"})
    server.served.files["/d.zip"] = data  # DOS date 0: month 0, day 0
    v = client.create(server.url("/d.zip"), "dated")
    assert client.read_bytes("dated", v.number, "victim.txt") == b"payload"


# -- 5. impossible times and sizes in PAX headers -------------------------------------------


@pytest.mark.parametrize(
    ("mtime", "expected"),
    [
        ("1e300", _INT64_NS[1]),
        ("-99999999999999", _INT64_NS[0]),
        ("inf", _INT64_NS[1]),
        ("-1e20", _INT64_NS[0]),
        ("1700000000.5", 1_700_000_000_500_000_000),
    ],
)
def test_pax_times_out_of_range_are_clamped(client, server, mtime, expected):
    """Clamped to what a manifest holds (signed 64-bit ns: 1677..2262), never a crash."""
    server.served.files["/t.tar"] = _pax("when.txt", {"mtime": mtime})
    v = client.create(server.url("/t.tar"), "times")
    assert client.read_bytes("times", v.number, "when.txt") == b"hello\n"
    assert client.stat("times", v.number, "when.txt").mtime_ns == expected


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"size": "abc"}, "invalid size"),
        ({"size": "-5"}, "invalid size"),
        ({"GNU.sparse.size": "abc"}, "invalid"),
        ({"GNU.sparse.realsize": "12x"}, "invalid"),
        ({"GNU.sparse.map": "0,zz"}, "invalid"),
        ({"uid": "1e5"}, "invalid uid"),
        ({"mtime": "nan"}, "invalid mtime"),
        ({"mtime": "yesterday"}, "invalid mtime"),
    ],
)
def test_pax_numbers_that_are_not_numbers_are_refused(client, server, headers, words):
    message = _refused(client, server, _pax("bad.txt", headers))
    assert "'bad.txt'" in message and words in message, message
    assert "random access" not in message


def test_negative_size_field_is_an_invalid_header(client, server):
    header = bytearray(_header("neg.txt", tarfile.REGTYPE, 0))
    header[124:136] = b"\xff" * 12  # base-256: -1
    header[148:156] = b"        "
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    raw = _tar(("ok.txt", "file", "x"))[:1024] + bytes(header) + b"\0" * 1024
    message = _refused(client, server, raw)
    assert "'neg.txt'" in message and "invalid size" in message, message


def test_corrupt_header_after_the_first_is_refused(client, server):
    raw = bytearray(_tar(("ok.txt", "file", "x"), ("second.txt", "file", "y")))
    raw[1024 + 140] ^= 0x01  # the second header's mtime: its checksum no longer matches
    message = _refused(client, server, bytes(raw))
    assert "corrupt" in message and "1024" in message, message


# -- 6. hardlinks must point back ------------------------------------------------------------


def test_forward_hardlink_is_refused(client, server):
    data = _tar(("h", "hard", "later.txt"), ("later.txt", "file", "x"))
    message = _refused(client, server, data)
    assert "'h'" in message and "'later.txt'" in message and "earlier" in message, message


def test_forward_hardlink_to_a_hardlink_is_refused_the_same_way(client, server):
    data = _tar(("f", "file", "x"), ("h1", "hard", "h2"), ("h2", "hard", "f"))
    message = _refused(client, server, data)
    assert "'h1'" in message and "'h2'" in message and "earlier" in message, message


def test_backward_hardlinks_and_chains_are_kept(client, server):
    data = _tar(("d/f", "file", "x"), ("h1", "hard", "d/f"), ("d/h2", "hard", "h1"))
    server.served.files["/links.tar"] = data
    v = client.create(server.url("/links.tar"), "links", keep_root=True)
    for path in ("d/f", "h1", "d/h2"):
        assert client.read_bytes("links", v.number, path) == b"x"


def test_refusal_is_fast_for_a_sparse_bomb(client, server, tmp_path):
    """The ratio trips while the holes are produced, not after the whole file is read."""
    folder = tmp_path / "big"
    folder.mkdir()
    with open(folder / "huge.bin", "wb") as f:
        f.truncate(64 << 30)  # 64 GiB of hole
    out = tmp_path / "b.tar.gz"
    subprocess.run(["tar", "-C", str(folder), "--sparse", "-czf", str(out), "huge.bin"])
    started = time.monotonic()
    message = _refused(client, server, out.read_bytes())
    assert "expands more than 250 times" in message, message
    assert time.monotonic() - started < 60
    os.unlink(out)
