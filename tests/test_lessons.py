"""Every notebook is a lesson, read from its source as committed: learning goals and a link to the notation
table first, a from-scratch cell checked against the library, at least three exercises wired to
`fastattn_lib.exercises`, a numbered caption under every figure, claims as `claim(...)` lines (no bare
`assert`, no timing claim), no cell that moves the reader's panel, short code cells, a recap and a pointer
on."""

import ast
import re
from pathlib import Path

import nbformat
import pytest

from fastattn_lib import exercises

NOTEBOOK_DIR = Path(__file__).parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
MAX_CODE_LINES = 10  # non-blank lines of a code cell: "no reader cell over about eight lines"
CHECK_CALL = re.compile(r'^exercises\.check\("(\w+)", answer\)$')
FIGURE_CAPTION = re.compile(r"^\*\*Figure (\d+)\.\*\*")
TIMING = re.compile(r"\b\w*(_ms|_seconds|elapsed|wall_s|perf_counter)\b")


def cells(path):
    return nbformat.read(path, as_version=4).cells


def code_lines(cell) -> list[str]:
    return [line for line in cell.source.splitlines() if line.strip()]


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def shows_a_figure(cell) -> bool:
    """A cell draws a figure when it calls .show() or ends with a panel (a widget the reader moves)."""
    lines = code_lines(cell)
    return cell.cell_type == "code" and (
        ".show()" in cell.source or bool(lines and re.fullmatch(r"\w*panel\w*", lines[-1]))
    )


def test_the_notation_table_exists():
    assert (NOTEBOOK_DIR / "notation.md").exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
class TestLesson:
    def test_opens_with_learning_goals_and_the_notation_link(self, path):
        first = cells(path)[0].source
        assert "**Learning goals.**" in first and "notation.md" in first and "**Reproduction note.**" in first

    def test_closes_with_a_recap_and_a_pointer_on(self, path):
        last = cells(path)[-1]
        assert last.cell_type == "markdown" and last.source.startswith("## Recap")
        assert "**Next:**" in last.source

    def test_has_a_from_scratch_cell_checked_against_the_library(self, path):
        notebook = cells(path)
        scratch = [i for i, cell in enumerate(notebook) if "from-scratch" in tags(cell)]
        assert len(scratch) == 1, "one cell tagged from-scratch"
        following = next(cell for cell in notebook[scratch[0] + 1 :] if cell.cell_type == "code")
        assert "claim(" in following.source, (
            "the cell after the from-scratch cell checks it against the library"
        )

    def test_exercises_come_as_exercise_solution_check(self, path):
        notebook = cells(path)
        number = path.name[:2]
        names = []
        for i, cell in enumerate(notebook):
            if "exercise" not in tags(cell):
                continue
            solution, check = notebook[i + 1], notebook[i + 2]
            assert "solution" in tags(solution), f"cell {i + 1} after an exercise is tagged solution"
            match = CHECK_CALL.match(check.source.strip())
            assert match, f'cell {i + 2} is exercises.check("name", answer)'
            names.append(match.group(1))
        own = sorted(name for name, e in exercises.EXERCISES.items() if e.notebook == number)
        assert len(names) >= 3 and sorted(names) == own, "every exercise of this notebook, each once"

    def test_every_figure_has_a_numbered_caption_below_it(self, path):
        notebook = cells(path)
        numbers = []
        for i, cell in enumerate(notebook):
            if shows_a_figure(cell):
                caption = notebook[i + 1] if i + 1 < len(notebook) else None
                match = (
                    caption is not None
                    and caption.cell_type == "markdown"
                    and FIGURE_CAPTION.match(caption.source)
                )
                assert match, f"cell {i + 1} draws a figure: the next cell starts **Figure N.**"
                numbers.append(int(match.group(1)))
        assert numbers == list(range(1, len(numbers) + 1)), f"figures numbered 1, 2, … in order: {numbers}"

    def test_claims_are_claim_lines_never_bare_asserts_or_timings(self, path):
        for i, cell in enumerate(cells(path)):
            if cell.cell_type != "code":
                continue
            tree = ast.parse(cell.source)
            assert not any(isinstance(node, ast.Assert) for node in ast.walk(tree)), f"cell {i}: use claim()"
            for line in cell.source.splitlines():
                assert not ("claim(" in line and TIMING.search(line)), f"cell {i}: a timing claim: {line}"

    def test_no_cell_moves_the_readers_panel(self, path):
        for i, cell in enumerate(cells(path)):
            assert not re.search(r"\.controls\[[^]]*\]\.value\s*=", cell.source), (
                f"cell {i} sets a panel control"
            )

    def test_code_cells_are_short(self, path):
        long = {i: len(code_lines(c)) for i, c in enumerate(cells(path)) if c.cell_type == "code"}
        long = {i: n for i, n in long.items() if n > MAX_CODE_LINES}
        assert not long, f"code cells over {MAX_CODE_LINES} lines (cell: lines): {long}"


README_ROW = re.compile(
    r"^\| \[(\w+)\]\(notebooks/\w+\.ipynb\) \|.*\| about (\d+) min \(([\d,]+) words, (\d+) exercises\) \|"
)


def test_the_readme_states_each_notebooks_words_exercises_and_reading_time():
    """The README's table: the words of the markdown cells within 5 %, the exercises exactly, and the reading
    time by its own rule (150 words a minute plus five minutes an exercise), to the nearest 5 minutes."""
    rows = {
        m[1]: m
        for line in (NOTEBOOK_DIR.parent / "README.md").read_text().splitlines()
        if (m := README_ROW.match(line))
    }
    assert sorted(rows) == [path.stem for path in NOTEBOOKS]
    for path in NOTEBOOKS:
        minutes, words, n_exercises = (
            int(rows[path.stem][2]),
            int(rows[path.stem][3].replace(",", "")),
            int(rows[path.stem][4]),
        )
        counted = sum(len(cell.source.split()) for cell in cells(path) if cell.cell_type == "markdown")
        assert abs(words - counted) <= 0.05 * counted, (path.stem, words, counted)
        assert n_exercises == sum(e.notebook == path.stem[:2] for e in exercises.EXERCISES.values()), (
            path.stem
        )
        assert minutes == 5 * round((counted / 150 + 5 * n_exercises) / 5), (path.stem, minutes)
