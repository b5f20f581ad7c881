"""Notebook 02's panel: softmax against ANNA on one input, driven through its pure update."""

import numpy as np
import torch

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


def test_lonely_queries_are_the_rows_where_nothing_collides():
    from fastattn_lib import attention

    data = anna_panels.clustered_input(256, seed=0, device="cpu")
    for causal in (False, True):
        for n_tables, n_hashes in ((1, 3), (4, 4)):
            lonely = anna_panels.lonely_queries(data.q, data.k, n_tables, n_hashes, causal=causal)
            weights = attention.anna_weights(data.q, data.k, n_tables, n_hashes, causal=causal)
            assert torch.equal(lonely, weights.sum(-1) == 0)
            assert lonely.any()  # the comparison is not vacuous: these settings leave queries lonely


def test_the_panel_shows_its_lonely_queries():
    """What notebook 02's "Try: causal" says the reader sees: lonely queries drawn in red at output 0 and
    counted in the title; the defaults have none."""
    figures = anna_panels.anna_figures()
    causal = anna_panels.anna_update(10.0, 8, 2, "cross_polytope", 1024, True, "cpu")
    anna_panels.draw_anna(figures, causal)
    n_lonely = int(causal.lonely_queries.sum())
    assert 0.2 < causal.lonely < 0.35 and n_lonely == round(causal.lonely * 1024)
    red = figures[2].data[2]
    assert len(red.y) == n_lonely * anna_panels.D_VALUE and not np.any(red.y)
    assert f"{n_lonely} queries" in figures[2].layout.title.text
    default = anna_panels.anna_update(10.0, 8, 2, "cross_polytope", 1024, False, "cpu")
    anna_panels.draw_anna(figures, default)
    assert default.lonely == 0 and len(figures[2].data[2].y) == 0


def test_the_try_prompts_of_notebook_02_show_what_it_says():
    default = anna_panels.anna_update(10.0, 8, 2, "cross_polytope", 1024, False, "cpu")
    flat = anna_panels.anna_update(1.0, 8, 2, "cross_polytope", 1024, False, "cpu")
    far = anna_panels.anna_update(10.0, 16, 1, "cross_polytope", 1024, False, "cpu")
    assert 0.05 < default.error < 0.1  # "error 7 %"
    assert 3.0 < flat.error < 3.5  # "about 320 %"
    assert 0.3 < far.error < 0.45 and far.guarantee_ok == 0  # "about 36 %", "0 % of the shown queries"


def test_algorithm_1_by_hand_on_the_tiny_example():
    sums, counts = anna_panels.bucket_sums_and_counts()
    assert sums[0, 0] == 6 and counts[0, 0] == 2 and sums[1, 0] == 8 and counts[1, 0] == 3
    assert [round(anna_panels.tiny_output(anna_panels.TINY, i), 6) for i in range(3)] == [
        round(10 / 3, 6),
        2.8,
        0.0,
    ]
    figure = anna_panels.algorithm_1_diagram()
    texts = " ".join(a.text for a in figure.layout.annotations)
    assert "sum = 6, count = 2" in texts and "(6 + 4) / (2 + 1) = 3.33" in texts
    assert "2.8" not in texts  # the diagram leaves query 2 to exercise 1.1
    assert len(figure.layout.shapes) == 8  # 2 tables × 4 buckets


def test_tables_bucket_ids_are_the_tables_anna_attention_uses():
    from fastattn_lib import attention

    data = anna_panels.clustered_input(128, seed=1, device="cpu")
    query_ids, key_ids, v = anna_panels.tables_bucket_ids(data, 3, 2, seed=1)
    counts = (query_ids[:, :, None] == key_ids[:, None, :]).sum(0)
    assert torch.equal(counts, attention.collision_counts(data.q, data.k, 3, 2, seed=1))
    assert anna_panels.implementations_gap(data, 3, 2, seed=1) < 1e-5


def test_error_grid_figure_uses_one_log_colour_scale():
    error = np.array([[[2.0, 3.0], [4.0, 2.5]], [[0.02, 0.1], [0.5, 0.05]]])
    figure = anna_panels.error_grid_figure(error, (0.1, 10.0))
    assert len(figure.data) == 2 and all(trace.coloraxis == "coloraxis" for trace in figure.data)
    np.testing.assert_allclose(figure.data[1].z, np.log10(error[1]))
    np.testing.assert_allclose(figure.data[0].customdata, error[0])
    axis = figure.layout.coloraxis
    assert np.isclose(axis.cmin, np.log10(0.02)) and np.isclose(axis.cmax, np.log10(4.0))
    assert "0.1" in axis.colorbar.ticktext and "1" in axis.colorbar.ticktext


def test_guarantee_helpers_follow_rho_and_print_every_row():
    from fastattn_lib import guarantee

    settings = anna_panels.guarantee_settings([2**10, 2**12])
    assert len(settings) == 6 and anna_panels.cost_follows_rho(settings)
    text = anna_panels.guarantee_table_text(settings)
    assert len(text.splitlines()) == 1 + 6 * 2
    rows = guarantee.guarantee_table([2**10, 2**12], 16, 0.3, 2)
    assert not anna_panels.cost_follows_rho({"ρ > 1/3 but falling": rows[::-1]})


def test_global_average_and_run_sizes():
    anna_error, chunked_error = anna_panels.global_average_errors(512, device="cpu")
    assert anna_error < 1e-5 < 0.05 < chunked_error
    assert anna_panels.run_sizes(True, 512, 3, 16384).bench == [512, 1024, 2048, 4096]
    assert anna_panels.run_sizes(False, 512, 3, 4096).bench == [512, 1024, 2048, 4096]


def test_static_panel_holds_one_state_per_grid_point_drawn_as_the_live_panel_draws_it():
    n, shown = 128, 16
    figure = anna_panels.static_anna_panel(n, shown, "cpu")
    tables, betas, hashes = anna_panels.STATIC_TABLES, anna_panels.STATIC_BETAS, anna_panels.STATIC_HASHES
    n_states = len(tables) * len(betas) * len(hashes)
    assert len(figure.data) == 2 * n_states  # two heatmaps a state: softmax's weights and ANNA's
    assert [step.label for step in figure.layout.sliders[0].steps] == [str(t) for t in tables]
    buttons = figure.layout.updatemenus[0].buttons
    assert [button.label for button in buttons] == [f"β = {b}, z = {z}" for b in betas for z in hashes]
    # the default state (first β, first z, first ℓ) is visible, and only it
    assert [i for i, trace in enumerate(figure.data) if trace.visible] == [0, 1]
    assert figure.layout.title.text.startswith(f"β = {betas[0]}, z = {hashes[0]} · ℓ = {tables[0]}: error")
    for beta, n_hashes, n_tables in ((1.0, 4, 8), (betas[0], hashes[0], tables[0])):
        button = buttons[betas.index(beta) * len(hashes) + hashes.index(n_hashes)]
        step = button.args[1]["sliders"][0]["steps"][tables.index(n_tables)]
        state = [trace for trace, on in zip(figure.data, step["args"][0]["visible"], strict=True) if on]
        live = anna_panels.anna_figures()
        data = anna_panels.anna_update(
            beta, n_tables, n_hashes, "cross_polytope", n, False, "cpu", shown=shown
        )
        anna_panels.draw_anna(live, data)
        assert len(state) == 2
        for trace, view in zip(state, live[:2], strict=True):
            assert np.array_equal(np.asarray(trace.z), np.asarray(view.data[0].z))
            assert np.asarray(trace.z).shape == (shown, shown)
        assert f"ℓ = {n_tables}: error {data.error:.0%}" in step["args"][1]["title.text"]


def test_anna_update_shows_every_token_when_n_is_below_the_block():
    data = anna_panels.anna_update(10.0, 2, 2, "cross_polytope", 40, False, "cpu", shown=64)
    assert data.softmax_block.shape == data.anna_block.shape == (40, 40)
    np.testing.assert_allclose(data.softmax_block.sum(-1), 1, atol=1e-5)  # all keys shown: whole rows
