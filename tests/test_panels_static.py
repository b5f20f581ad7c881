"""The kernel-free figure holds every state drawn by the panel's own function and shows one at a time."""

import plotly.graph_objects as go
import pytest

from fastattn_lib.panels.static import precomputed_figure


def draw(n_tables, n_hashes=1):
    figure = go.Figure(layout={"title": {"text": f"state {n_tables}/{n_hashes}"}})
    figure.add_scatter(x=[0, 1], y=[n_tables, n_hashes], name="a")
    figure.add_scatter(x=[0, 1], y=[n_hashes, n_tables], name="b")
    return figure


def shown(figure, visible):
    return [(tuple(t.y), t.name) for t, on in zip(figure.data, visible, strict=True) if on]


def test_each_slider_step_shows_exactly_its_state():
    figure = precomputed_figure(draw, ("n_tables", [1, 2, 4]))
    assert len(figure.data) == 3 * 2 and not figure.layout.updatemenus
    steps = figure.layout.sliders[0].steps
    assert [s.label for s in steps] == ["1", "2", "4"]
    for step, n_tables in zip(steps, [1, 2, 4], strict=True):
        expected = [(tuple(t.y), t.name) for t in draw(n_tables).data]
        assert shown(figure, step.args[0]["visible"]) == expected
        assert step.args[1]["title.text"] == f"state {n_tables}/1"
    assert shown(figure, [t.visible for t in figure.data]) == [((1, 1), "a"), ((1, 1), "b")]


def test_the_dropdown_installs_the_slider_of_its_combination():
    figure = precomputed_figure(draw, ("n_tables", [1, 2]), {"n_hashes": [3, 5]})
    assert len(figure.data) == 2 * 2 * 2
    buttons = figure.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["z = 3", "z = 5"], "the menu names parameters by their symbols"
    visible, layout = buttons[1].args
    assert shown(figure, visible["visible"]) == [((1, 5), "a"), ((5, 1), "b")]
    second_step = layout["sliders"][0]["steps"][1]
    assert shown(figure, second_step["args"][0]["visible"]) == [((2, 5), "a"), ((5, 2), "b")]
    assert second_step["args"][1]["title.text"] == "z = 5 · state 2/5"


def test_an_empty_slider_is_refused():
    with pytest.raises(ValueError, match="slider: expected"):
        precomputed_figure(draw, ("n_tables", []))
