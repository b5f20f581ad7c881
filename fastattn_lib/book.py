"""The rendered book: every notebook executed, as one static site that works offline and without a kernel.

python -m fastattn_lib.book --out build/book            # execute the notebooks (full parameters), build
python -m fastattn_lib.book --smoke --out build/book    # the same with SMOKE=True (what the tests build)
python -m fastattn_lib.book --executed DIR --out ...    # build from notebooks already executed into DIR

The builder is Sphinx with MyST-NB (the engine behind Jupyter Book 1) and the Sphinx Book Theme: an
established, pip-installable tool chain that renders executed notebooks, gives a table of contents, chapter
navigation and a client-side search, and runs without a network. Three things make the site self-contained:
- math is typeset by a MathJax 3 copied into the site (the part of it that renders TeX as HTML, taken from
  the `sphinx-mathjax-offline` package);
- plotly.js is one file in `_static/`, loaded by every page; each figure is a small div that draws itself
  from its JSON (the executed notebooks' own inlined copies of plotly.js are dropped);
- a live panel (an ipywidget, which needs a kernel) is replaced by a note; the kernel-free version of a
  panel, a plotly figure with precomputed states behind its sliders, follows it in the notebook itself, and
  the panel's caption names it (or says that none stands in).
Solutions to the exercises are collapsed (the cell's source behind a toggle).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import nbformat

from . import notebooks as notebook_runner

REPOSITORY = Path(__file__).resolve().parent.parent
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
LIVE_PANEL_NOTE = (
    '<p class="live-panel-note"><em>A live panel stands here when the notebook runs in JupyterLab: its '
    "sliders recompute with the library (on the GPU when there is one). Without a kernel it cannot move; the "
    "caption below names the figure that shows its states, precomputed behind plotly sliders.</em></p>"
)


def plotly_div(figure_json: dict) -> str:
    """A figure as a div and the script that draws it, without plotly.js (the page loads it once). Its
    fixed width (set for JupyterLab's wide cells) is dropped: in the book it fills the text column."""
    import plotly.io as pio

    layout = {key: value for key, value in figure_json.get("layout", {}).items() if key != "width"}
    return pio.to_html(
        {**figure_json, "layout": layout},
        full_html=False,
        include_plotlyjs=False,
        validate=False,
        default_width="100%",
        config={"responsive": True},
    )


def for_the_book(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """An executed notebook made ready to render: figures as plotly divs, live panels as a note, plotly.js
    copies dropped, solution cells collapsed."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if "solution" in cell.metadata.get("tags", []):
            cell.metadata["tags"] = [*cell.metadata["tags"], "hide-input"]
        outputs = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                output["data"] = {"text/html": plotly_div(data[PLOTLY_MIME])}
            elif WIDGET_MIME in data:
                output["data"] = {"text/html": LIVE_PANEL_NOTE}
            elif "window.PlotlyConfig" in str(data.get("text/html", "")):
                continue  # the renderer's own inlined plotly.js: the page already has it
            outputs.append(output)
        cell.outputs = outputs
    notebook.metadata.pop("widgets", None)
    return notebook


def landing_page(readme: str, chapters: list[str]) -> str:
    """The README as the site's first page, with the chapters in a (hidden) table of contents."""
    toctree = "\n".join(["", "```{toctree}", ":hidden:", ":maxdepth: 1", "", *chapters, "```", ""])
    return readme + "\n" + toctree


MATHJAX_PARTS = ("tex-chtml.js", "output/chtml", "input/tex/extensions", "ui", "a11y/assistive-mml.js")


def static_files(folder: Path) -> Path:
    """The site's scripts, one copy each: plotly.js and the part of a MathJax 3 that typesets TeX as HTML
    (its fonts, the TeX extensions it loads on demand, its menu), taken from the installed packages."""
    import importlib.util

    import plotly

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", folder)
    mathjax_package = importlib.util.find_spec("sphinx-mathjax-offline")
    if mathjax_package is None:
        raise RuntimeError("the book needs the sphinx-mathjax-offline package (pip install '.[book]')")
    mathjax = Path(mathjax_package.origin).parent / "static" / "mathjax"
    for part in MATHJAX_PARTS:
        source, target = mathjax / part, folder / "mathjax" / part
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    return folder


def sphinx_config(static: Path, work: Path) -> dict:
    return {
        "project": "fastattn",
        "html_title": "fastattn: fast attention, by hand",
        "extensions": ["myst_nb"],
        "html_theme": "sphinx_book_theme",
        # no download button: the site carries no source files to download
        "html_theme_options": {
            "show_toc_level": 2,
            "navigation_with_keys": True,
            "use_download_button": False,
        },
        "html_static_path": [str(static)],
        "html_js_files": ["plotly.min.js"],
        "mathjax_path": "mathjax/tex-chtml.js",
        "nb_execution_mode": "off",  # the notebooks arrive executed (papermill, as the tests run them)
        "nb_execution_cache_path": str(work / "jupyter_cache"),
        "myst_enable_extensions": ["dollarmath", "amsmath"],
        "myst_heading_anchors": 3,
        "exclude_patterns": ["**/.ipynb_checkpoints", "_build"],
        "suppress_warnings": ["myst.header", "mystnb.unknown_mime_type", "misc.highlighting_failure"],
        "html_copy_source": False,
        "html_show_search_summary": False,  # summaries are fetched page by page, which file:// forbids
        "html_show_sourcelink": False,
    }


def build(executed_dir: Path, out: Path, work: Path) -> Path:
    """Assemble the source (README as landing page, the notation page, the executed notebooks) and render
    it with Sphinx into `out`. Returns `out`."""
    from sphinx.application import Sphinx

    # absolute paths: Sphinx reads a relative static path against the source folder, not the caller's
    executed_dir, out, work = (Path(path).resolve() for path in (executed_dir, out, work))
    source = work / "source"
    shutil.rmtree(source, ignore_errors=True)
    (source / "notebooks").mkdir(parents=True)
    chapters = []
    for path in sorted(Path(executed_dir).glob("*.ipynb")):
        notebook = for_the_book(nbformat.read(path, as_version=4))
        nbformat.write(notebook, source / "notebooks" / path.name)
        chapters.append(f"notebooks/{path.stem}")
    if not chapters:
        raise ValueError(f"executed_dir: expected executed notebooks (*.ipynb) in {executed_dir}, found none")
    shutil.copy(REPOSITORY / "notebooks" / "notation.md", source / "notebooks" / "notation.md")
    chapters.append("notebooks/notation")
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    (source / "index.md").write_text(landing_page(readme, chapters), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    config = sphinx_config(static_files(work / "static"), work)
    app = Sphinx(
        str(source), None, str(out), str(work / "doctrees"), "html",
        confoverrides=config, status=sys.stdout, warning=sys.stderr, freshenv=True,
    )  # fmt: skip
    app.build()
    if app.statuscode:
        raise RuntimeError(f"Sphinx failed with status {app.statuscode}")
    return out


def execute(out_dir: Path, smoke: bool) -> Path:
    """Run every notebook of the repository into `out_dir` (papermill, as the tests do)."""
    for path in sorted((REPOSITORY / "notebooks").glob("*.ipynb")):
        started = time.perf_counter()
        notebook_runner.run(path, out_dir, {"SMOKE": True} if smoke else {})
        print(f"executed {path.name} in {time.perf_counter() - started:.0f} s")
    return out_dir


def site_report(out: Path) -> str:
    """The site's total size and each chapter page's size."""
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    lines = [f"site {out}: {total / 2**20:.1f} MiB in all"]
    for page in sorted((out / "notebooks").glob("*.html")):
        lines.append(f"  {page.relative_to(out)}: {page.stat().st_size / 2**20:.2f} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastattn_lib.book", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("build/book"))
    parser.add_argument("--smoke", action="store_true", help="execute with SMOKE=True (for tests)")
    parser.add_argument("--executed", type=Path, help="use notebooks already executed into this folder")
    args = parser.parse_args(argv)
    work = args.out.parent / f"{args.out.name}-work"
    executed = args.executed or execute(work / "executed", args.smoke)
    started = time.perf_counter()
    build(executed, args.out, work)
    print(f"built in {time.perf_counter() - started:.0f} s\n{site_report(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
