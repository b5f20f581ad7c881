"""Kernel-free panels: a figure that holds every state of a panel and switches between them in the page.

A live panel recomputes on every slider move, which needs a Python kernel. Its kernel-free version computes
a grid of states in advance with the same update and drawing functions, stacks the traces of all states into
one plotly figure and lets plotly's own controls show one state at a time: a slider for one parameter and,
when there are more, a dropdown over the combinations of the others. Choosing a dropdown entry installs that
entry's slider (steps for its states) and shows its first state. Everything is JSON in the page: it moves in
the rendered book, in exported HTML and in JupyterLab alike, with no kernel.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

# How the controls name the library's parameters: by the papers' symbols (see notebooks/notation.md).
SYMBOLS = {"n_tables": "ℓ", "n_hashes": "z", "beta": "β", "sparsity_weight": "λ", "window": "W", "hops": "k"}


def combined_views(views: Sequence[go.Figure], cells: Sequence[tuple[int, int]], **subplots) -> go.Figure:
    """A live panel's views in one figure, for its kernel-free version: view k's traces and its axes (titles,
    side, direction) go to the subplot cell cells[k] = (row, col); `subplots` goes to `make_subplots`."""
    figure = make_subplots(**subplots)
    for view, (row, col) in zip(views, cells, strict=True):
        figure.add_traces(list(view.data), rows=row, cols=col)
        for axis, update in (
            (view.layout.xaxis, figure.update_xaxes),
            (view.layout.yaxis, figure.update_yaxes),
        ):
            settings = {
                key: value for key, value in axis.to_plotly_json().items() if key not in ("domain", "anchor")
            }
            update(settings, row=row, col=col)
    return figure


def _label(values: Mapping) -> str:
    return ", ".join(f"{SYMBOLS.get(name, name)} = {value}" for name, value in values.items())


def precomputed_figure(
    draw: Callable[..., go.Figure],
    slider: tuple[str, Sequence],
    choices: Mapping[str, Sequence] | None = None,
) -> go.Figure:
    """Every state of `draw(**params)` in one figure, shown one at a time.

    `slider` is (parameter, values) for the slider; `choices` maps each other parameter to its values (the
    dropdown lists their combinations). `draw` returns one state's figure; the first state's layout is the
    figure's, and each state's own title is shown with it. Returns the combined figure.
    """
    name, values = slider
    values = list(values)
    if not values:
        raise ValueError("slider: expected a parameter name and at least one value")
    choices = dict(choices or {})
    combinations = [dict(zip(choices, combo, strict=True)) for combo in itertools.product(*choices.values())]
    figure, first_trace, state_titles = None, {}, {}
    for c, combination in enumerate(combinations):
        for v, value in enumerate(values):
            state = draw(**combination, **{name: value})
            if figure is None:
                figure = go.Figure(layout=state.layout)
            first_trace[c, v] = len(figure.data)
            state_titles[c, v] = state.layout.title.text or ""
            figure.add_traces(list(state.data))
    bounds = sorted(first_trace.values()) + [len(figure.data)]
    span = {key: (start, bounds[bounds.index(start) + 1]) for key, start in first_trace.items()}

    def visible(key) -> list[bool]:
        start, stop = span[key]
        return [start <= i < stop for i in range(len(figure.data))]

    def prefix(c: int) -> str:
        return f"{_label(combinations[c])} · " if choices else ""

    def slider_for(c: int) -> dict:
        steps = [
            {
                "label": str(value),
                "method": "update",
                "args": [{"visible": visible((c, v))}, {"title.text": prefix(c) + state_titles[c, v]}],
            }
            for v, value in enumerate(values)
        ]
        return {
            "active": 0,
            "currentvalue": {"prefix": f"{SYMBOLS.get(name, name)} = "},
            "steps": steps,
            "x": 0.0,  # the whole width under the plot; the menu, if any, sits under the slider
            "len": 1.0,
            "pad": {"t": 50},
        }

    for i, trace in enumerate(figure.data):
        trace.visible = span[0, 0][0] <= i < span[0, 0][1]
    figure.update_layout(sliders=[slider_for(0)], title_text=prefix(0) + state_titles[0, 0])
    if choices:
        buttons = [
            {
                "label": _label(combination),
                "method": "update",
                "args": [
                    {"visible": visible((c, 0))},
                    {"sliders": [slider_for(c)], "title.text": prefix(c) + state_titles[c, 0]},
                ],
            }
            for c, combination in enumerate(combinations)
        ]
        menu = {
            "buttons": buttons,
            "direction": "up",
            "x": 0.0,
            "xanchor": "left",
            "y": 0.0,
            "yanchor": "top",
        }
        figure.update_layout(updatemenus=[{**menu, "pad": {"t": 150}}])
    figure.update_layout(margin={"t": 110, "b": 200 if choices else 150})
    return figure
