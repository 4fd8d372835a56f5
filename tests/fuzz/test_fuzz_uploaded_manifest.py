"""A manifest a team-mode client uploads is the server's input: every damaged or forged one in
the corpus is refused at commit as an UploadRefusedError (deleted, the create told why), never
another error."""

from __future__ import annotations

import contextlib

import pytest

import grid
from grid.service import publish
from grid.store.blob_check import unpacked_manifest
from tests.fuzz.fuzzing import corpus


@pytest.mark.parametrize("data", corpus("manifest"))
def test_a_forged_manifest_is_refused_at_commit(data, tmp_path):
    with contextlib.ExitStack() as stack:
        try:  # commit() refuses what fails to open as damaged
            manifest = stack.enter_context(unpacked_manifest(data, str(tmp_path)))
        except grid.IntegrityError:
            return
        with pytest.raises(grid.UploadRefusedError, match="uploaded manifest"):
            publish._check_blobs(manifest, {})  # its packs: none held
