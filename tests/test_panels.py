"""The panel machinery and notebook 01's panel: pure updates agree with theory, widgets redraw."""

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import pytest

from fastattn_lib.panels import lsh as lsh_panels
from fastattn_lib.panels.common import Panel


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


@pytest.mark.parametrize("family", ["hyperplane", "cross_polytope"])
@pytest.mark.parametrize(("n_tables", "n_hashes"), [(1, 1), (4, 2), (16, 3)])
def test_lsh_update_measurements_agree_with_theory(family, n_tables, n_hashes):
    data = lsh_panels.lsh_update(n_tables, n_hashes, family, 16, "cpu", n_points=300, n_queries=16)
    assert data.deviation_in_sigmas() < 4
    assert np.all(np.diff(data.theory) <= 1e-12)
    assert data.search.recall.shape == (n_tables,)
    assert np.all(np.diff(data.search.recall.numpy()) >= 0) and np.all(
        np.diff(data.search.examined.numpy()) >= 0
    )


def test_lsh_panel_moves_its_figures():
    panel = lsh_panels.lsh_panel(device="cpu")
    curve, search = np.array(panel.figures[0].data[1].y), np.array(panel.figures[1].data[0].x)
    panel.controls["n_tables"].value = 9
    assert panel.last_error is None
    assert not np.allclose(curve, panel.figures[0].data[1].y)
    assert len(panel.figures[1].data[0].x) == 9 and len(search) == lsh_panels.DEFAULTS["n_tables"]
    panel.controls["family"].value = "hyperplane"
    assert "hyperplane" in panel.figures[0].layout.title.text


def test_static_figures_have_titles_and_labels():
    for figure in (
        lsh_panels.hyperplane_circle_figure(),
        lsh_panels.cross_polytope_sphere_figure(n_points=200),
        lsh_panels.amplification_figure(),
    ):
        assert figure.layout.title.text
    circle = lsh_panels.hyperplane_circle_figure(n_hashes=3)
    assert len(np.unique(circle.data[0].marker.color)) <= 6  # z lines through the origin: at most 2z arcs


def test_anna_update_teaches_what_notebook_02_says():
    from fastattn_lib.panels import anna as anna_panels

    sharp = anna_panels.anna_update(10.0, 8, 4, "cross_polytope", 512, False, "cpu")
    coarse = anna_panels.anna_update(10.0, 1, 1, "cross_polytope", 512, False, "cpu")
    flat = anna_panels.anna_update(0.1, 8, 4, "cross_polytope", 512, False, "cpu")
    assert sharp.error < 0.1 < coarse.error  # more tables and hashes approach sharp softmax
    assert flat.error > 5 * sharp.error  # a flat softmax is an average over everyone: not ANNA-like
    assert sharp.softmax_block.shape == sharp.anna_block.shape == (anna_panels.SHOWN, anna_panels.SHOWN)
    # the blocks are some columns of row-stochastic matrices: non-negative, rows summing to at most 1
    for block in (sharp.softmax_block, sharp.anna_block):
        assert (block >= 0).all() and (block.sum(-1) <= 1 + 1e-5).all() and block.sum() > 1


def test_anna_panel_moves_its_figures():
    from fastattn_lib.panels import anna as anna_panels

    panel = anna_panels.anna_panel(device="cpu", n=256)
    before = np.array(panel.figures[1].data[0].z)
    panel.controls["n_hashes"].value = 3
    assert panel.last_error is None and not np.array_equal(before, np.array(panel.figures[1].data[0].z))
    panel.controls["causal"].value = True
    assert panel.last_error is None and panel.data.causal


# ---------------------------------------------------------------------------------- notebook 04


def test_distilled_update_pictures_the_shipped_model():
    from fastattn_lib import training
    from fastattn_lib.panels import training as training_panels

    data = training_panels.distilled_update(10.0, 8, 1, sample=3, device="cpu")
    record = training_panels.shipped_record("match2", 10.0)
    assert data.error == record["distilled_grid"][7][0]
    rows = data.anna_weights.sum(-1)
    assert np.allclose(rows[rows > 0], 1) and np.allclose(data.softmax_weights.sum(-1), 1)
    assert (data.partners == data.partners.T).all()
    # a position is positive exactly when it has a partner (itself included)
    assert ((data.partners.any(-1)) == data.labels.astype(bool)).all()
    zero_shot = training_panels.distilled_update(10.0, 8, 1, sample=3, stage="surrogate", device="cpu")
    assert zero_shot.error == record["zero_shot_grid"][7][0] > data.error
    with pytest.raises(ValueError, match="beta"):
        training_panels.distilled_update(3.0, 8, 1)
    assert training.STAGES == ("surrogate", "distilled")


def test_distilled_panel_redraws():
    from fastattn_lib.panels import training as training_panels

    panel = training_panels.distilled_panel(device="cpu")
    before = np.array(panel.figures[1].data[0].z)
    panel.controls["n_tables"].value = 1
    assert panel.last_error is None and panel.n_updates == 2
    assert not np.array_equal(before, np.array(panel.figures[1].data[0].z))
    assert "ℓ = 1" in panel.figures[1].layout.title.text


def test_stepping_update_shows_identical_memories_round_by_round():
    from fastattn_lib.panels import mpc as mpc_panels

    protocol, simulated, _ = mpc_panels.stepping_runs()
    last = mpc_panels.stepping_update(protocol.n_rounds)
    assert last.identical and last.n_rounds == simulated.n_rounds
    leaves, block, values = protocol.level_sizes[0], protocol.block, mpc_panels.STEPPING_VALUES
    assert np.nansum(last.simulated[:leaves, :block]) == sum(values)  # the leaves' own values
    offsets = last.simulated[1:leaves, block]  # delivered by the down-sweep: the sums before each leaf
    assert offsets.tolist() == [sum(values[: leaf * block]) for leaf in range(1, leaves)]
    with pytest.raises(ValueError, match="round"):
        mpc_panels.stepping_update(protocol.n_rounds + 1)


def test_khop_update_reports_rounds_layers_and_false_collisions():
    from fastattn_lib.panels import mpc as mpc_panels

    exact = mpc_panels.khop_update(hops=6, seq_len=60, memory=32, n_tables=2, n_hashes=0, device="cpu")
    assert exact.error == 0 and exact.false_pairs == 0 and exact.n_layers == 5
    assert all(r.max_sent <= 32 and r.max_received <= 32 for r in exact.run.rounds)
    coarse = mpc_panels.khop_update(hops=6, seq_len=60, memory=32, n_tables=2, n_hashes=1, device="cpu")
    assert coarse.n_hashes == 1 and coarse.false_pairs > 0 and coarse.error > 0


def test_mpc_panels_redraw():
    from fastattn_lib.panels import mpc as mpc_panels

    stepping = mpc_panels.stepping_panel()
    before = np.array(stepping.figures[0].data[0].z, dtype=float)
    stepping.controls["round"].value = 2
    assert stepping.last_error is None
    assert not np.array_equal(before, np.array(stepping.figures[0].data[0].z, dtype=float), equal_nan=True)
    khop = mpc_panels.khop_panel(device="cpu", seq_len=40)
    bars = list(khop.figures[1].data[0].y)
    khop.controls["hops"].value = 20
    assert khop.last_error is None and list(khop.figures[1].data[0].y) != bars
