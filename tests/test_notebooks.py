"""Every notebook runs headless with SMOKE=True; a failing cell fails the suite, named."""

import nbformat
import pytest
from conftest import NOTEBOOKS

from fastattn_lib.notebooks import NotebookFailed, run


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb files"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode(path, smoke_notebooks):
    code = [
        cell for cell in nbformat.read(smoke_notebooks(path), as_version=4).cells if cell.cell_type == "code"
    ]
    assert code and all(cell.execution_count for cell in code), "every code cell ran"


def test_a_failing_cell_is_named(tmp_path):
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("SMOKE = False", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("x = 1"),
            nbformat.v4.new_code_cell("assert x == 2, 'the teaching stopped being true'"),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    path = tmp_path / "broken.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(
        NotebookFailed, match=r"broken.ipynb: cell .*`assert x == 2.*AssertionError.*stopped being true"
    ):
        run(path, tmp_path / "out", parameters={"SMOKE": True}, timeout=60)
