"""The kernel-free figure holds every state drawn by the panel's own function and shows one at a time."""

import numpy as np
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


def test_the_stepping_and_roles_panels_have_kernel_free_versions_drawn_by_their_update():
    from fastattn_lib.panels import mpc as mpc_panels
    from fastattn_lib.panels import nats as nats_panels

    stepping = mpc_panels.static_stepping_panel()
    rounds = mpc_panels.stepping_runs()[0].n_rounds + 1
    assert len(stepping.layout.sliders[0].steps) == rounds and len(stepping.data) == 2 * rounds
    last = mpc_panels.stepping_update(rounds - 1)
    step = stepping.layout.sliders[0].steps[-1]
    grids = [t.z for t, on in zip(stepping.data, step.args[0]["visible"], strict=True) if on]
    for grid, expected in zip(grids, (last.simulated, last.transformer), strict=True):
        as_array = np.array([[np.nan if v is None else v for v in row] for row in grid], dtype=float)
        np.testing.assert_array_equal(as_array, expected)  # empty slots (None, NaN) in the same places
    assert "identical" in step.args[1]["title.text"]

    roles = nats_panels.static_roles_panel("GLLSG", windows=(2, 0))
    assert [b.label for b in roles.layout.updatemenus[0].buttons] == ["W = 2", "W = 0"]
    assert len(roles.data) == 2 * 5 * 3  # W values × steps × (mask, line, bars)
    state = nats_panels.roles_update("GLLSG", 0, 3)
    visible = roles.layout.updatemenus[0].buttons[1].args[1]["sliders"][0]["steps"][3]["args"][0]["visible"]
    mask, sizes, held = [t for t, on in zip(roles.data, visible, strict=True) if on]
    assert [list(row) for row in mask.z] == state.mask.astype(float).tolist()
    assert list(sizes.y) == state.cache_sizes.tolist() and list(held.y) == state.held.astype(float).tolist()


def test_the_khop_panel_has_a_kernel_free_version_drawn_by_its_update():
    from fastattn_lib.panels import mpc as mpc_panels

    figure = mpc_panels.static_khop_panel(hops=(1, 5), hashes=(0, 1), device="cpu")
    assert [b.label for b in figure.layout.updatemenus[0].buttons] == ["z = 0", "z = 1"]
    assert figure.layout.sliders[0].currentvalue.prefix == "k = "
    step = figure.layout.updatemenus[0].buttons[1].args[1]["sliders"][0]["steps"][1]  # z = 1, k = 5
    shown = [t for t, on in zip(figure.data, step["args"][0]["visible"], strict=True) if on]
    state = mpc_panels.khop_update(5, 100, 32, 1, 1, device="cpu")
    assert [list(row) for row in shown[-1].z] == state.wrong.astype(float).tolist()  # the answers strip
    assert list(shown[-2].y) == [state.run.n_rounds, state.n_layers, 6]  # rounds, layers, k + 1
    assert f"{int(state.wrong.sum())} of 3200 wrong" in step["args"][1]["title.text"]
