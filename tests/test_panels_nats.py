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
