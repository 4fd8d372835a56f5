"""Team mode end to end (issue 14): the real CLI logged in to real `grid server` processes
gives what it gives embedded; teams share datastores and nobody else sees them; the server
refuses uploads that do not match; a killed create resumes the same version."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

import grid
from grid.client.presigned import PresignedObjects
from grid.client.remote import RemoteClient
from tests.team import GRID, new_user, start_server, stop

pytestmark = pytest.mark.slow  # a `grid server` and whole CLI sessions against it

_TIME = re.compile(
    r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:[\d.]+(\+00:00)?)?|\d+\.\d s|[\d.]+ [kKMG]?B new in the store"
)


def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    r = subprocess.run([*GRID, *args], env=env, capture_output=True, timeout=120)
    out, err = (b.decode("utf-8", "backslashreplace") for b in (r.stdout, r.stderr))
    return r.returncode, _TIME.sub("T", out), _TIME.sub("T", err)


def test_cli_gives_the_same_answers_logged_in_as_embedded(team_server, mixed_tree, tmp_path):
    database, url = team_server
    root, _ = mixed_tree
    _, key = new_user(database)
    base = {**os.environ, "GRID_FSYNC": "0", "GRID_CONFIG_DIR": str(tmp_path / "cfg")}
    embedded = {**base, "GRID_HOME": str(tmp_path / "embedded")}
    remote = {**base, "GRID_HOME": str(tmp_path / "remote"), "GRID_URL": url, "GRID_API_KEY": key}
    commands = [
        ("datastore", "create", str(root), "--name", "cats"),
        ("datastore", "create", str(root), "--name", "cats", "--skip-unchanged"),
        ("datastore", "create", str(root / "train"), "--name", "cats"),
        ("datastore", "list"),
        ("datastore", "show", "cats"),
        ("datastore", "show", "cats:2", "--json"),
        ("datastore", "ls", "cats:1", "train"),
        ("datastore", "cat", "cats:1", "train/cat/0001.jpg"),
        ("datastore", "diff", "cats:1", "cats:2"),
        ("datastore", "verify", "cats:1"),
        ("datastore", "download", "cats:1", str(tmp_path / "dl-{mode}")),
        ("datastore", "delete", "cats:1"),
        ("datastore", "show", "nope"),
        ("datastore", "cat", "cats:7", "x"),
        ("datastore", "ls", "cats:1"),
        ("datastore", "create", str(tmp_path / "missing"), "--name", "x"),
        ("datastore", "create", str(root), "--name", "bad name"),
        ("datastore", "show", "someone/cats"),
    ]
    for command in commands:
        got = {}
        for mode, env in (("embedded", embedded), ("remote", remote)):
            args = [a.replace("{mode}", mode) for a in command]
            code, out, err = _run(env, *args)
            got[mode] = (code, out.replace(mode, "{mode}"), err.replace(mode, "{mode}"))
        emb, rem = got["embedded"], got["remote"]
        if command[1] == "show" and "--json" in command:  # who made it differs: the host's pid
            emb = (
                emb[0],
                re.sub(
                    r'"(pid|manifest_id|stored_bytes|exclusive_bytes|host)": [^,\n]+', "", emb[1]
                ),
                emb[2],
            )
            rem = (
                rem[0],
                re.sub(
                    r'"(pid|manifest_id|stored_bytes|exclusive_bytes|host)": [^,\n]+', "", rem[1]
                ),
                rem[2],
            )
        if command[1] == "list":  # stored bytes differ: embedded manifests are deltas
            emb, rem = (
                (emb[0], _bytes.sub("N B", emb[1]), emb[2]),
                (rem[0], _bytes.sub("N B", rem[1]), rem[2]),
            )
        if command[1] == "show" and command[2] == "cats":  # the stored column: see BENCHMARKS
            emb, rem = (emb[0], "", emb[2]), (rem[0], "", rem[2])
        if command[1] == "show" and command[2] == "someone/cats":  # embedded: log in first
            assert emb[0] == rem[0] == 3 or (emb[0] == 2 and rem[0] == 3), (emb, rem)
            continue
        assert emb == rem, command
    assert _run(remote, "datastore", "gc", "--grace", "0")[0] == 0


_bytes = re.compile(r"\d+(\.\d+)? (B|kB|MB|GB)\b")


def _clients(database, url, tmp_path, *names_teams):
    out = []
    for i, teams in enumerate(names_teams):
        _, key = new_user(database, teams=teams)
        out.append(RemoteClient(url, key, str(tmp_path / f"home{i}")))
    return out


def test_a_team_shares_its_datastores_and_nobody_else_learns_their_names(
    team_server, mixed_tree, tmp_path
):
    database, url = team_server
    team = f"t{os.getpid()}x{time.monotonic_ns() % 10**6}"
    alice, bob, carol = _clients(database, url, tmp_path, (team,), (team,), ())
    root, files = mixed_tree
    v = alice.create(str(root), f"{team}/cats")
    assert v.datastore == f"{team}/cats" and v.status == "succeeded"
    assert f"{team}/cats" in [d.name for d in bob.list()]
    assert bob.read_bytes(f"{team}/cats", 1, "train/cat/0001.jpg") == files["train/cat/0001.jpg"]
    w = bob.create(str(root / "train"), f"{team}/cats")  # members write too
    assert w.number == 2
    assert carol.list() == []
    with pytest.raises(grid.errors.DatastoreNotFoundError) as hidden:
        carol.versions(f"{team}/cats")
    with pytest.raises(grid.errors.DatastoreNotFoundError) as missing:
        carol.versions(f"{team}/nothing-here")
    assert str(hidden.value).replace("cats", "X") == str(missing.value).replace("nothing-here", "X")
    with pytest.raises(grid.errors.NotFoundError) as refused:
        carol.create(str(root), f"{team}/cats")
    with pytest.raises(grid.errors.NotFoundError) as nobody:
        carol.create(str(root), "nosuchteam/cats")
    assert str(refused.value).replace(team, "T") == str(nobody.value).replace("nosuchteam", "T")
    with pytest.raises(grid.errors.DatastoreNotFoundError):
        carol.read_bytes(f"{team}/cats", 1, "train/cat/0001.jpg")
    assert [v.number for v in alice.versions(f"{team}/cats")] == [1, 2]
    for c in (alice, bob, carol):
        c.close()


def test_a_tampered_upload_fails_its_version_and_touches_no_other(
    remote_client, mixed_tree, tmp_path, monkeypatch
):
    root, files = mixed_tree
    good = remote_client.create(str(root), "ds")
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.bin").write_bytes(os.urandom(300_000))
    real_put = PresignedObjects.put

    def flip_a_byte(self, key, parts):
        data = bytearray(b"".join(parts))
        if key.startswith("packs/"):
            data[len(data) // 3] ^= 0xFF
        return real_put(self, key, [bytes(data)])

    monkeypatch.setattr(PresignedObjects, "put", flip_a_byte)
    with pytest.raises(grid.errors.IntegrityError):
        remote_client.create(str(other), "ds")
    bad = remote_client.version("ds", 2)
    assert bad.status == "failed" and "upload refused" in (bad.reason or "")
    assert remote_client.verify("ds", good.number).ok
    assert remote_client.read_bytes("ds", 1, "train/cat/0001.jpg") == files["train/cat/0001.jpg"]
    monkeypatch.setattr(PresignedObjects, "put", real_put)
    again = remote_client.create(str(other), "ds")  # the refused pack is uploaded anew
    assert again.status == "succeeded" and remote_client.verify("ds", again.number).ok


def test_a_client_cannot_commit_blobs_it_did_not_upload(remote_client, tmp_path, monkeypatch):
    """A lying client (it claims every pack in its index exists) that points its manifest at
    packs it never uploaded gets its version refused."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(200_000))
    monkeypatch.setattr(PresignedObjects, "put", lambda self, key, parts: sum(map(len, parts)))
    with pytest.raises(grid.errors.IntegrityError, match="not uploaded"):
        remote_client.create(str(src), "ds")
    assert remote_client.version("ds", 1).status == "failed"


def _pack_files(folder) -> set[str]:
    return {f for _, _, fs in os.walk(folder) for f in fs if re.fullmatch(r"[0-9a-f]{32}", f)}


def test_kill_9_mid_create_resumes_the_same_version_and_reuses_what_was_uploaded(
    tmp_path,
):
    root = tmp_path / "srv"
    database = f"sqlite:///{root}.db"
    storage = tmp_path / "objects"
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    proc, url = start_server(database, str(storage), root, log)
    try:
        name, key = new_user(database)
        packs = storage / name / "packs"
        src = tmp_path / "big"
        src.mkdir()
        for i in range(5):  # three packs of ~32 MB: the first is uploaded well before the end
            (src / f"part{i}.bin").write_bytes(os.urandom(16 << 20))
        env = {
            **os.environ,
            "GRID_HOME": str(tmp_path / "client"),
            "GRID_FSYNC": "0",
            "GRID_URL": url,
            "GRID_API_KEY": key,
            "GRID_LEASE_SECONDS": "2",
        }
        create = [*GRID, "datastore", "create", str(src), "--name", "big"]
        first = subprocess.Popen(create, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not _pack_files(packs) and time.monotonic() < deadline:
            time.sleep(0.02)
        uploaded = _pack_files(packs)
        assert uploaded, "no pack was uploaded"
        first.send_signal(signal.SIGKILL)
        first.wait()
        time.sleep(2.5)  # the lease lapses (a kill -9 on this host is seen at once anyway)
        r = subprocess.run(create, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "resuming big:1" in r.stderr and "created big:1" in r.stdout
        # the packs uploaded before the kill are kept as they were, not uploaded anew
        assert uploaded <= _pack_files(packs) and len(_pack_files(packs)) == 3
        with RemoteClient(url, key, str(tmp_path / "reader")) as reader:
            assert reader.verify("big", 1).ok
        # Ctrl-C leaves the version interrupted, to resume
        (src / "new.bin").write_bytes(os.urandom(40 << 20))
        second = subprocess.Popen(create, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        before = _pack_files(packs)
        deadline = time.monotonic() + 60
        while _pack_files(packs) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        second.send_signal(signal.SIGINT)
        assert second.wait(30) == 130
        with RemoteClient(url, key, str(tmp_path / "reader")) as reader:
            assert reader.version("big", 2).status == "interrupted"
    finally:
        stop(proc)
        log.close()


def test_two_servers_on_postgresql_and_seaweedfs_serve_the_same_data_without_carrying_it(
    postgres_url, seaweedfs_endpoint, mixed_tree, tmp_path
):
    """The production shape: stateless servers on one PostgreSQL database and one S3 bucket.
    A client creates through one server and another machine reads through the other; pack
    bytes travel between the clients and SeaweedFS only (the URLs point at the store)."""
    import boto3
    import httpx

    bucket = f"grid-team-{os.getpid()}"
    boto3.client("s3", endpoint_url=seaweedfs_endpoint).create_bucket(Bucket=bucket)
    log = open(tmp_path / "servers.log", "wb")  # noqa: SIM115 - closed below
    started = [
        start_server(
            postgres_url,
            f"s3://{bucket}/grid",
            tmp_path / f"server{i}",
            log,
            AWS_ENDPOINT_URL=seaweedfs_endpoint,
        )
        for i in range(2)
    ]
    try:
        (_, one), (_, two) = started
        _, key = new_user(postgres_url)
        root, files = mixed_tree
        with RemoteClient(one, key, str(tmp_path / "laptop")) as laptop:
            v = laptop.create(str(root), "cats")
            assert v.status == "succeeded" and v.files == len(files)
        urls = httpx.post(
            f"{two}/v1/owners/{laptop.username}/objects",
            json={"method": "GET", "keys": [f"manifests/{v.manifest_id[:2]}/{v.manifest_id}"]},
            headers={"Authorization": f"Bearer {key}"},
        ).json()["urls"]
        assert all(u.startswith(seaweedfs_endpoint) for u in urls.values())
        with RemoteClient(two, key, str(tmp_path / "cluster")) as cluster:
            assert [d.name for d in cluster.list()] == ["cats"]
            assert (
                cluster.read_bytes("cats", 1, "train/cat/0001.jpg") == files["train/cat/0001.jpg"]
            )
            assert cluster.verify("cats", 1).ok
            again = cluster.create(str(root), "cats")  # the other machine stores nothing new
            assert again.number == 2 and again.stored_bytes < 64 << 10
        keys = boto3.client("s3", endpoint_url=seaweedfs_endpoint).list_objects_v2(Bucket=bucket)
        names = [o["Key"] for o in keys.get("Contents", [])]
        assert any("/packs/" in k for k in names)
    finally:
        for proc, _ in started:
            stop(proc)
        log.close()


def test_gc_on_the_server_deletes_only_what_no_version_needs(remote_client, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "only-a.bin").write_bytes(os.urandom(300_000))  # alone in version 1's pack
    (b / "both.bin").write_bytes(shared := os.urandom(300_000))
    remote_client.create(str(a), "ds")
    remote_client.create(str(b), "ds")
    assert remote_client.gc(grace=0).packs_deleted == 0  # every pack is in use
    remote_client.delete("ds", 1)
    assert remote_client.gc(grace=3600).packs_deleted == 0  # younger than the grace period
    dry = remote_client.gc(grace=0, dry_run=True)
    assert dry.packs_deleted == 1
    done = remote_client.gc(grace=0)
    assert done.packs_deleted == 1 and done.bytes_reclaimed == dry.bytes_reclaimed
    assert remote_client.verify("ds", 2).ok
    assert remote_client.read_bytes("ds", 2, "both.bin") == shared
    assert remote_client.gc(grace=0).packs_deleted == 0
    (a / "both.bin").write_bytes(shared)
    again = remote_client.create(str(a), "ds")  # the deleted blob is uploaded anew
    assert again.stored_bytes > 300_000 and remote_client.verify("ds", again.number).ok
    # each gc and each commit's check was a job of the server's workers
    jobs = remote_client.jobs()
    gcs = [j for j in jobs if j.kind == "gc"]
    assert len(gcs) == 5 and all(j.state == "succeeded" for j in gcs)
    assert gcs[1].result["report"]["packs_deleted"] == 1  # newest first: the real run
    assert sorted(j.payload["number"] for j in jobs if j.kind == "verify") == [1, 2, 3]


def test_cli_team_flag_creates_for_the_team(team_server, mixed_tree, tmp_path):
    database, url = team_server
    team = f"cli{os.getpid()}"
    _, key = new_user(database, teams=(team,))
    _, other_key = new_user(database, teams=(team,))
    root, files = mixed_tree
    env = {**os.environ, "GRID_HOME": str(tmp_path / "h"), "GRID_URL": url, "GRID_API_KEY": key}
    code, out, err = _run(env, "datastore", "create", str(root), "--team", team)
    assert code == 0 and f"created {team}/my_dataset:1" in out, err
    mate = {**env, "GRID_HOME": str(tmp_path / "h2"), "GRID_API_KEY": other_key}
    code, out, _ = _run(mate, "datastore")
    assert f"{team}/my_dataset" in out
    r = subprocess.run(
        [*GRID, "datastore", "cat", f"{team}/my_dataset:1", "train/cat/0001.jpg"],
        env=mate,
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout == files["train/cat/0001.jpg"]


def test_a_pack_gc_dropped_is_forgotten_by_every_client_before_it_uploads(team_server, tmp_path):
    """A laptop that uploaded a pack last week still lists it in its own index; after another
    machine deleted the version and ran gc, the laptop's next create learns the pack is gone
    (once it holds its version's lease) and uploads those blobs again."""
    from grid.client.remote import RemoteClient

    database, url = team_server
    _, key = new_user(database)
    folder = tmp_path / "data"
    folder.mkdir()
    files = {f"f{i}.bin": os.urandom(200_000) for i in range(5)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with (
        RemoteClient(url, key, str(tmp_path / "laptop")) as laptop,
        RemoteClient(url, key, str(tmp_path / "desktop")) as desktop,
    ):
        laptop.create(str(folder), "ds")
        other = tmp_path / "other"
        other.mkdir()
        (other / "x.bin").write_bytes(os.urandom(1000))
        laptop.create(str(other), "other")  # its sync learns the packs of ds:1
        desktop.delete("ds", 1)
        assert desktop.gc(grace=0).packs_deleted >= 1
        again = laptop.create(str(folder), "ds")
        assert again.status == "succeeded" and again.stored_bytes >= 1_000_000
        assert laptop.verify("ds", again.number).ok
        for name, data in files.items():
            assert desktop.read_bytes("ds", again.number, name) == data


def test_usage_logged_in_counts_each_owner_as_the_embedded_client_counts_a_store(
    team_server, mixed_tree, tmp_path
):
    """A member sees their own datastores and their team's (as TEAM/NAME); each owner's
    total adds up; deleting a version lowers what is referenced by its exclusive bytes; a
    stranger's usage shows none of it."""
    database, url = team_server
    team = f"u{os.getpid()}x{time.monotonic_ns() % 10**6}"
    alice, bob, carol = _clients(database, url, tmp_path, (team,), (team,), ())
    root, _ = mixed_tree
    alice.create(str(root), "mine")
    alice.create(str(root), f"{team}/shared")
    alice.create(str(root / "train"), f"{team}/shared")
    seen = alice.usage()
    assert sorted(d.name for d in seen.datastores) == sorted([f"{team}/shared", "mine"])
    assert sorted((v.datastore, v.number) for v in seen.versions) == sorted(
        [(f"{team}/shared", 1), (f"{team}/shared", 2), ("mine", 1)]
    )
    assert seen.stored_bytes >= seen.referenced_bytes > 0 and seen.packs >= 2
    team_view = bob.usage()  # bob owns nothing: the team's part only
    assert [d.name for d in team_view.datastores] == [f"{team}/shared"]
    v2 = team_view.of_version(f"{team}/shared", 2)
    assert 0 < v2.exclusive_bytes < v2.added_bytes + 100_000
    bob.delete(f"{team}/shared", 2)
    after = bob.usage()
    assert after.referenced_bytes == team_view.referenced_bytes - v2.exclusive_bytes
    shared = after.of_datastore(f"{team}/shared")
    assert shared.exclusive_bytes == after.referenced_bytes  # the team's only datastore
    assert carol.usage().datastores == [] and carol.usage().referenced_bytes == 0
    for c in (alice, bob, carol):
        c.close()
