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
