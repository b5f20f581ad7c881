"""Running the notebooks headless, and keeping the committed ones free of outputs.

python -m fastattn_lib.notebooks run --out build notebooks/*.ipynb   # executed .ipynb + offline .html
python -m fastattn_lib.notebooks run --smoke --out build notebooks/01_lsh_intuition.ipynb
python -m fastattn_lib.notebooks strip notebooks/*.ipynb             # drop outputs and widget state
python -m fastattn_lib.notebooks check notebooks/*.ipynb             # exit 1 if any is not clean
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the error."""


def dirty_reasons(notebook: nbformat.NotebookNode) -> list[str]:
    """What keeps a notebook from being committable: outputs, execution counts, widget state."""
    reasons = []
    if "widgets" in notebook.metadata:
        reasons.append("metadata.widgets (saved widget state)")
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            reasons.append(f"cell {index} has outputs")
        if cell.get("execution_count") is not None:
            reasons.append(f"cell {index} has an execution count")
    return reasons


def strip(path: Path) -> bool:
    """Remove outputs, execution counts and widget state in place; True when the file changed."""
    notebook = nbformat.read(path, as_version=4)
    if not dirty_reasons(notebook):
        return False
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(notebook, path)
    return True


def run(path: Path, out_dir: Path, parameters: dict | None = None, timeout: int = 1800) -> Path:
    """Execute a notebook with papermill in its own folder; returns the executed copy in `out_dir`.

    A cell that raises becomes `NotebookFailed` naming the cell (index and first source line) and error.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    path, out_dir = Path(path).resolve(), Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / path.name
    try:
        papermill.execute_notebook(
            str(path),
            str(output),
            parameters=parameters or {},
            kernel_name="python3",
            cwd=str(path.parent),
            store_widget_state=False,
            execution_timeout=timeout,
            progress_bar=False,
        )
    except PapermillExecutionError as err:
        first_line = (err.source.strip().splitlines() or [""])[0]
        raise NotebookFailed(
            f"{path.name}: cell {err.cell_index} (execution {err.exec_count}, `{first_line}`) raised "
            f"{err.ename}: {err.evalue}"
        ) from None
    return output


def to_html(executed: Path) -> Path:
    """Export an executed notebook to standalone HTML; plotly figures carry plotly.js inline."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    html_path = executed.with_suffix(".html")
    html_path.write_text(body, encoding="utf-8")
    return html_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastattn_lib.notebooks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="execute notebooks into --out, with HTML")
    run_parser.add_argument("notebooks", nargs="+", type=Path)
    run_parser.add_argument("--out", type=Path, default=Path("build"))
    run_parser.add_argument("--smoke", action="store_true", help="run with SMOKE=True (seconds, not minutes)")
    for name in ("strip", "check"):
        commands.add_parser(name).add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)

    if args.command == "run":
        for path in args.notebooks:
            executed = run(path, args.out, {"SMOKE": True} if args.smoke else {})
            print(f"{path} -> {executed} and {to_html(executed)}")
        return 0
    if args.command == "strip":
        for path in args.notebooks:
            print(f"{path}: {'stripped' if strip(path) else 'already clean'}")
        return 0
    dirty = {path: dirty_reasons(nbformat.read(path, as_version=4)) for path in args.notebooks}
    for path, reasons in dirty.items():
        if reasons:
            print(f"{path}: {', '.join(reasons)}")
    return 1 if any(dirty.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
