"""create from an archive URL whose server misbehaves: changes the file under a dropped
download, trickles, redirects to odd schemes, closes short (tests/archive_server on 127.0.0.1)."""

from __future__ import annotations

import io
import random
import tarfile
import threading
import time

import pytest

from grid.errors import SourceError, UsageError
from grid.records import FAILED
from grid.sources import http_stream
from grid.sources.archive import ArchiveSource
from tests.archive_server import ArchiveServer


@pytest.fixture
def server():
    with ArchiveServer() as s:
        yield s


def one_file_tar(size: int, seed: int) -> bytes:
    """A plain tar holding data.bin: ``size`` random bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("data.bin")
        info.size, info.mtime = size, 1_700_000_000
        tar.addfile(info, io.BytesIO(random.Random(seed).randbytes(size)))
    return buf.getvalue()


def one_file_zip(size: int, seed: int) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.bin", random.Random(seed).randbytes(size))
    return buf.getvalue()


# -- 1: a resumed download never splices two versions of the file -------------------------------


@pytest.mark.parametrize("etag", [None, 'W/"weak"'], ids=["no-validator", "weak-etag"])
def test_no_strong_validator_refuses_to_resume_a_changed_file(client, server, etag):
    old, new = one_file_tar(2 << 20, 1), one_file_tar(2 << 20, 2)  # same length, other bytes
    server.served.files["/d.tar"] = old
    server.served.changes["/d.tar"] = new
    server.served.etag = etag
    server.served.break_after = len(old) // 2
    with pytest.raises(SourceError, match="no ETag/Last-Modified") as caught:
        client.create(server.url("/d.tar"), "spliced")
    assert "cannot resume" in str(caught.value) and "try again" in str(caught.value)
    assert not [r for _, r in server.served.requests if r], "no Range request without validator"
    (v,) = client.versions("spliced")
    assert v.status == FAILED


def test_last_modified_is_a_validator_for_resuming(client, server):
    data = one_file_tar(2 << 20, 3)
    server.served.files["/d.tar"] = data
    server.served.etag = None
    server.served.last_modified = "Tue, 14 Nov 2023 22:13:20 GMT"
    server.served.break_after = len(data) // 2
    v = client.create(server.url("/d.tar"), "lm")
    assert v.status == "succeeded"
    assert server.served.if_ranges == ["Tue, 14 Nov 2023 22:13:20 GMT"]
    assert client.read_bytes("lm", v.number, "data.bin") == data[512 : 512 + (2 << 20)]


def test_range_answer_with_another_total_length_is_refused(client, server):
    # the server keeps its ETag but the file grew: Content-Range's total gives it away
    old, new = one_file_tar(2 << 20, 1), one_file_tar(3 << 20, 2)
    server.served.files["/d.tar"] = old
    server.served.changes["/d.tar"] = new
    server.served.break_after = len(old) // 2
    with pytest.raises(SourceError, match="changed"):
        client.create(server.url("/d.tar"), "grown")
    (v,) = client.versions("grown")
    assert v.status == FAILED


def test_zip_without_validator_is_spooled_not_read_by_range(client, server):
    server.served.files["/d.zip"] = one_file_zip(1 << 20, 4)
    server.served.etag = None
    v = client.create(server.url("/d.zip"), "z")
    assert v.status == "succeeded"
    assert not [r for _, r in server.served.requests if r], "Range reads could splice versions"
    assert client.read_bytes("z", v.number, "data.bin") == random.Random(4).randbytes(1 << 20)


def test_zip_whose_length_changes_between_range_reads_is_refused(client, server):
    old, new = one_file_zip(1 << 20, 4), one_file_zip(2 << 20, 5)
    server.served.files["/d.zip"] = old
    server.served.changes["/d.zip"] = new  # the Range reads after the first GET see this
    with pytest.raises(SourceError, match="changed"):
        client.create(server.url("/d.zip"), "z")


# -- 2: a trickling server fails, and progress shows bytes as they arrive -------------------------


def test_trickling_server_fails_as_too_slow(client, server, monkeypatch):
    monkeypatch.setattr(http_stream, "LOW_SPEED_TIME", 1.0)
    monkeypatch.setattr(http_stream, "LOW_SPEED_BYTES", 1024)
    data = one_file_tar(1 << 20, 6)
    server.served.files["/slow.tar"] = data
    server.served.trickle_after = 100_000
    server.served.trickle_every = 0.1
    server.served.trickle_for = 8.0  # then it hangs up (the old code resumed and succeeded)
    started = time.monotonic()
    with pytest.raises(SourceError, match="too slow") as caught:
        client.create(server.url("/slow.tar"), "slow")
    assert time.monotonic() - started < 6
    assert "1024 bytes" in str(caught.value) and "1 s" in str(caught.value)
    (v,) = client.versions("slow")
    assert v.status == FAILED


def test_downloaded_counts_bytes_as_they_arrive(server):
    data = one_file_tar(3 << 20, 7)
    server.served.files["/s.tar"] = data
    server.served.stall_after = 300_000
    made: list[ArchiveSource] = []
    failed: list[BaseException] = []

    def consume() -> None:
        try:
            made.append(ArchiveSource(server.url("/s.tar")))
            for _ in made[0].entries():
                pass
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not (made and made[0].downloaded == 300_000) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert made, "the source opens before the first megabyte arrives"
        assert made[0].downloaded == 300_000, "progress counts bytes as they arrive"
    finally:
        server.served.stall_after = None
        server.served.resume.set()
        thread.join(30)
        if made:
            made[0].close()
    assert not failed


# -- 3: a redirect to another scheme is refused, naming it ----------------------------------------


@pytest.mark.parametrize(
    "target",
    ["data:text/plain,hello", "mailto:someone@example.com", "ftp://127.0.0.1/x.tar", "http://[::1"],
)
def test_redirect_to_another_scheme_is_refused(client, server, target):
    server.served.redirects = {"/a.tar": target}
    with pytest.raises(UsageError, match="not a valid http") as caught:
        client.create(server.url("/a.tar"), "odd")
    assert target in str(caught.value)
    assert client.list() == []


# -- 4: a short body reports what arrived ---------------------------------------------------------


def test_short_body_reports_the_bytes_that_arrived(client, server):
    data = one_file_tar(5 << 20, 8)
    server.served.files["/short.tar"] = data
    server.served.ranges = False
    server.served.break_after = 3_700_000
    with pytest.raises(SourceError, match="cannot resume") as caught:
        client.create(server.url("/short.tar"), "short")
    assert f"after 3700000 of {len(data)} bytes" in str(caught.value)


def test_progress_is_reported_while_one_member_trickles_in(client, server):
    """Issue 13.6: the create's progress (the CLI line, the catalog's figure) moves every
    second while bytes trickle in inside one member, not only when a member is stored."""
    data = one_file_tar(1 << 20, 8)
    server.served.files["/t.tar"] = data
    server.served.trickle_after = 100_000
    server.served.trickle_every = 0.05
    server.served.trickle_for = 2.5
    seen: list[tuple[float, int | None]] = []
    client.create(
        server.url("/t.tar"), "t", progress=lambda p: seen.append((time.monotonic(), p.downloaded))
    )
    during = [d for _, d in seen if d is not None and 100_000 <= d < len(data)]
    assert len(during) >= 2, seen  # reported while the one member was still arriving
    assert client.version("t", 1).progress_done == len(data)
