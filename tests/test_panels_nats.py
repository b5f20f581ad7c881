"""Notebook 05's panels: painted roles and their mask agree with the decoder; the policy panel decodes the
shipped models with the W it is given."""

import numpy as np
import pytest
import torch

from fastattn_lib import nats, nats_experiment
from fastattn_lib.panels import nats as nats_panels


def test_roles_update_mask_and_cache_agree_with_the_decoder():
    data = nats_panels.roles_update("GSSLLSGSLLLSSSGS", window=2, step=9)
    roles = nats_panels.parse_roles("GSSLLSGSLLLSSSGS")
    assert np.array_equal(data.mask, nats.nats_mask(roles, 2).numpy())
    q = k = v = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    _, sizes = nats.decode_with_cache(q, k, v, roles, 2)
    assert np.array_equal(data.cache_sizes, sizes.numpy())
    assert data.held.sum() == sizes[9] and not data.held[10:].any()
    with pytest.raises(ValueError, match="pattern"):
        nats_panels.parse_roles("GXL")
    with pytest.raises(ValueError, match="step"):
        nats_panels.roles_update("GLS", 1, 3)


def test_roles_panel_redraws():
    panel = nats_panels.roles_panel()
    before = np.array(panel.figures[0].data[0].z)
    panel.controls["pattern"].value = "G" + "S" * 23
    assert panel.last_error is None and panel.n_updates == 2
    assert not np.array_equal(before, np.array(panel.figures[0].data[0].z))


def test_policy_update_decodes_the_shipped_models():
    data = nats_panels.policy_update(2.0, window=8, budget=16, device="cpu")
    nats_result, sliding, h2o = data.results
    assert (nats_result.policy, sliding.policy, h2o.policy) == ("nats", "sliding", "h2o")
    assert nats_result.accuracy == 1.0 and sliding.accuracy < 0.5 and h2o.accuracy < 0.5
    assert max(sliding.sizes_over_steps) <= 16 and max(h2o.sizes_over_steps) <= 16
    narrower = nats_panels.policy_update(2.0, window=0, budget=16, device="cpu").results[0]
    assert narrower.mean_cache < nats_result.mean_cache
    # every W and budget of the sliders was decoded with the first update: moving them only looks up
    swept = nats_panels._swept.cache_info().currsize
    panel = nats_panels.policy_panel(device="cpu")
    panel.controls["window"].value, panel.controls["budget"].value = 3, 40
    assert panel.last_error is None and nats_panels._swept.cache_info().currsize == swept
    assert panel.data.results[0] == nats_experiment.evaluate(
        nats_panels.shipped_model(2.0, "cpu"), "nats", 2.0, *nats_experiment.held_out(64), window=3
    )
    # the panel's W does not leak into the cached model, which keeps the W it was trained with
    assert nats_panels.shipped_model(2.0, "cpu").attentions == (nats.NatsAttention(8),) * 2


def test_role_strip_shows_the_roles_of_a_nats_model_only():
    tokens = nats_experiment.held_out(1)[0][0]
    figure = nats_panels.role_strip_figure(nats_panels.shipped_model(2.0, "cpu"), tokens)
    grid = np.array(figure.data[0].z)
    assert grid.shape == (2 * 4, 64) and (grid[:, 0] == nats.GLOBAL).all()
    with pytest.raises(ValueError, match="NatsAttention"):
        nats_panels.role_strip_figure(nats_panels.shipped_model(None, "cpu"), tokens)


def test_regimes_figure_draws_both_tables_side_by_side():
    from fastattn_lib import nats_frozen

    fine_tuned = nats_experiment.load_results()["results"]
    frozen = nats_frozen.load_results()["results"]
    figure = nats_panels.regimes_figure(fine_tuned, frozen)
    assert len(figure.data) == 8  # four policies in each regime
    for trace in figure.data:
        results = fine_tuned if trace.xaxis == "x" else frozen
        policy = next(p for p, label in nats_panels.POLICY_LABELS.items() if label == trace.name)
        rows = [r for r in results if r["policy"] == policy]
        assert sorted(trace.x) == sorted(r["cache_fraction"] for r in rows)
    labels = [t for trace in figure.data if trace.xaxis == "x2" for t in trace.text]
    assert "λ = 0.1, C = 4" in labels and "λ = 0.5" in labels


def test_key_lifetimes_are_the_last_query_of_each_mask_column():
    from fastattn_lib.exercises.nats import _lifetimes_reference

    for pattern, window in (("GSSLLSGSLLLSSSGS", 2), ("GLLL", 0), ("S", 3), ("GSLSLGSL", 5)):
        ends = nats_panels.key_lifetimes(nats_panels.parse_roles(pattern), window)
        assert ends.tolist() == _lifetimes_reference(pattern, window)


def test_lifetime_figure_draws_one_bar_per_key_coloured_by_role():
    pattern, window = "GSSLLSGSLLLSSSGS", 2
    figure = nats_panels.lifetime_figure(pattern, window)
    ends = nats_panels.key_lifetimes(nats_panels.parse_roles(pattern), window)
    assert [trace.marker.color for trace in figure.data] == list(nats_panels.ROLE_COLOURS)
    bars = {j: (base, length) for t in figure.data for j, base, length in zip(t.y, t.base, t.x, strict=True)}
    assert sorted(bars) == list(range(len(pattern)))
    for j, (base, length) in bars.items():
        assert base == j - 0.5 and base + length == ends[j] + 0.5  # from query j to its last query
    for role, trace in enumerate(figure.data):
        assert all(pattern[j] == "GLS"[role] for j in trace.y)


def test_step_bounds_follow_the_pattern_and_clamp_the_step():
    assert nats_panels.step_bounds("GLS", 7) == (2, 2)
    assert nats_panels.step_bounds("G" * 30, 7) == (29, 7)
    assert nats_panels.step_bounds("GL", -1) == (1, 0)
    with pytest.raises(ValueError, match="pattern"):
        nats_panels.step_bounds("", 0)


def test_roles_panel_step_slider_follows_a_longer_and_a_shorter_pattern():
    panel = nats_panels.roles_panel()  # 24 tokens, step 12
    step = panel.controls["step"]
    panel.controls["pattern"].value = "G" + "S" * 39
    assert panel.last_error is None and step.max == 39
    step.value = 39  # the last token of the longer pattern can be reached
    assert panel.last_error is None and panel.data.step == 39 and len(panel.data.roles) == 40
    panel.controls["pattern"].value = "GLS"
    assert panel.last_error is None and (step.max, step.value) == (2, 2)
    assert panel.data.step == 2 and len(panel.data.roles) == 3
    assert np.array(panel.figures[0].data[0].z).shape == (3, 3)
    with pytest.raises(ValueError, match="pattern"):
        panel.controls["pattern"].value = "GXS"
    assert panel.last_error is not None and step.max == 2  # a malformed pattern leaves the slider alone


def test_roles_panel_redraws_when_the_window_moves():
    panel = nats_panels.roles_panel()
    before = np.array(panel.figures[0].data[0].z)
    panel.controls["window"].value = 5
    assert panel.last_error is None and panel.n_updates == 2
    assert not np.array_equal(before, np.array(panel.figures[0].data[0].z)), "the mask should change"


def test_policy_panel_redraws_when_the_budget_moves():
    panel = nats_panels.policy_panel(device="cpu")
    before = np.array(panel.figures[0].data[1].y)
    panel.controls["budget"].value = 24
    assert panel.last_error is None and panel.n_updates == 2
    assert not np.array_equal(before, np.array(panel.figures[0].data[1].y)), "the baseline curve should move"


def test_decode_against_mask_is_exact():
    gap, sizes = nats_panels.decode_against_mask(seed=0)
    assert gap < 1e-4 and sizes.shape == (4,) and (sizes <= 48).all()


def test_load_or_train_gives_the_shipped_models():
    dense, tuned, history = nats_panels.load_or_train(smoke=False, retrain=False, device="cpu")
    assert dense.attentions != tuned.attentions == (nats.NatsAttention(8),) * 2
    assert set(history.loss) == {"dense", "nats"}


def test_compare_with_baselines_gives_the_baselines_a_margin():
    tokens, answers = nats_experiment.held_out(8)
    tuned, dense = nats_panels.shipped_model(2.0, "cpu"), nats_panels.shipped_model(None, "cpu")
    result, budget, baselines = nats_panels.compare_with_baselines(tuned, 2.0, dense, tokens, answers)
    assert budget == int(np.ceil(result.cache_at_last_query)) + 4 and set(baselines) == {"sliding", "h2o"}
    assert all(r.setting == budget for r in baselines.values())


def test_record_values_role_grid_and_chunks():
    tokens = nats_experiment.held_out(1)[0][0]
    values = nats_panels.record_values(tokens)
    assert len(values) == 4 and all(int(tokens[j - 2]) == nats_experiment.MARK for j in values)
    grid = nats_panels.role_grid(nats_panels.shipped_model(2.0, "cpu"), tokens)
    assert grid.shape == (8, 64) and set(np.unique(grid)) <= {0, 1, 2}
    assert nats_panels.roles_in_chunks(np.array([[0, 0, 2, 2, 1]]), 2)
    assert not nats_panels.roles_in_chunks(np.array([[0, 1, 2, 2]]), 2)
    rows = [{"policy": "nats", "setting": 0.1, "chunk": c} for c in (1, 4)]
    rows.append({"policy": "h2o", "setting": 8})
    assert sorted(nats_panels.chunk_rows(rows, 0.1)) == [1, 4]


def test_role_summary_counts_sliding_roles_and_kept_record_values():
    tokens = nats_experiment.held_out(4)[0]
    model = nats_panels.shipped_model(2.0, "cpu")
    sliding, kept = nats_panels.role_summary(model, tokens)
    grids = [nats_panels.role_grid(model, t).reshape(2, 4, -1) for t in tokens]
    assert sliding == pytest.approx(
        [np.mean([(g[layer] == nats.SLIDING).mean() for g in grids]) for layer in (0, 1)]
    )
    values_kept = [
        (g[1][:, nats_panels.record_values(t)] == nats.GLOBAL).any(0).all()
        for g, t in zip(grids, tokens, strict=True)
    ]
    assert kept == np.mean(values_kept)


def test_static_policy_panel_holds_the_live_panels_states():
    sparsities, windows, budgets = (2.0, 8.0), (8, 0), (8, 48)
    figure = nats_panels.static_nats_panel(sparsities, windows, budgets, device="cpu")
    n_states = len(sparsities) * len(windows) * len(budgets)
    assert len(figure.data) == 4 * n_states  # three cache curves and the accuracy bars per state
    assert [bool(t.visible) for t in figure.data] == [True] * 4 + [False] * (4 * n_states - 4)
    assert [step.label for step in figure.layout.sliders[0].steps] == ["8", "48"]
    buttons = figure.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == [
        "λ = 2.0, W = 8",
        "λ = 2.0, W = 0",
        "λ = 8.0, W = 8",
        "λ = 8.0, W = 0",
    ]
    states = ((0, 0, 2.0, 8, 8), (3, 1, 8.0, 0, 48))  # (menu entry, slider step, λ, W, budget): first, last
    for button, index, sparsity_weight, window, budget in states:
        step = buttons[button].args[1]["sliders"][0]["steps"][index]
        shown = [t for t, on in zip(figure.data, step["args"][0]["visible"], strict=True) if on]
        live = nats_panels.policy_figures()  # the live panel's own update and drawing, for the same settings
        nats_panels.draw_policies(live, nats_panels.policy_update(sparsity_weight, window, budget, "cpu"))
        expected = [*live[0].data, live[1].data[0]]
        assert [t.name for t in shown] == [t.name for t in expected]
        for ours, theirs in zip(shown, expected, strict=True):
            assert list(ours.x) == list(theirs.x) and list(ours.y) == list(theirs.y)
        assert list(shown[-1].text) == list(expected[-1].text)
        assert (
            f"λ = {sparsity_weight}, W = {window} · baselines' budget {budget};"
            in step["args"][1]["title.text"]
        )
    assert nats_panels.STATIC_SPARSITIES[0] == 2.0 and set(nats_panels.STATIC_SPARSITIES) == set(
        nats_experiment.SPARSITIES
    )  # one shipped model per λ, the live panel's default first


def test_nats_accuracy_is_the_policy_panels_nats_bar():
    assert (
        nats_panels.nats_accuracy(2.0, 1, device="cpu")
        == nats_panels.policy_update(2.0, 1, budget=8, device="cpu").results[0].accuracy
    )
