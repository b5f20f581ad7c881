"""Notebook 02's panel: softmax against ANNA on one input, driven through its pure update."""

import numpy as np

from fastattn_lib.panels import anna as anna_panels


def test_anna_update_teaches_what_notebook_02_says():
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
    panel = anna_panels.anna_panel(device="cpu", n=256)
    before = np.array(panel.figures[1].data[0].z)
    panel.controls["n_hashes"].value = 3
    assert panel.last_error is None and not np.array_equal(before, np.array(panel.figures[1].data[0].z))
    panel.controls["causal"].value = True
    assert panel.last_error is None and panel.data.causal


def test_guarantee_cost_figure_plots_hashes_per_token_over_n():
    from fastattn_lib import guarantee

    rows = guarantee.guarantee_table([2**10, 2**12], 16, 0.3, 3)
    figure = anna_panels.guarantee_cost_figure({"hyperplane, c = 3": rows})
    assert list(figure.data[0].x) == [1024, 4096]
    assert list(figure.data[0].y) == [row["hashes / N"] for row in rows]
