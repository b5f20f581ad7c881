"""Notebook 04's panel: the shipped Match2 models as ANNA, driven through its pure update."""

import numpy as np
import pytest

from fastattn_lib.panels import training as training_panels


def test_distilled_update_pictures_the_shipped_model():
    from fastattn_lib import training

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
    panel = training_panels.distilled_panel(device="cpu")
    before = np.array(panel.figures[1].data[0].z)
    panel.controls["n_tables"].value = 1
    assert panel.last_error is None and panel.n_updates == 2
    assert not np.array_equal(before, np.array(panel.figures[1].data[0].z))
    assert "ℓ = 1" in panel.figures[1].layout.title.text


def test_weight_copy_figure_draws_shares_and_errors_per_beta():
    from fastattn_lib import data, training
    from fastattn_lib.training import diagnosis

    x, y = data.load_test_set("match2")
    x, y = x[:16], y[:16]
    model = training.load_pretrained("match2", 10.0, "surrogate", "cpu")
    measured = {10.0: diagnosis.diagnose(model, 10.0, x, y, seeds=range(2))}
    shares = {10.0: diagnosis.share_by_tables(model, x, (1, 8), seeds=range(2))}
    figure = training_panels.weight_copy_figure(measured, shares, (1, 8))
    lines = [trace for trace in figure.data if trace.type == "scatter"]
    bars = [trace for trace in figure.data if trace.type == "bar"]
    assert list(lines[0].y) == list(shares[10.0]) and lines[1].y[0] == measured[10.0]["softmax"].partner_share
    assert [bar.y[0] for bar in bars] == [
        measured[10.0][kind].error for kind in ("softmax", "anna", "partners only")
    ]


def test_the_left_heatmap_names_the_weights_it_shows():
    """The distilled weights under softmax are not the surrogate: the title says which weights run there."""
    panel = training_panels.distilled_panel(device="cpu")
    title = panel.figures[0].layout.title.text
    assert "distilled weights under softmax" in title and "surrogate" not in title
    zero_shot = training_panels.distilled_panel(device="cpu", stage="surrogate")
    assert "the surrogate as trained under softmax" in zero_shot.figures[0].layout.title.text


def _seen(beta, n_tables, n_hashes, stage="distilled"):
    data = training_panels.distilled_update(beta, n_tables, n_hashes, sample=0, stage=stage, device="cpu")
    wrong = int((data.predictions != data.labels).sum())
    empty = int((data.anna_weights.sum(-1) == 0).sum())
    return round(data.error, 4), wrong, empty


def test_what_the_try_prompts_say_the_reader_sees():
    """Notebook 04, section 5 quotes these numbers (β = 10, test sequence 0): (test error, wrong positions
    of the sequence, rows that met no key)."""
    assert _seen(10.0, 8, 1) == (0.0002, 0, 3)  # the panel as it opens
    assert _seen(10.0, 1, 1) == (0.068, 2, 10)  # ℓ = 1
    assert _seen(10.0, 8, 6) == (0.0034, 0, 13)  # z = 6
    assert _seen(10.0, 8, 1, "surrogate")[:2] == (0.4277, 11)  # zero-shot


def test_named_lookups_read_the_shipped_tables():
    from fastattn_lib import training

    match2 = training_panels.shipped_record("match2", 10.0)
    assert training_panels.match2_error(match2, "distilled", 8, 1) == match2["distilled_grid"][7][0]
    assert training_panels.match2_error(match2, "zero-shot", 3, 6) == match2["zero_shot_grid"][2][5]
    induction = training_panels.shipped_record("induction", 10.0)
    pairs, hashes = training.GRIDS["induction"]["n_tables"], training.GRIDS["induction"]["n_hashes"]
    row, column = pairs.index([96, 32]), hashes.index(2)
    assert (
        training_panels.induction_error(induction, "distilled", 96, 32, 2)
        == (induction["distilled_grid"][row][column])
    )
    assert training_panels.best_induction_error(induction, "zero-shot") == min(
        map(min, induction["zero_shot_grid"])
    )
    with pytest.raises(ValueError, match="not in the shipped grid"):
        training_panels.induction_error(induction, "distilled", 96, 8, 2)
    with pytest.raises(ValueError, match="stage"):
        training_panels.match2_error(match2, "surrogate", 8, 1)
    with pytest.raises(ValueError, match="not in the shipped Match2 grid"):
        training_panels.match2_error(match2, "distilled", 17, 1)


def test_partner_table_lists_where_each_partner_sits():
    import torch

    tokens = torch.tensor([0, 5, 32, 5, 1])
    lines = training_panels.partner_table(tokens, rows=3).splitlines()
    assert lines == [
        "x[0] =  0 needs  0: found at positions [0]",
        "x[1] =  5 needs 32: found at positions [2]",
        "x[2] = 32 needs  5: found at positions [1, 3]",
    ]


def test_match2_grids_are_drawn_on_a_log_scale_with_zero_at_the_floor():
    results = training_panels.shipped_results("match2")
    figure = training_panels.match2_grids_figure(results)
    assert len(figure.data) == 2 * len(results["runs"])
    distilled_beta10 = figure.data[len(results["runs"]) + 2]
    errors = np.asarray(results["runs"][2]["distilled_grid"]).T
    assert np.allclose(distilled_beta10.z, np.log10(np.maximum(errors, training_panels.ERROR_FLOOR)))
    assert (errors == 0).any() and np.min(distilled_beta10.z) == -5
    assert figure.layout.coloraxis.colorbar.ticktext[0] == "0"


def test_headline_counts_and_causes_agree():
    from fastattn_lib import data, training

    x, y = data.load_test_set("match2")
    x, y = x[:32], y[:32]
    model = training.load_pretrained("match2", 1.0, device="cpu")
    wrong = training_panels.wrong_positions_per_draw(model, x, y, n_tables=2, n_draws=3)
    causes = training_panels.error_causes_per_draw(model, x, y, n_tables=2, n_draws=3)
    assert wrong == [sum(cause) for cause in causes] and sum(wrong) > 0
    assert wrong[0] == round(training.anna_errors(model, x, y, 2, 1, 1, impl="dense")[0] * y.numel())


def test_induction_pictures():
    from fastattn_lib import data, training

    run = training.load_run("induction", 10.0, device="cpu")
    models = training_panels.induction_models(run)
    assert list(models) == ["softmax surrogate", "copied into ANNA, z = 1", "distilled ANNA, z = 2"]
    assert [a.n_hashes for a in models["distilled ANNA, z = 2"].attentions] == [2, 2]
    x, _ = data.load_test_set("khop")
    figure = training_panels.induction_maps_figure(models, x[0])
    assert len(figure.data) == 3 * 2 and np.asarray(figure.data[0].z).shape == (100, 100)
    pair = training_panels.figure1_induction_pair(training_panels.shipped_record("induction", 10.0))
    assert [trace.coloraxis for trace in pair.data] == ["coloraxis", "coloraxis"]


def test_figure1_match2_draws_every_z_on_a_log_axis_with_zero_at_the_floor():
    record = training_panels.shipped_record("match2", 10.0)
    figure = training_panels.figure1_match2(record)
    errors = np.asarray(record["distilled_grid"])
    assert figure.layout.yaxis.type == "log" and len(figure.data) == errors.shape[1]
    assert np.allclose(figure.data[1].y, np.maximum(errors[:, 1], training_panels.ERROR_FLOOR))
    assert list(figure.data[1].customdata) == list(errors[:, 1])


def test_the_induction_grids_share_a_colour_scale_from_zero():
    record = training_panels.shipped_record("induction", 10.0)
    axis = training_panels.figure1_induction_pair(record).layout.coloraxis
    assert axis.cmin == 0 and axis.cmax == max(map(max, record["zero_shot_grid"] + record["distilled_grid"]))


def test_the_kernel_free_panel_holds_one_state_per_setting():
    betas, hashes, tables = (10.0, 1.0), (1, 6), (1, 8)
    figure = training_panels.static_training_panel(betas, hashes, tables, device="cpu")
    n_states = len(betas) * len(hashes) * len(tables)
    assert len(figure.data) == 4 * n_states  # two heatmaps and their partner circles per state
    assert [bool(trace.visible) for trace in figure.data] == [True] * 4 + [False] * (4 * n_states - 4)
    assert [step.label for step in figure.layout.sliders[0].steps] == ["1", "8"]
    buttons = figure.layout.updatemenus[0].buttons
    assert [button.label for button in buttons] == [f"β = {beta}, z = {z}" for beta in betas for z in hashes]
    assert "ANNA ℓ = 1, z = 1" in figure.layout.title.text and "β = 10" in figure.layout.title.text


def test_a_kernel_free_state_is_what_the_live_panel_draws():
    """State (β = 1, z = 6, ℓ = 8): the fourth menu entry's second slider step."""
    figure = training_panels.static_training_panel((10.0, 1.0), (1, 6), (1, 8), device="cpu")
    step = figure.layout.updatemenus[0].buttons[3].args[1]["sliders"][0]["steps"][1]
    shown = [trace for trace, on in zip(figure.data, step["args"][0]["visible"], strict=True) if on]
    panel = training_panels.distilled_panel(device="cpu", beta=1.0, n_tables=8, n_hashes=6)
    live = [trace for drawn in panel.figures for trace in drawn.data]
    assert len(shown) == len(live) == 4
    for static, drawn in zip(shown, live, strict=True):
        assert static.type == drawn.type
        for name in ("z",) if drawn.type == "heatmap" else ("x", "y"):
            assert np.array_equal(np.asarray(static[name]), np.asarray(drawn[name]))
    title = step["args"][1]["title.text"]
    assert panel.figures[0].layout.title.text in title and panel.figures[1].layout.title.text in title


def test_the_kernel_free_grid_is_in_the_shipped_tables_and_small_enough():
    import plotly.graph_objects as go

    from fastattn_lib import training

    grid = training.GRIDS["match2"]
    assert all([n] in grid["n_tables"] for n in training_panels.STATIC_TABLES)
    assert set(training_panels.STATIC_HASHES) <= set(grid["n_hashes"])
    shipped = {record["beta"] for record in training_panels.shipped_results("match2")["runs"]}
    assert set(training_panels.STATIC_BETAS) == shipped and training_panels.STATIC_BETAS[0] == 10.0
    # one state's traces in the page, times the full grid's 72 states, leave room under 1.5 MB for the
    # layout and the controls (about 0.2 MB at full size)
    one = training_panels.distilled_state_figure(10.0, 16, 6, device="cpu")
    traces = len(one.to_json()) - len(go.Figure(layout=one.layout).to_json())
    assert 72 * traces < 1_200_000


def _static_seen(beta, n_tables, n_hashes):
    """(test error, black rows, black rows exactly the positions without a partner, least partner weight
    of the other rows, softmax error) of test sequence 0 under the distilled model at (β, ℓ, z)."""
    data = training_panels.distilled_update(beta, n_tables, n_hashes, sample=0, device="cpu")
    empty, has_partner = data.anna_weights.sum(-1) == 0, data.partners.any(-1)
    share = (data.anna_weights * data.partners).sum(-1)[has_partner].min()
    exact = bool((empty == ~has_partner).all())
    return round(data.error, 4), int(empty.sum()), exact, round(float(share), 4), round(data.softmax_error, 2)


def test_what_the_kernel_free_caption_says():
    """Notebook 04's Figure 7 caption quotes these numbers."""
    assert _static_seen(10.0, 1, 1)[:2] == (0.068, 10)
    assert _static_seen(10.0, 8, 1)[:2] == (0.0002, 3)
    for n_tables in (8, 12):
        assert _static_seen(10.0, n_tables, 2)[1:4] == (13, True, 1.0)
    assert _static_seen(1.0, 8, 1)[4] == 0.33 and _static_seen(0.1, 8, 1)[4] == 0.45
    surrogates = {
        record["beta"]: record["softmax_error"]
        for record in training_panels.shipped_results("match2")["runs"]
    }
    assert round(surrogates[1.0], 3) == 0.005 and round(surrogates[0.1], 3) == 0.048
    flat = training_panels.distilled_update(0.1, 8, 1, sample=0, device="cpu").softmax_weights
    assert 0.028 <= flat.min() and flat.max() <= 0.035


def test_cosine_figure_bins_the_cosines_itself_and_keeps_every_pair():
    rng = np.random.default_rng(0)
    partner, other = rng.uniform(0.5, 1.0, 300), rng.uniform(-1.0, 1.0, 5000)
    figure = training_panels.cosine_figure({"model": (partner, other)}, dim=64)
    bars = [trace for trace in figure.data if trace.type == "bar"]
    assert [len(bar.y) for bar in bars] == [training_panels.COSINE_BINS] * 2, (
        "binned: one number per bin, not per pair"
    )
    assert all(abs(sum(bar.y) - 1) < 1e-9 for bar in bars), "every pair counted in some bin"
    edges = np.linspace(-1, 1, training_panels.COSINE_BINS + 1)
    assert np.allclose(bars[0].y, np.histogram(partner, bins=edges)[0] / 300)
