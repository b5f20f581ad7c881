"""The set-up a newcomer relies on: clean notebooks, commands that match the README, requirements in step."""

import re
from pathlib import Path

import nbformat
import pytest
import tomllib

from fastattn_lib.notebooks import dirty_reasons, strip

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebooks_carry_no_outputs_or_widget_state(path):
    assert dirty_reasons(nbformat.read(path, as_version=4)) == [], (
        f"run `make strip` before committing {path.name}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_code_cell_is_a_literal_parameters_cell(path):
    notebook = nbformat.read(path, as_version=4)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])
    names = {}
    for line in first.source.splitlines():
        name, _, value = line.partition("=")
        names[name.strip()] = eval(value, {"__builtins__": {}})  # literals only: no names, no calls
    assert names["SMOKE"] is False and names["DEVICE"] == "auto" and isinstance(names["SEED"], int)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_introduction_names_a_paper_and_ends_with_a_reproduction_note(path):
    notebook = nbformat.read(path, as_version=4)
    first = next(cell for cell in notebook.cells if cell.cell_type == "markdown").source
    assert re.search(r"\(https://arxiv\.org/abs/\d{4}\.\d{5}\)", first), "link the paper on arXiv"
    assert "**Reproduction note.**" in first


def test_product_never_cites_private_theorem_labels():
    """The papers' results are named in words: no "Theorem A/B/C/D", which are no numbering of the papers."""
    pattern = re.compile(r"\bTheorem [A-D]\b", re.IGNORECASE)
    files = [
        ROOT / "README.md",
        *NOTEBOOKS,
        *(ROOT / "fastattn_lib").rglob("*.py"),
        *(ROOT / "tests").glob("*.py"),
    ]
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in files
        if path.name != "test_repository.py"
        for match in pattern.finditer(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_strip_removes_outputs_and_widget_state(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    notebook.cells[0].outputs = [
        nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)
    ]
    notebook.cells[0].execution_count = 1
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    path = tmp_path / "dirty.ipynb"
    nbformat.write(notebook, path)
    assert len(dirty_reasons(nbformat.read(path, as_version=4))) == 3
    assert strip(path) is True
    assert dirty_reasons(nbformat.read(path, as_version=4)) == []
    assert strip(path) is False


def test_environment_yml_hands_everything_to_the_same_pip_requirements():
    text = (ROOT / "environment.yml").read_text()
    pip_lines = re.findall(r"^\s+- (--\S+ \S+)$", text, flags=re.MULTILINE)
    make_extras = re.search(r'--editable "\.\[([\w,]+)\]"', (ROOT / "Makefile").read_text()).group(1)
    assert pip_lines == ["--constraint .ci/constraints.txt", f"--editable .[{make_extras}]"]
    assert set(make_extras.split(",")) == {"dev", "bench", "mpc", "book"}
    conda_packages = re.findall(r"^  - (\w[\w=.]*)$", text, flags=re.MULTILINE)
    assert sorted(p.split("=")[0] for p in conda_packages) == ["pip", "python"]
    python = re.search(r"python=(\d+)\.(\d+)", text).groups()
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(x) for x in re.search(r">=(\d+)\.(\d+)", requires).groups())
    assert tuple(int(x) for x in python) >= minimum


def test_constraints_pin_every_dependency_but_leave_torch_to_the_makefile():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = project["dependencies"] + extras["dev"] + extras["bench"]
    names = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower().replace("_", "-") for r in requirements}
    pins = {}
    for line in (ROOT / ".ci/constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    assert "torch" not in pins
    assert names - {"torch"} <= set(pins), f"unpinned: {names - {'torch'} - set(pins)}"


def test_readme_commands_match_makefile_and_ci():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lab", "test", "notebooks", "strip"):
        assert f"make {target}" in readme and re.search(rf"^{target}:", makefile, flags=re.MULTILINE)
    assert "TORCH ?=" in makefile and "$(TORCH)" in makefile
    assert 'make test TORCH="torch==2.13.0"' in (ROOT / ".ci/run").read_text()


def test_top_level_is_as_documented():
    tracked = {
        p.name
        for p in ROOT.iterdir()
        if (not p.name.startswith(".") or p.name == ".ci") and not p.name.endswith(".egg-info")
    }
    expected = {
        "README.md",
        "environment.yml",
        "pyproject.toml",
        "Makefile",
        "notebooks",
        "fastattn_lib",
        "data",
        "tests",
        ".ci",
    }
    assert expected <= tracked
    assert tracked - expected <= {"build", "BENCHMARKS.md"}, tracked - expected
