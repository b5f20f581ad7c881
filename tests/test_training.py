"""Training, distillation, checkpoints and the shipped Match2 / induction-heads models."""

import json

import pytest
import torch

from fastattn_lib import data, training
from fastattn_lib.attention import Anna, Softmax
from fastattn_lib.data import DataError

TINY = {"steps": 20, "kernel_steps": 10, "finetune_steps": 10, "eval_every": 10, "n_train": 256}


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="task"):
        training.TrainConfig(task="match3")
    with pytest.raises(ValueError, match="n_tables"):
        training.TrainConfig(task="induction", n_tables=(8, 8, 8))
    with pytest.raises(ValueError, match="finetune_steps"):
        training.TrainConfig(finetune_steps=-1)
    assert training.TrainConfig(task="induction", n_tables=(8,)).tables_per_layer() == [8, 8]


@pytest.fixture(scope="module")
def tiny_run():
    return training.train(training.TrainConfig(task="match2", **TINY), device="cpu", progress=False)


def test_train_runs_every_phase_and_returns_a_softmax_model(tiny_run):
    history = tiny_run.history
    for phase, steps in zip(training.PHASES, (20, 10, 10), strict=True):
        assert len(history.loss[phase]) == steps
        assert history.eval_steps[phase][-1] == steps
        assert all(0 <= e <= 1 for e in history.test_error[phase])
    assert tiny_run.model.attentions == (Softmax(tiny_run.config.beta),)
    assert all(p.requires_grad for p in tiny_run.model.parameters())
    surrogate = tiny_run.surrogate()
    changed = [
        name
        for name, tensor in surrogate.state_dict().items()
        if not torch.equal(tensor, tiny_run.model.state_dict()[name])
    ]
    assert "blocks.0.mlp.0.weight" in changed  # distillation moved the MLP


def test_anna_phase_trains_queries_and_keys_through_the_straight_through_gradient():
    config = training.TrainConfig(task="match2", steps=0, kernel_steps=0, finetune_steps=5, n_train=64)
    run = training.train(config, device="cpu", progress=False)
    start, end = run.surrogate_state, run.model.state_dict()
    rows = 2 * run.model.config.d_model  # qkv stacks q, k, v
    qkv = "blocks.0.attention.qkv.weight"
    assert not torch.equal(start[qkv][:rows], end[qkv][:rows])
    assert not torch.equal(start["token_embedding.weight"], end["token_embedding.weight"])


def test_anna_error_is_the_mean_over_seeded_draws_and_leaves_the_model_alone(tiny_run):
    x, y = data.load_test_set("match2")
    model = tiny_run.model
    first = training.anna_error(model, x[:32], y[:32], 4, 1, n_draws=3)
    assert model.attentions == (Softmax(tiny_run.config.beta),)
    draws = [training.error_rate(model.with_attention(Anna(4, 1, seed=s)), x[:32], y[:32]) for s in range(3)]
    assert first == pytest.approx(sum(draws) / 3)


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


def test_reproduce_writes_checkpoints_results_and_manifest(tmp_path):
    results = training.reproduce(
        "match2", betas=(1.0,), out_dir=tmp_path, device="cpu", progress=False, n_draws=1, **TINY
    )
    manifest = data.read_manifest(tmp_path)["files"]
    assert set(manifest) == {"match2_beta1.pt", "match2_results.json"}
    assert manifest["match2_beta1.pt"]["command"] == "python -m fastattn_lib.training reproduce --task match2"
    run = results["runs"][0]
    assert len(run["distilled_grid"]) == 16 and all(len(row) == 6 for row in run["distilled_grid"])
    assert json.loads((tmp_path / "match2_results.json").read_text()) == json.loads(json.dumps(results))
    model = training.load_pretrained("match2", 1.0, device="cpu", data_dir=tmp_path)
    x, y = data.load_test_set("match2")
    assert training.anna_error(model, x, y, 8, 1, n_draws=1, impl="dense") == run["distilled_grid"][7][0]


# ---------------------------------------------------------------------------------- the shipped models


def test_shipped_match2_headline_ell_8_z_1_at_most_one_percent():
    """The paper's claim, from the shipped checkpoint: ℓ = 8, z = 1, 10 hash draws, ≤ 1 % test error."""
    model = training.load_pretrained("match2", 10.0, device="cpu")
    x, y = data.load_test_set("match2")
    error = training.anna_error(model, x, y, 8, 1, impl="dense")
    assert error <= 0.01
    assert error == training.load_results("match2")["runs"][-1]["distilled_grid"][7][0]


def test_shipped_results_tables_recompute_from_the_shipped_checkpoints():
    """Cells the notebooks quote, recomputed from the checkpoints, must equal the shipped tables."""
    x, y = data.load_test_set("match2")
    ten = training.load_results("match2")["runs"][-1]
    surrogate = training.load_pretrained("match2", 10.0, "surrogate", "cpu")
    copied = training.anna_error(surrogate, x, y, 8, 1, impl="dense")  # as the grid was computed
    assert copied == ten["zero_shot_grid"][7][0]
    assert (
        copied > 10 * ten["distilled_grid"][7][0]
    )  # weight copying alone does not carry over; fine-tuning does
    induction = training.load_results("induction")["runs"][0]
    x, y = data.load_test_set("khop")
    surrogate = training.load_pretrained("induction", 10.0, "surrogate", "cpu")
    assert training.error_rate(surrogate, x, y) == induction["softmax_error"] < 0.01
    row = training.GRIDS["induction"]["n_tables"].index([96, 32])
    column = training.GRIDS["induction"]["n_hashes"].index(2)
    shown = training.GRID_TEST_SAMPLES["induction"]
    model = training.load_pretrained("induction", 10.0, device="cpu")
    error = training.anna_error(
        model, x[:shown], y[:shown], [96, 32], 2, n_draws=training.GRID_DRAWS["induction"]
    )
    assert error == induction["distilled_grid"][row][column] < 0.1


def test_shipped_surrogate_solves_match2_at_beta_10_but_not_at_0_1():
    x, y = data.load_test_set("match2")
    assert training.error_rate(training.load_pretrained("match2", 10.0, "surrogate", "cpu"), x, y) < 0.01
    assert training.error_rate(training.load_pretrained("match2", 0.1, "surrogate", "cpu"), x, y) > 0.01


def test_previous_token_weight_reads_the_first_layer():
    model = training.load_pretrained("induction", 10.0, stage="distilled", device="cpu")
    x, _ = data.load_test_set("khop")
    copied = training.load_pretrained("induction", 10.0, stage="surrogate", device="cpu")
    soft = training.previous_token_weight(copied, x[:8])
    with torch.no_grad():
        first = copied.attention_weights(x[:8])[0][:, 0]
    assert soft == pytest.approx(
        float(torch.stack([first[:, i, i - 1] for i in range(1, 100)]).mean()), abs=1e-6
    )
    distilled = training.previous_token_weight(
        model.with_attention([Anna(96, 2), Anna(32, 2, seed=1000)]), x[:8]
    )
    assert (
        distilled
        > 0.5
        > training.previous_token_weight(copied.with_attention([Anna(96, 1), Anna(32, 1, seed=1000)]), x[:8])
    )
