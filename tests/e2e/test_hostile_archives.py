"""A corpus of hostile, corrupt and oversized archives, each built here and served over HTTP:
every one is refused with an error naming the problem, no version is created, and the
existing version of the same datastore stays intact."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import warnings
import zipfile
from collections.abc import Callable

import pytest

from grid.errors import ArchiveError
from grid.sources.archive_rules import clean_path
from tests.archive_server import ArchiveServer

# -- builders --------------------------------------------------------------------------------


def _tar(*members: tuple[str, str, bytes | str], encoding: str = "utf-8") -> bytes:
    """A tar of (name, kind, data) where kind is file, dir, sym, hard, chr, blk or fifo."""
    kinds = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "sym": tarfile.SYMTYPE,
        "hard": tarfile.LNKTYPE,
        "chr": tarfile.CHRTYPE,
        "blk": tarfile.BLKTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding=encoding) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kinds[kind]
            if kind in ("sym", "hard"):
                info.linkname = str(data)
                tar.addfile(info)
            elif kind == "file":
                raw = data if isinstance(data, bytes) else data.encode()
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
            else:
                tar.addfile(info)
    return buf.getvalue()


def _zip(*members: tuple[str, int, bytes], compress: int = zipfile.ZIP_STORED) -> bytes:
    """A zip of (name, unix st_mode or 0, data)."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", compress) as zf:
        warnings.simplefilter("ignore")  # "Duplicate name": wanted here
        for name, mode, data in members:
            info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
            info.compress_type = compress
            if mode:
                info.create_system = 3
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


_OK = ("ok.txt", "file", b"fine")
_ZEROS = b"\0" * (30 << 20)
_BIG_TAR_GZ = gzip.compress(_tar(_OK, ("data.bin", "file", b"x" * 200_000)), mtime=0)
_STORED_ZIP = _zip(("ok.txt", 0, b"fine"), ("a.bin", 0, b"payload" * 1000))

# id -> (archive bytes, create options, words the error must contain)
CASES: dict[str, tuple[bytes, dict[str, object], str]] = {
    "absolute path": (_tar(_OK, ("/etc/cron.d/evil", "file", b"x")), {}, "/etc/cron.d/evil"),
    "dot-dot": (_tar(_OK, ("../evil.txt", "file", b"x")), {}, "../evil.txt"),
    "nested dot-dot": (_tar(_OK, ("a/../../evil", "file", b"x")), {}, "a/../../evil"),
    "absolute symlink": (_tar(_OK, ("link", "sym", "/etc/passwd")), {}, "link"),
    "escaping symlink": (_tar(_OK, ("a/b/link", "sym", "../../../etc")), {}, "a/b/link"),
    "symlink chain escape": (
        _tar(_OK, ("x/up", "sym", ".."), ("m", "sym", "x/up/..")),
        {},
        "'m'",
    ),
    "write through symlink": (
        _tar(_OK, ("l", "sym", "sub"), ("l/x.txt", "file", b"x")),
        {},
        "'l' twice",
    ),
    "escaping hardlink": (_tar(_OK, ("h", "hard", "../outside")), {}, "'h'"),
    "absolute hardlink": (_tar(_OK, ("h", "hard", "/etc/passwd")), {}, "'h'"),
    "hardlink to nothing": (_tar(_OK, ("h", "hard", "missing.txt")), {}, "missing.txt"),
    "char device": (_tar(_OK, ("dev/null", "chr", b"")), {}, "device"),
    "block device": (_tar(_OK, ("dev/sda", "blk", b"")), {}, "device"),
    "fifo": (_tar(_OK, ("pipe", "fifo", b"")), {}, "FIFO"),
    "duplicate file": (_tar(_OK, ("ok.txt", "file", b"other")), {}, "'ok.txt' twice"),
    "file and folder": (_tar(("a", "file", b"x"), ("a/b", "file", b"y")), {}, "'a' twice"),
    "duplicate folder": (_tar(("d", "dir", b""), ("d", "dir", b"")), {}, "'d' twice"),
    "not utf-8 name": (_tar(_OK, ("caf\xe9.txt", "file", b"x"), encoding="latin-1"), {}, "UTF-8"),
    "ratio bomb": (
        gzip.compress(_tar(("zeros.bin", "file", _ZEROS)), mtime=0),
        {"max_ratio": 10},
        "expands more than 10 times",
    ),
    "size bomb": (_BIG_TAR_GZ, {"max_size": 100_000}, "more than 100000 bytes"),
    "entry-count bomb": (
        _tar(*((f"f{i}", "file", b"") for i in range(20))),
        {"max_files": 10},
        "more than 10 entries",
    ),
    "truncated tar.gz": (_BIG_TAR_GZ[: len(_BIG_TAR_GZ) // 2], {}, "truncated or corrupt"),
    "corrupt tar.gz": (_flip(_BIG_TAR_GZ, len(_BIG_TAR_GZ) // 2), {}, "corrupt"),
    "truncated tar": (_tar(_OK, ("data.bin", "file", b"x" * 50_000))[:20_000], {}, "data.bin"),
    "empty tar": (_tar(), {}, "holds no files"),
    "zip absolute": (_zip(("ok", 0, b"x"), ("/abs.txt", 0, b"x")), {}, "/abs.txt"),
    "zip dot-dot": (_zip(("ok", 0, b"x"), ("../../evil", 0, b"x")), {}, "../../evil"),
    "zip escaping symlink": (
        _zip(("ok", 0, b"x"), ("l", stat.S_IFLNK | 0o777, b"../../etc/passwd")),
        {},
        "'l'",
    ),
    "zip device": (_zip(("ok", 0, b"x"), ("d", stat.S_IFCHR | 0o600, b"")), {}, "device"),
    "zip duplicate": (_zip(("same", 0, b"1"), ("same", 0, b"2")), {}, "'same' twice"),
    "zip ratio bomb": (
        _zip(("zeros", 0, _ZEROS), compress=zipfile.ZIP_DEFLATED),
        {"max_ratio": 10},
        "declares",
    ),
    "zip entry-count bomb": (
        _zip(*((f"f{i}", 0, b"") for i in range(20))),
        {"max_files": 10},
        "more than 10 entries",
    ),
    "zip truncated": (_STORED_ZIP[: len(_STORED_ZIP) - 30], {}, "truncated or corrupt"),
    "zip bad crc": (_flip(_STORED_ZIP, _STORED_ZIP.index(b"payload") + 3), {}, "a.bin"),
}


@pytest.fixture(scope="module")
def served():
    with ArchiveServer() as server:
        for i, (data, _, _) in enumerate(CASES.values()):
            server.served.files[f"/case{i}"] = data
        server.served.files["/good.tar"] = _tar(("data/a.txt", "file", b"good"))
        yield server


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_archive_is_refused_and_nothing_changes(client, served, case):
    _, options, words = CASES[case]
    good = client.create(served.url("/good.tar"), "keep")
    before = client.versions("keep")
    with pytest.raises(ArchiveError) as refused:
        client.create(served.url(f"/case{list(CASES).index(case)}"), "keep", **options)
    assert words in str(refused.value), str(refused.value)
    assert client.versions("keep") == before  # no version 2, not even a failed one
    assert client.verify("keep", good.number).ok
    assert client.read_bytes("keep", good.number, "a.txt") == b"good"
    with pytest.raises(ArchiveError):  # and under a new name, no datastore is left behind
        client.create(served.url(f"/case{list(CASES).index(case)}"), "fresh", **options)
    assert [d.name for d in client.list()] == ["keep"]
    assert client.create(served.url("/good.tar"), "keep").number == 2  # numbering goes on


@pytest.mark.parametrize(
    ("name", "expected"),
    [("./a/./b", "a/b"), ("a//b/", "a/b"), ("./", ""), ("répertoire/é.txt", "répertoire/é.txt")],
)
def test_clean_path_accepts_harmless_spellings(name, expected):
    assert clean_path(name) == expected


@pytest.mark.parametrize("name", ["/x", "C:\\x", "a/../b", "..", "a\0b", "x" * 256])
def test_clean_path_refuses(name):
    check: Callable[[str], str] = clean_path
    with pytest.raises(ArchiveError):
        check(name)
