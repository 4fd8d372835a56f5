"""A browser's upload on a server whose storage is S3 (SeaweedFS): where the bucket's CORS
rules let the page's origin PUT, the parts go straight to the store through presigned URLs,
as the CLI's packs do, and the server only checks and counts them; without such rules they
go through the server. Either way the version verifies and reads back byte for byte."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import boto3
import pytest

from grid.client.remote import RemoteClient
from tests.team import new_user
from tests.web import chromium_or_skip, grid_server, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.s3]
chromium_or_skip()


@pytest.fixture
def s3_server(seaweedfs_endpoint, tmp_path) -> Iterator[tuple[str, str, str]]:
    """A server on SeaweedFS with a bucket of its own: (database, URL, bucket)."""
    bucket = f"grid-web-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=seaweedfs_endpoint).create_bucket(Bucket=bucket)
    storage = f"s3://{bucket}/grid"
    with grid_server(tmp_path, storage, AWS_ENDPOINT_URL=seaweedfs_endpoint) as (database, url):
        yield database, url, bucket


def _upload(browser, url: str, user: str, key: str, folder) -> list[str]:
    """Upload ``folder`` from the page; the URLs its PUTs went to."""
    context = browser.new_context(base_url=url)
    page = context.new_page()
    puts: list[str] = []
    page.on("request", lambda r: puts.append(r.url) if r.method == "PUT" else None)
    try:
        sign_in(page, user, key)
        page.get_by_label("Datastore name").fill("shots")
        page.get_by_label("Pick a folder").set_input_files(str(folder))
        page.get_by_role("button", name="Upload").click()
        page.get_by_role("status").filter(has_text="shots:1 succeeded").wait_for(timeout=90_000)
    finally:
        context.close()
    return puts


@pytest.mark.parametrize("cors", [True, False], ids=["cors", "no-cors"])
def test_parts_go_to_the_store_where_its_cors_allows(
    browser, s3_server, seaweedfs_endpoint, tmp_path, monkeypatch, cors
):
    database, url, bucket = s3_server
    if cors:
        rule = {"AllowedOrigins": [url], "AllowedMethods": ["PUT"], "AllowedHeaders": ["*"]}
        boto3.client("s3", endpoint_url=seaweedfs_endpoint).put_bucket_cors(
            Bucket=bucket, CORSConfiguration={"CORSRules": [rule]}
        )
    user, key = new_user(database)
    folder = tmp_path / "shots"
    folder.mkdir()
    files = {f"s{i}.bin": os.urandom(3 * 1024 * 1024 + i) for i in range(6)}  # 3 parts
    for name, data in files.items():
        (folder / name).write_bytes(data)
    puts = _upload(browser, url, user, key, folder)
    assert len(puts) == 3
    where = seaweedfs_endpoint if cors else url
    assert all(u.startswith(where) for u in puts), puts
    monkeypatch.setenv("GRID_FSYNC", "0")
    with RemoteClient(url, key, str(tmp_path / "home")) as c:
        assert c.verify("shots", 1).ok
        for name, data in files.items():
            assert c.read_bytes("shots", 1, name) == data
    left = boto3.client("s3", endpoint_url=seaweedfs_endpoint).list_objects_v2(
        Bucket=bucket, Prefix=f"grid/{user}/uploads/"
    )
    assert left.get("KeyCount", 0) == 0  # the parts are gone once the version succeeded
