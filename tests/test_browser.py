"""A person's view: JupyterLab in Chromium runs a notebook, a slider moves by keyboard, the plot changes.

JupyterLab serves a temporary copy of the notebooks (SMOKE=True) on 127.0.0.1; Playwright drives Debian's
/usr/bin/chromium, never a downloaded browser. Server and browser are shut down even when the test fails.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
# notebook, label of the slider the test moves
CASES = [
    ("01_lsh_intuition.ipynb", "ℓ (tables)"),
    ("02_anna_vs_softmax.ipynb", "ℓ (tables)"),
    ("03_mpc_simulation.ipynb", "k (hops)"),  # a label only the k-hop panel has
    ("04_match2_khop_training.ipynb", "ℓ (tables)"),
    ("05_nats_kv_pruning.ipynb", "step t"),  # a label only the roles panel has
]

pytestmark = pytest.mark.browser


def _require_browser():
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (Debian: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason + "; .ci/run must install it")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _smoke_copy(source: Path, target: Path) -> None:
    notebook = nbformat.read(source, as_version=4)
    parameters = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    parameters.source = parameters.source.replace("SMOKE = False", "SMOKE = True")
    assert "SMOKE = True" in parameters.source
    nbformat.write(notebook, target)


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory):
    _require_browser()
    root = tmp_path_factory.mktemp("lab")
    log_path = tmp_path_factory.mktemp("lab-log") / "server.log"
    for path in NOTEBOOKS.glob("*.ipynb"):
        _smoke_copy(path, root / path.name)
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(root / ".config"),
        "JUPYTER_RUNTIME_DIR": str(root / ".rt"),
        # one compute thread per kernel: torch's and numba's thread pools would otherwise fight the browser
        # for 2 cores (notebook 05's SMOKE training then takes minutes instead of seconds)
        "OMP_NUM_THREADS": "1",
        "NUMBA_NUM_THREADS": "1",
    }
    log = open(log_path, "w")  # noqa: SIM115 - closed in the finally below
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=root,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.5)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(root / ".rt", ignore_errors=True)


def _shut_down_kernels(base: str, token: str) -> None:
    """Stop every kernel the server runs, so the next notebook does not share the CPU with idle kernels
    (notebook 03's holds a Dask cluster with worker processes)."""
    with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=10) as response:
        kernels = json.load(response)
    for kernel in kernels:
        request = urllib.request.Request(f"{base}/api/kernels/{kernel['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()


@pytest.mark.parametrize(("notebook", "slider_label"), CASES, ids=[c[0].split(".")[0] for c in CASES])
def test_run_all_then_move_a_slider_with_the_keyboard(lab_url, notebook, slider_label):
    from playwright.sync_api import sync_playwright

    base, token = lab_url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        try:
            page.set_default_timeout(120_000)
            # A workspace of its own, so JupyterLab does not reopen the previous test's notebook beside it.
            page.goto(f"{base}/lab/workspaces/{Path(notebook).stem}/tree/{notebook}?token={token}")
            page.locator(".jp-Notebook").first.wait_for()
            assert page.locator(".jp-NotebookPanel").count() == 1
            # "Run All" before the kernel is connected silently runs nothing: wait for its status.
            page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first.wait_for()

            page.locator(".lm-MenuBar-item", has_text="Run").first.click()
            page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
            # Every cell has run when every prompt shows a number; Run All stops at the first error, which
            # leaves later prompts empty, so a traceback ends the wait too (and fails just below).
            page.wait_for_function(
                """() => {
                    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
                    const outputs = [...document.querySelectorAll('.jp-OutputArea-output')];
                    return (prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)))
                        || outputs.some(o => o.textContent.includes('Traceback'));
                }""",
                timeout=420_000,  # SMOKE Run All: under a minute alone, minutes on a loaded CI machine
            )
            outputs = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
            assert "Traceback" not in outputs and "Error" not in outputs.replace("error_y", ""), outputs[
                -3000:
            ]

            slider = page.locator(
                ".widget-slider", has=page.locator(".widget-label", has_text=slider_label)
            ).first
            panel = page.locator(".widget-vbox", has=slider).last
            panel.locator(".js-plotly-plot .cartesianlayer").first.wait_for()
            status = panel.locator(".widget-html").last
            # What the panel's plots draw (curves, markers, heatmap images), not their hover or toolbar.
            drawn = panel.locator(".js-plotly-plot .cartesianlayer")
            read_drawn = "layers => layers.map(layer => layer.innerHTML)"
            before_drawn, before_status = drawn.evaluate_all(read_drawn), status.inner_text()
            assert before_drawn and all(len(html) > 200 for html in before_drawn), "the panel drew nothing"

            slider.locator(".noUi-handle").first.focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_function(
                "([node, old]) => node.innerText !== old", arg=[status.element_handle(), before_status]
            )
            # let plotly finish the redraw it was sent
            page.wait_for_function(
                "([layers, old]) => layers.some((layer, i) => layer.innerHTML !== old[i])",
                arg=[drawn.element_handles(), before_drawn],
                timeout=10_000,
            )
            assert "error" not in status.inner_text().lower()
        except Exception:
            shot = Path(os.environ.get("FASTATTN_SCREENSHOTS", "/tmp")) / f"browser-failure-{notebook}.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failing page: {shot}")
            raise
        finally:
            browser.close()
            _shut_down_kernels(base, token)
