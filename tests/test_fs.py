"""fsspec `grid://`: pandas and pyarrow read straight from a datastore; ls, info, glob, find."""

from __future__ import annotations

import fsspec
import pandas as pd
import pytest

import grid


@pytest.fixture
def fs_home(home, tmp_path):
    src = tmp_path / "sales"
    (src / "raw").mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "id": range(5000),
            "city": ["paris", "oslo"] * 2500,
            "amount": [i * 0.5 for i in range(5000)],
        }
    )
    frame.to_csv(src / "raw" / "2024.csv", index=False)
    frame.to_parquet(src / "2024.parquet")
    (src / "raw" / "notes.txt").write_text("hello")
    (src / "latest.csv").symlink_to("raw/2024.csv")
    with grid.Client(str(home)) as c:
        c.create(str(src))
    return str(home), frame


def test_pandas_reads_csv_and_parquet_from_grid_urls(fs_home):
    home, frame = fs_home
    opts = {"home": home}
    pd.testing.assert_frame_equal(
        pd.read_csv("grid://sales/1/raw/2024.csv", storage_options=opts), frame
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet("grid://sales/1/2024.parquet", storage_options=opts), frame
    )
    pd.testing.assert_frame_equal(
        pd.read_csv("grid://sales/1/latest.csv", storage_options=opts), frame
    )


def test_ls_info_glob_find_cat(fs_home):
    home, _ = fs_home
    fs = fsspec.filesystem("grid", home=home)
    assert fs.ls("grid://", detail=False) == ["sales"]
    assert fs.ls("grid://sales", detail=False) == ["sales/1"]
    assert sorted(fs.ls("grid://sales/1", detail=False)) == [
        "sales/1/2024.parquet",
        "sales/1/latest.csv",
        "sales/1/raw",
    ]
    info = fs.info("grid://sales/1/raw/notes.txt")
    assert (info["type"], info["size"]) == ("file", 5)
    assert fs.info("grid://sales/1/raw")["type"] == "directory"
    assert fs.info("grid://sales/1/latest.csv")["type"] == "file"
    assert fs.glob("grid://sales/1/raw/*.csv") == ["sales/1/raw/2024.csv"]
    assert "sales/1/raw/notes.txt" in fs.find("grid://sales/1")
    assert fs.cat("grid://sales/1/raw/notes.txt") == b"hello"
    assert fs.cat_file("grid://sales/1/raw/notes.txt", start=1, end=3) == b"el"
    assert fs.exists("grid://sales/1/raw/notes.txt")
    assert not fs.exists("grid://sales/1/raw/nope.txt")
    assert not fs.exists("grid://sales/9")


def test_missing_paths_and_writes_give_the_errors_python_expects(fs_home):
    home, _ = fs_home
    fs = fsspec.filesystem("grid", home=home)
    with pytest.raises(FileNotFoundError):
        fs.open("grid://sales/1/nope.csv")
    with pytest.raises(FileNotFoundError):
        fs.ls("grid://nosuch")
    with pytest.raises(FileNotFoundError):
        fs.info("grid://sales/one/x")
    with pytest.raises(PermissionError):
        fs.open("grid://sales/1/new.csv", "wb")
