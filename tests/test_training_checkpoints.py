"""Checkpoints: both stages round-trip, the manifest is checked, nothing is unpickled."""

import pytest
import torch

from fastattn_lib import data, training
from fastattn_lib.data import DataError


def test_checkpoint_round_trip_and_manifest(tmp_path, tiny_run):
    path = tmp_path / training.checkpoint_name("match2", 10.0)
    training.save_checkpoint(tiny_run, path)
    data.record_file(path, "checkpoint", "test")
    model = training.load_pretrained("match2", 10.0, device="cpu", data_dir=tmp_path)
    for name, tensor in tiny_run.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor)
    surrogate = training.load_pretrained("match2", 10.0, stage="surrogate", device="cpu", data_dir=tmp_path)
    assert torch.equal(
        surrogate.state_dict()["classifier.weight"], tiny_run.surrogate_state["classifier.weight"]
    )
    run = training.load_run("match2", 10.0, device="cpu", data_dir=tmp_path)
    assert run.history == tiny_run.history and run.config == tiny_run.config
    assert torch.equal(run.surrogate().classifier.weight, surrogate.classifier.weight)
    with pytest.raises(ValueError, match="stage"):
        training.load_checkpoint(path, stage="final")
    corrupt = bytearray(path.read_bytes())
    corrupt[len(corrupt) // 2] ^= 0xFF
    path.write_bytes(bytes(corrupt))
    with pytest.raises(DataError, match="reproduce|regenerate"):
        training.load_pretrained("match2", 10.0, data_dir=tmp_path)
    with pytest.raises(DataError, match="not listed"):
        training.load_pretrained("match2", 1.0, data_dir=tmp_path)


def test_checkpoints_never_unpickle_objects(tmp_path):
    """A file that needs arbitrary unpickling is refused by torch.load(weights_only=True)."""
    path = tmp_path / "evil.pt"
    torch.save({"model_config": object()}, path)
    with pytest.raises(Exception, match="[Ww]eights only"):
        training.load_checkpoint(path)
