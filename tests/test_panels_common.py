"""The panel machinery: redraws on change, reports its timing, keeps the errors ipywidgets would swallow,
and computes the states a notebook's "Try these" list names."""

import ipywidgets as widgets
import plotly.graph_objects as go
import pytest

from fastattn_lib.panels.common import Panel, states_at


def toy_panel(compute):
    figure = go.FigureWidget(go.Figure(go.Scatter()))

    def draw(figures, data):
        figures[0].data[0].y = data

    return Panel({"k": widgets.IntSlider(value=1, min=0, max=5)}, [figure], compute, draw)


def test_panel_redraws_on_change_and_reports_timing():
    panel = toy_panel(lambda k: [k, k + 1])
    panel.controls["k"].value = 3
    assert list(panel.figures[0].data[0].y) == [3, 4]
    assert panel.n_updates == 2 and panel.last_error is None
    assert panel.last_update_ms >= 0 and "ms on" in panel.status.value
    before = panel.status.value
    panel.controls["k"].value = 3  # no change: no update
    panel.controls["k"].value = 4
    assert panel.status.value != before and panel.status.value.startswith("update 3:")  # new even at equal ms


def test_panel_keeps_errors_that_ipywidgets_would_swallow():
    def compute(k):
        if k == 4:
            raise ValueError("k: four is not allowed")
        return [k]

    panel = toy_panel(compute)
    with pytest.raises(ValueError):
        panel.controls["k"].value = 4
    assert isinstance(panel.last_error, ValueError)
    assert "four is not allowed" in panel.status.value
    panel.controls["k"].value = 2
    assert panel.last_error is None and list(panel.figures[0].data[0].y) == [2]


def test_states_at_applies_each_change_to_the_opening_alone():
    def update(a, b, c=0):
        return (a, b, c)

    states = states_at(update, {"a": 1, "b": 2}, {"opening": {}, "b up": {"b": 5}, "with c": {"c": 7}})
    assert states == {"opening": (1, 2, 0), "b up": (1, 5, 0), "with c": (1, 2, 7)}  # changes do not pile up
