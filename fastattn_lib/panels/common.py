"""What every notebook panel shares: a timed refresh loop, its status line, and plotly set-up.

A panel is controls (ipywidgets) + figures (one `go.FigureWidget` per view) + two plain functions:
`compute(**params) -> data` (pure, tested directly) and `draw(figures, data)` (writes traces). Changing
any control recomputes and redraws inside `batch_update()`, so each figure changes once per update.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack

import ipywidgets as widgets
import plotly.graph_objects as go
import plotly.io as pio

from ..device import resolve_device, synchronize


def setup_plotly() -> None:
    """Render figures both live in JupyterLab and embedded (plotly.js inline) in exported HTML, with the
    mode bar standing at the side so it does not cover the titles of narrow figures."""
    pio.renderers.default = "plotly_mimetype+notebook"
    template = go.layout.Template(pio.templates["plotly"])
    template.layout.modebar.orientation = "v"
    pio.templates["fastattn"] = template
    pio.templates.default = "fastattn"


def states_at(update: Callable, opening: dict, changes: dict[str, dict]) -> dict:
    """A panel's `update` at its opening settings changed by each entry of `changes` (what a notebook's
    "Try these" list suggests), by name: the notebook asserts its numbers on the panel's own computation."""
    return {name: update(**{**opening, **change}) for name, change in changes.items()}


def device_options() -> list[str]:
    """Choices for a device dropdown: "auto" plus what this machine has."""
    options = ["auto", "cpu"]
    if resolve_device("auto").type == "cuda":
        options.append("cuda")
    return options


def slider(description: str, value: int, low: int, high: int, step: int = 1) -> widgets.IntSlider:
    """An integer slider that fires once on release (not while dragging)."""
    return widgets.IntSlider(
        value=value, min=low, max=high, step=step, description=description, continuous_update=False
    )


def dropdown(description: str, value, options: Sequence) -> widgets.Dropdown:
    return widgets.Dropdown(value=value, options=list(options), description=description)


class Panel:
    """Controls, figures and a status line that recompute on every change.

    `compute(**params)` receives the controls' values by name; `draw(figures, data)` updates the figures.
    Exceptions inside widget callbacks are swallowed by ipywidgets, so the panel records the last one
    in `last_error` (and shows it) for notebooks and tests to assert on.
    """

    def __init__(
        self,
        controls: dict[str, widgets.ValueWidget],
        figures: Sequence[go.FigureWidget],
        compute: Callable[..., object],
        draw: Callable[[Sequence[go.FigureWidget], object], None],
        fixed: dict | None = None,
    ):
        self.controls, self.figures = controls, list(figures)
        self.compute, self.draw, self.fixed = compute, draw, dict(fixed or {})
        self.status = widgets.HTML()
        self.last_error: BaseException | None = None
        self.last_update_ms = float("nan")
        self.n_updates = 0
        self.data = None
        for control in controls.values():
            control.observe(self._on_change, names="value")
        self.widget = widgets.VBox(
            [
                widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap")),
                widgets.HBox(self.figures, layout=widgets.Layout(flex_flow="row wrap")),
                self.status,
            ]
        )
        self.refresh()

    def params(self) -> dict:
        return {**self.fixed, **{name: control.value for name, control in self.controls.items()}}

    def refresh(self) -> None:
        params = self.params()
        device = resolve_device(params.get("device", "auto"))
        start = time.perf_counter()
        self.data = self.compute(**params)
        synchronize(device)
        with self._batch_updates():
            self.draw(self.figures, self.data)
        self.last_update_ms = 1000 * (time.perf_counter() - start)
        self.n_updates += 1
        # The count makes every update visibly new, even one that takes the same number of milliseconds.
        self.status.value = f"update {self.n_updates}: {self.last_update_ms:.0f} ms on <b>{device}</b>"

    def _batch_updates(self) -> ExitStack:
        stack = ExitStack()
        for figure in self.figures:
            stack.enter_context(figure.batch_update())
        return stack

    def _on_change(self, _change) -> None:
        try:
            self.refresh()
            self.last_error = None
        except Exception as err:  # shown in the panel and kept; ipywidgets would swallow it
            self.last_error = err
            self.status.value = f"<span style='color:#b00'>error: {html.escape(repr(err))}</span>"
            raise

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
