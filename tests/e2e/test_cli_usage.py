"""Storage accounting through the CLI, as the issue's walkthrough types it: `list` and `show`
give what each datastore and version added and what each alone uses, the store's total, and
gc's report counts what a repack kept in use."""

from __future__ import annotations

import json
import os
import re


def _table(out: str) -> list[dict[str, str]]:
    """The rows of a piped table (columns split on runs of two or more spaces)."""
    lines = [line for line in out.splitlines() if line.startswith(" ")]
    header = lines[0].split()
    return [
        dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=False)) for line in lines[1:]
    ]


def test_list_show_and_gc_account_for_shared_data_after_a_delete(cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for i in range(20):
        (a / f"f{i:02d}").write_bytes(os.urandom(100_000))
    for i in range(3):
        (b / f"f{i:02d}").write_bytes((a / f"f{i:02d}").read_bytes())
    assert cli("datastore", "create", str(a)).code == 0
    assert cli("datastore", "create", str(b)).code == 0

    listed = cli("datastore", "list")
    rows = {r["name"]: r for r in _table(listed.out)}
    assert rows["a"]["added"] == "2.0 MB" and rows["a"]["exclusive"] == "1.7 MB"
    assert rows["b"]["added"].endswith(" kB") and rows["b"]["exclusive"].endswith(" kB")
    assert re.search(
        r"^store: 2\.0 MB in 1 pack and 2 manifests; 2\.0 MB used by versions, 0 B for gc to "
        r"give back$",
        listed.out,
        re.M,
    ), listed.out

    assert cli("datastore", "delete", "a", "--yes").code == 0
    assert "1.7 MB for gc to give back" in cli("datastore", "list").out
    gc = cli("datastore", "gc", "--grace", "0")
    assert re.search(r"1 repacked, .*\); 1 packs, 300\.\d kB in use$", gc.out), gc.out
    dry = cli("datastore", "gc", "--dry-run")
    assert dry.out.strip().endswith("1 packs, " + gc.out.strip().rsplit("1 packs, ", 1)[1])

    shown = cli("datastore", "show", "b")
    (row,) = _table(shown.out)
    assert row["added"].endswith(" kB") and float(row["added"].split()[0]) < 5
    assert row["exclusive"].startswith("30")  # b now alone holds its 300 kB
    assert re.search(r"^b: .* added by its versions; 30\d\.\d kB used by no other", shown.out, re.M)
    assert "0 B for gc to give back" in cli("datastore", "list").out

    listing = json.loads(cli("datastore", "list", "--json").out)
    assert [(d["name"], d["exclusive_bytes"] > 300_000) for d in listing] == [("b", True)]
    assert listing[0]["added_bytes"] == listing[0]["latest"]["stored_bytes"]
    one = json.loads(cli("datastore", "show", "b:1", "--json").out)
    assert one["exclusive_bytes"] == listing[0]["exclusive_bytes"] and one["used_by"] == []


def test_a_narrow_terminal_drops_the_added_column_rather_than_the_names(cli, tmp_path):
    """At 80 columns (a notebook's terminal) the list keeps every name whole: ``added`` (which
    ``show`` and ``--json`` give) goes first."""
    import subprocess

    from tests.e2e.conftest import GRID

    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.txt").write_text(name)
        assert cli("datastore", "create", str(tmp_path / name)).code == 0
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": "80"}
    out = subprocess.run(
        [*GRID, "datastore", "list"], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert " cats " in plain and " dogs " in plain and "exclusive" in plain
    assert "added" not in plain.splitlines()[0]
    assert max(len(line) for line in plain.splitlines()[:3]) <= 80
    wide = re.sub(
        r"\x1b\[[0-9;]*m",
        "",
        subprocess.run(
            [*GRID, "datastore", "list"],
            env={**env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout,
    )
    assert "added" in wide.splitlines()[0]
