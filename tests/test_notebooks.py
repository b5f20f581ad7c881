"""Every notebook runs headless with SMOKE=True; a failing cell fails the suite, named."""

from pathlib import Path

import pytest

from fastattn_lib.notebooks import run

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb files"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode(path, tmp_path):
    executed = run(path, tmp_path, parameters={"SMOKE": True}, timeout=600)
    assert executed.exists()
