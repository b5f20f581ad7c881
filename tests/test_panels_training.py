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
