"""The rendered book, read offline in Chromium: every page opens with every request outside file:// blocked,
nothing fails to load, every formula is typeset, every figure is drawn, a static slider changes what is drawn,
and the previous/next chapter links walk the chapters in order.

The book is built from the notebooks executed with SMOKE=True (the same executions as the notebook tests).
"""

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from conftest import NOTEBOOKS
from test_browser import CHROMIUM, CHROMIUM_FLAGS, _require_browser

from fastattn_lib import book

pytestmark = pytest.mark.browser
CHAPTERS = [f"notebooks/{path.stem}.html" for path in NOTEBOOKS] + ["notebooks/notation.html"]
PAGES = ["index.html", *CHAPTERS]
# The notebooks whose panels have a kernel-free version (precomputed states behind plotly sliders).
WITH_STATIC_PANEL = [path for path in NOTEBOOKS if path.name[:2] in ("01", "02", "04", "05")]
# Text left untypeset: TeX delimiters outside code blocks.
RAW_MATH_JS = """() => {
    const body = document.querySelector('article') || document.body;
    const copy = body.cloneNode(true);
    const skip = 'pre, code, script, style, mjx-container, .plotly-graph-div';
    copy.querySelectorAll(skip).forEach(e => e.remove());
    const text = copy.textContent;
    const tokens = ['$$', '\\\\(', '\\\\[', '\\\\begin{', '\\\\frac', '\\\\ell'];
    return tokens.filter(token => text.includes(token));
}"""
MATHJAX_READY_JS = """() => !document.querySelector('script[src*="mathjax"]')
    || (window.MathJax && MathJax.startup && MathJax.startup.promise)"""
# A figure is drawn when plotly made its SVG and put something in it: traces, or (a diagram) shapes and text.
FIGURES_JS = """() => Array.from(document.querySelectorAll('.plotly-graph-div')).map(div => {
    const layout = div.layout || {};
    const parts = [div.data, layout.shapes, layout.annotations].map(list => (list || []).length);
    const content = parts.reduce((a, b) => a + b, 0);
    return div.querySelector('.main-svg') !== null && content > 0;
})"""


@pytest.fixture(scope="module")
def site(tmp_path_factory, smoke_notebooks):
    _require_browser()
    executed = tmp_path_factory.mktemp("executed-for-book")
    for path in NOTEBOOKS:
        shutil.copy(smoke_notebooks(path), executed / path.name)
    work = tmp_path_factory.mktemp("book")
    here = os.getcwd()
    os.chdir(work)  # relative paths, as `make book` passes them
    try:
        assert book.main(["--executed", str(executed), "--out", "site"]) == 0
    finally:
        os.chdir(here)
    return work / "site"


@pytest.fixture(scope="module")
def browser_page(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1300, "height": 1000})
        outside = []

        def only_local_files(route):
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", only_local_files)
        page = context.new_page()
        failed = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        try:
            yield page, outside, failed
        finally:
            browser.close()


def open_page(page, site: Path, name: str) -> None:
    page.goto((site / name).as_uri())
    page.wait_for_load_state("load")
    # Sphinx loads MathJax only on pages with math; there, wait until it has typeset the page.
    page.wait_for_function(MATHJAX_READY_JS)
    page.evaluate("() => window.MathJax ? MathJax.startup.promise.then(() => true) : true")


def test_the_site_has_a_page_per_notebook_under_its_own_name(site):
    assert (site / "index.html").exists() and (site / "search.html").exists()
    for chapter in CHAPTERS:
        assert (site / chapter).exists(), chapter
    assert len(list(site.rglob("plotly.min.js"))) == 1, "plotly.js once for the whole site"


@pytest.mark.parametrize("name", PAGES)
def test_a_page_reads_offline(site, browser_page, name):
    page, outside, failed = browser_page
    outside.clear(), failed.clear()
    open_page(page, site, name)
    assert not outside, f"{name} asked for something outside the machine: {outside[:3]}"
    assert not failed, f"{name}: requests failed: {failed[:3]}"
    assert page.evaluate(RAW_MATH_JS) == [], f"{name} shows untypeset TeX"
    drawn = page.evaluate(FIGURES_JS)
    assert all(drawn), f"{name}: figures not drawn: {drawn.count(False)} of {len(drawn)}"
    if name.startswith("notebooks/0"):
        assert drawn, f"{name} has no figure"
    if page.locator('script[src*="mathjax"]').count():
        assert page.locator("mjx-container").count() > 0, f"{name} loads MathJax but typeset nothing"


def test_search_finds_the_chapters_offline(site, browser_page):
    page, outside, failed = browser_page
    outside.clear(), failed.clear()
    page.goto((site / "search.html").as_uri() + "?q=cross-polytope")
    page.wait_for_function("() => document.querySelectorAll('#search-results li').length > 0")
    results = page.locator("#search-results").inner_text()
    assert "01 · Locality-sensitive hashing" in results and not outside and not failed


def test_solutions_are_collapsed(site, browser_page):
    page, _, _ = browser_page
    open_page(page, site, "notebooks/01_lsh_intuition.html")
    solutions = page.locator(".cell.tag_solution")
    assert solutions.count() >= 3
    assert not solutions.first.locator(".cell_input").is_visible(), "a solution's code shows before asked"


def static_figures(executed: Path) -> int:
    """How many figures of an executed notebook carry precomputed states behind a slider."""
    notebook = nbformat.read(executed, as_version=4)
    return sum(
        1
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("data", {}).get(book.PLOTLY_MIME, {}).get("layout", {}).get("sliders")
    )


@pytest.mark.parametrize("path", WITH_STATIC_PANEL, ids=[p.stem for p in WITH_STATIC_PANEL])
def test_moving_a_static_slider_changes_the_figure(site, browser_page, smoke_notebooks, path):
    assert static_figures(smoke_notebooks(path)) > 0, f"{path.name} has no kernel-free panel"
    page, _, _ = browser_page
    open_page(page, site, f"notebooks/{path.stem}.html")
    figure = page.locator(".plotly-graph-div:has(.slider-container)").first
    figure.scroll_into_view_if_needed()
    state = "div => JSON.stringify(div.data.map(t => t.visible)) + div.querySelector('.main-svg').innerHTML"
    before = figure.evaluate(state)
    rail = figure.locator(".slider-rail-touch-rect").first.bounding_box()
    page.mouse.click(rail["x"] + rail["width"] - 3, rail["y"] + rail["height"] / 2)
    page.wait_for_timeout(500)
    assert figure.evaluate(state) != before, "the slider moved but the figure stayed the same"


def test_next_and_previous_links_walk_the_chapters(site, browser_page):
    page, _, _ = browser_page
    open_page(page, site, "index.html")
    for chapter in CHAPTERS:
        page.locator("a.right-next").first.click()
        page.wait_for_load_state("load")
        assert page.url == (site / chapter).as_uri(), f"next should lead to {chapter}, got {page.url}"
    for chapter in reversed(["index.html", *CHAPTERS[:-1]]):
        page.locator("a.left-prev").first.click()
        page.wait_for_load_state("load")
        assert page.url == (site / chapter).as_uri(), f"previous should lead to {chapter}, got {page.url}"
