"""The CLI on archive URLs: progress, refusals as one line, the processing status shown."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime

import pytest

import grid
from grid.cli.datastores_view import datastores_table
from grid.cli.progress import CreateDisplay
from grid.client import CreateProgress
from grid.errors import UsageError
from grid.records import PROCESSING, DatastoreInfo, VersionInfo
from grid.reports import UsageReport
from grid.sources import http
from grid.sources.http import check_url
from tests.archive_server import ArchiveServer


def _tar(*names: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 5
            tar.addfile(info, io.BytesIO(b"hello"))
    return buf.getvalue()


@pytest.fixture
def server():
    with ArchiveServer() as s:
        s.served.files["/cats.tar.gz"] = _tar("cats/a.txt", "cats/b/c.txt")
        s.served.files["/evil.tar.gz"] = _tar("ok.txt", "../../etc/evil")
        yield s


def test_create_from_url_lists_and_reads(cli, server):
    made = cli("datastore", "create", server.url("/cats.tar.gz"))
    assert made.code == 0, made.err
    assert "created cats:1: 2 files" in made.out
    listed = cli("datastore")
    assert "cats" in listed.out and "succeeded" in listed.out
    assert cli("datastore", "cat", "cats:1", "b/c.txt").out == "hello"


def test_hostile_archive_is_one_line_exit_5_and_no_version(cli, server):
    refused = cli("datastore", "create", server.url("/evil.tar.gz"), "--name", "evil")
    assert refused.code == 5
    assert refused.err.count("\n") == 1 and "Traceback" not in refused.err
    assert "'../../etc/evil' climbs out" in refused.err and "no version was made" in refused.err
    assert "evil" not in cli("datastore").out


def test_limits_from_options_and_environment(cli, server):
    too_many = cli("datastore", "create", server.url("/cats.tar.gz"), "--max-files", "1")
    assert too_many.code == 5 and "more than 1 entries" in too_many.err
    by_env = cli("datastore", "create", server.url("/cats.tar.gz"), GRID_ARCHIVE_MAX_SIZE="4")
    assert by_env.code == 5 and "more than 4 bytes" in by_env.err
    bad = cli("datastore", "create", server.url("/cats.tar.gz"), "--max-size", "lots")
    assert bad.code == 2 and "not a size" in bad.err


def test_plain_progress_names_the_download(capsys):
    display = CreateDisplay("cats", tty=False)
    display.last = 0.0  # print now, not 5 s from now
    display.update(CreateProgress(10, 5_000_000, None, None, "processing", 7_000_000, 9_000_000))
    assert (
        "processing cats: downloaded 7.0 MB of 9.0 MB, 10 files, 5.0 MB" in capsys.readouterr().err
    )


def test_processing_status_shows_download_progress():
    now = datetime.now(UTC)
    v = VersionInfo(
        *("cats", 1, PROCESSING, None, "http://x/cats.tar.gz", 0, 0, 0, now, None, "m"),
        progress_done=1_200_000_000,
        progress_total=2_900_000_000,
    )
    table = datastores_table([DatastoreInfo("cats", now, 1, v)], UsageReport())
    cells = [str(c) for col in table.columns for c in col._cells]
    assert any("processing[/yellow] 41% (1.2 GB of 2.9 GB)" in c for c in cells)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.tar",
        "http://localhost:8080/x.tar",
        "http://10.1.2.3/x.tar",
        "http://192.168.0.1/x.tar",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x.tar",
        "http://[fd00:ec2::254]/x.tar",
        "http://0.0.0.0/x.tar",
    ],
)
def test_internal_addresses_refused_in_server_mode(url):
    with pytest.raises(UsageError, match="internal address"):
        check_url(url, allow_private=False)
    check_url(url, allow_private=True)  # embedded mode runs as the user: allowed


def test_server_mode_connects_only_to_checked_addresses(home, server, monkeypatch):
    """DNS rebinding: a name that passes the check with a public address and then resolves to
    an internal one is still not connected to."""
    monkeypatch.setattr(http, "check_url", lambda url, allow_private: None)  # the check "passed"
    with grid.Client(str(home), allow_private_urls=False) as strict:
        with pytest.raises(UsageError, match="internal address"):
            strict.create(server.url("/cats.tar.gz"), "cats")
        assert strict.list() == []
    assert not server.served.requests
