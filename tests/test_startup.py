"""Start-up (issue 18): what `grid --help`, `grid datastore list` and `grid datastore ls` import,
embedded and logged in to a server, and the fast read path giving the catalog's own answers.

No timings here (bench/startup_bench.py measures them): a heavy module on these paths fails.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys

import pytest

import grid
from grid.catalog.catalog import HEAD_REVISION, Catalog
from grid.catalog.quick_read import HEAD_REVISION as QUICK_HEAD
from grid.catalog.quick_read import open_quick
from grid.cli import commands
from grid.client.quick import connect_quick
from tests.team import new_user, start_server, stop

# Runs the CLI in this process, then writes the names of every module it imported.
PROBE = """
import json, sys
from grid.cli.app import main
try:
    main(sys.argv[2:])
except SystemExit:
    pass
with open(sys.argv[1], "w") as f:
    json.dump(sorted(sys.modules), f)
"""
# Never needed to print help, list datastores or a folder (the server's, the catalog's ORM,
# S3, Typer's Pydantic checks, rich's Markdown and syntax highlighting, trio).
HEAVY = (
    "sqlalchemy", "alembic", "boto3", "botocore", "fastapi", "starlette", "uvicorn", "pydantic",
    "markdown_it", "pygments", "trio",
)  # fmt: skip
HTTP = ("httpx", "httpcore", "h11", "anyio")


def imported(tmp_path, env: dict[str, str], *args: str) -> set[str]:
    out = tmp_path / "modules.json"
    p = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=120,
    )  # fmt: skip
    assert out.exists(), p.stderr
    return set(json.loads(out.read_text()))


def heavy(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted({m for m in modules if m.split(".")[0] in forbidden})


@pytest.fixture
def made(home, tmp_path):
    """An embedded installation with two datastores (one with two versions)."""
    src = tmp_path / "src"
    (src / "train").mkdir(parents=True)
    (src / "train" / "a.bin").write_bytes(b"a" * 100)
    (src / "b.txt").write_text("b")
    with grid.Client(str(home)) as c:
        c.create(str(src), "images")
        (src / "c.txt").write_text("c")
        c.create(str(src), "images")
        c.create(str(src / "train"), "other")
    return home


def test_help_imports_neither_the_work_nor_rich_extras(tmp_path):
    modules = imported(tmp_path, {}, "--help")
    assert heavy(modules, HEAVY + HTTP) == []
    assert not {"rich.markdown", "rich.traceback", "grid.store", "grid.catalog.catalog"} & modules
    assert not [m for m in modules if m.startswith(("grid.service.", "grid.cli.datastore"))]


@pytest.mark.parametrize("args", [["datastore", "list"], ["datastore", "ls", "images:2", "train"]])
def test_embedded_reads_need_no_sqlalchemy_nor_http(made, tmp_path, args):
    modules = imported(tmp_path, {"GRID_HOME": str(made)}, *args)
    assert heavy(modules, HEAVY + HTTP) == []
    assert "grid.catalog.quick_read" in modules  # the fast path answered


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("startup-server")
    database = f"sqlite:///{tmp / 'server.db'}"
    with open(tmp / "server.log", "wb") as log:
        proc, url = start_server(database, str(tmp / "storage"), tmp / "server-home", log)
        try:
            yield database, url
        finally:
            stop(proc)


def test_remote_reads_need_no_sqlalchemy(server, tmp_path):
    database, url = server
    _, key = new_user(database)
    env = {"GRID_URL": url, "GRID_API_KEY": key, "GRID_HOME": str(tmp_path / "home")}
    (tmp_path / "src" / "train").mkdir(parents=True)
    (tmp_path / "src" / "train" / "a.bin").write_bytes(b"a")
    p = subprocess.run(
        [sys.executable, "-m", "grid", "datastore", "create", str(tmp_path / "src"), "-n", "d"],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    for args in (["datastore", "list"], ["datastore", "ls", "d:1", "train"]):
        assert heavy(imported(tmp_path, env, *args), HEAVY) == [], args


def test_stand_ins_say_what_the_sub_commands_say():
    for name, (_module, _attr, _is_app, help_) in commands.SUBCOMMANDS.items():
        real = commands.load(name)
        assert (real.short_help or real.help) == help_, name
        assert not real.hidden and not real.deprecated


def test_quick_read_knows_the_current_schema():
    assert QUICK_HEAD == HEAD_REVISION


def test_quick_read_answers_as_the_catalog(made):
    path = str(made / "catalog.db")
    catalog, quick = Catalog(f"sqlite:///{path}"), open_quick(path, "local")
    assert quick is not None
    try:
        assert quick.datastores() == catalog.datastores()
        assert quick.versions("images") == catalog.versions("images")
        assert quick.version("images", 1) == catalog.version("images", 1)
        for name, number in (("nope", 1), ("images", 3), ("images", 0), ("images", 2**63)):
            with pytest.raises(grid.NotFoundError) as slow:
                catalog.version(name, number)
            with pytest.raises(type(slow.value), match=re.escape(str(slow.value))):
                quick.version(name, number)
        with pytest.raises(grid.DatastoreNotFoundError):
            quick.versions("nope")
    finally:
        quick.close()
        catalog.close()


def test_quick_read_leaves_what_it_cannot_read_to_the_catalog(made, tmp_path):
    path = str(made / "catalog.db")
    assert open_quick(str(tmp_path / "none.db"), "local") is None
    assert open_quick(path, "somebody") is None
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0009'")
    assert open_quick(path, "local") is None  # a schema to migrate: the normal path does it


def test_quick_reader_lists_as_the_client_and_defers_the_rest(made):
    quick = connect_quick()
    assert quick is not None
    with quick, grid.Client(str(made)) as client:
        assert quick.list() == client.list()
        assert quick.ls("images", 2, "train") == client.ls("images", 2, "train")
        assert quick.ls("images", None, "") == client.ls("images", None, "")
        assert quick.versions("other") == client.versions("other")
        with pytest.raises(grid.InvalidNameError):
            quick.versions("team/images")  # (the client's answer: no team mode here)
        with pytest.raises(grid.PathNotFoundError):
            quick.ls("images", 1, "nope")


def test_piped_tables_print_as_rich_prints_them():
    """render.show writes a plain ASCII table itself when piped: byte for byte rich's."""
    import io
    import random

    from rich.console import Console
    from rich.text import Text

    from grid.cli import render

    rng = random.Random(18)
    compared = 0
    for _ in range(200):
        heads = ["".join(rng.choice("ab d") for _ in range(rng.randint(1, 8))) for _ in "xyz"]
        table = render.columns_table(*heads, fold=heads[-1])
        for _ in range(rng.randint(0, 4)):
            cells = ["".join(rng.choice("ab c-:/.,%()09") for _ in range(rng.randint(0, 12)))]
            cells += ["[green]succeeded[/green] 4%", "é" if rng.random() < 0.1 else "-"]
            table.add_row(Text(cells[0]), cells[1], cells[2])
        expected = io.StringIO()
        Console(file=expected, width=1_000_000).print(table)
        lines = render._plain_lines(Console(file=io.StringIO()), table)
        if lines is not None:
            compared += 1
            assert "".join(line + "\n" for line in lines) == expected.getvalue()
    assert compared > 100
