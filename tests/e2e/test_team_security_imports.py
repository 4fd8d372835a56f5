"""A team server that fetches sources itself (``.../imports``), on S3 storage: what it may read
with its own credentials. It never reads its storage's bucket for a user, and never takes its
credentials to an endpoint the client names inside its network.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.e2e.team_matrix import hex_id
from tests.team import new_user, start_server, stop

SERVER_KEY_ID = "AKIAGRIDSERVERTEST01"


@pytest.fixture(scope="module")
def s3_server(s3_endpoint, tmp_path_factory):
    """A one-machine server whose storage is a bucket (moto), with credentials of its own,
    that imports from any bucket but its storage's: (database, URL, bucket)."""
    import boto3

    root = tmp_path_factory.mktemp("security-s3")
    bucket = f"grid-security-{hex_id()}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    database = f"sqlite:///{root / 'server.db'}"
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": SERVER_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": "server-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with open(root / "server.log", "wb") as log:
        proc, url = start_server(
            database, f"s3://{bucket}/grid", root / "home", log, "--allow-s3-import", "*", **env
        )
        try:
            yield database, url, bucket
        finally:
            stop(proc)


def _post_import(url: str, key: str, owner: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """The last line of an import's answer ({} if it was refused outright)."""
    r = httpx.post(
        f"{url}/v1/datastores/{owner}/{name}/imports",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )
    if r.status_code != 200:
        return {}
    return dict(json.loads(r.text.strip().splitlines()[-1]))


def _unpacked(data: bytes) -> bytes:
    """``data`` with every zstd frame in it decompressed (packs and manifests are)."""
    import zstandard

    out = [data]
    for m in re.finditer(rb"\x28\xb5\x2f\xfd", data):
        try:
            out.append(zstandard.ZstdDecompressor().decompressobj().decompress(data[m.start() :]))
        except zstandard.ZstdError:
            continue
    return b"".join(out)


def test_an_import_cannot_copy_another_owners_objects_out_of_the_servers_storage(
    s3_server, tmp_path, monkeypatch
):
    """The server never reads its own storage's bucket for a user (it would copy another
    owner's packs and manifests into the user's datastore)."""
    from grid.client.remote import RemoteClient

    database, url, bucket = s3_server
    victim, victim_key = new_user(database)
    thief, thief_key = new_user(database)
    marker = f"the diary of {victim} {hex_id()}".encode()
    source = tmp_path / "diary"
    source.mkdir()
    (source / "diary.txt").write_bytes(marker * 50)
    monkeypatch.setenv("GRID_FSYNC", "0")
    with RemoteClient(url, victim_key, str(tmp_path / "victim")) as client:
        assert client.create(str(source), "private").status == "succeeded"
    last = _post_import(url, thief_key, thief, "loot", {"source": f"s3://{bucket}/grid/{victim}/"})
    recovered = []
    if "version" in last:
        with RemoteClient(url, thief_key, str(tmp_path / "thief")) as client:
            number = last["version"]["number"]
            recovered = [
                path
                for path, data in client.iter_files("loot", number)
                if marker in _unpacked(data)
            ]
    assert not recovered, f"{thief} reads {victim}'s file through {recovered}"
    assert "version" not in last, last


def test_an_import_takes_no_credentials_to_an_endpoint_the_client_names(s3_server):
    """An endpoint inside the server's network is refused like a private archive URL: the
    server never sends requests signed with its credentials there."""
    import socket
    import threading

    database, url, _bucket = s3_server
    user, key = new_user(database)
    seen: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    seen.append(conn.recv(65536))
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    try:
        body = {"source": "s3://any-bucket/any", "endpoint_url": f"http://127.0.0.1:{port}"}
        last = _post_import(url, key, user, "elsewhere", body)
    finally:
        done.set()
        thread.join(10)
        listener.close()
    assert not any(SERVER_KEY_ID.encode() in request for request in seen), seen[:1]
    assert not seen, seen[:1]  # a loopback endpoint: never reached
    assert "version" not in last, last
