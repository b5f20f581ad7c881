"""NAtS on a frozen backbone: only the scorers train, every policy decodes the same weights, the shipped
scorers and table."""

import shutil

import pytest
import torch

from fastattn_lib import data, nats
from fastattn_lib import nats_experiment as E
from fastattn_lib import nats_frozen as F


@pytest.fixture(scope="module")
def dense():
    return E.load_model(None, device="cpu")[0]


def test_only_the_scorers_train_and_the_dense_model_is_left_alone(dense):
    before = {name: p.clone() for name, p in dense.state_dict().items()}
    config = F.FrozenTrainConfig(steps=3, eval_every=3, batch_size=8, chunk=4, sparsity_weight=0.5)
    model, history = F.train_scorers(dense, config, progress=False)
    assert model.attentions == (nats.NatsAttention(E.WINDOW, 4),) * 2
    assert all(torch.equal(p, dense.state_dict()[name]) for name, p in before.items())
    for name, p in model.state_dict().items():
        assert torch.equal(p, before[name]) != (".scorer." in name), name  # scorers moved, nothing else
    assert len(history.loss) == 3 and history.eval_steps == [3] and len(history.cache_share) == 1
    assert history.loss[0] > history.distillation[0] > 0  # λ·sparsity is part of the loss
    with pytest.raises(ValueError, match="chunk"):
        F.FrozenTrainConfig(chunk=0)
    with pytest.raises(ValueError, match="sparsity_weight"):
        F.FrozenTrainConfig(sparsity_weight=-0.1)


def test_distillation_target_is_the_dense_models_final_hidden_state(dense):
    """One chunk of 64 tokens is the first chunk, always GLOBAL: the NAtS twin then sees what the dense
    model sees, and its final hidden states (the distillation target) and logits are the dense model's."""
    twin = F.nats_twin(dense, nats.NatsAttention(E.WINDOW, chunk=E.SEQ_LEN))
    tokens = E.held_out(4)[0]
    with torch.no_grad():
        hidden, roles = twin.hidden_states(tokens)
        target, _ = dense.hidden_states(tokens)
    assert all((r.argmax(-1) == nats.GLOBAL).all() for r in roles)
    assert torch.allclose(hidden, target, atol=1e-5)
    assert torch.allclose(dense.classifier(target), dense(tokens), atol=1e-6)
    twin = F.nats_twin(dense, nats.NatsAttention(E.WINDOW)).train()  # roles drawn by untrained scorers
    torch.manual_seed(0)
    with torch.no_grad():
        assert (twin.hidden_states(tokens)[0] - target).abs().max() > 1e-2  # something to distil


def test_reproduce_writes_scorer_checkpoints_and_leaves_the_dense_model(tmp_path):
    shutil.copy(data.DATA_DIR / "nats_dense.pt", tmp_path)
    data.record_file(tmp_path / "nats_dense.pt", "checkpoint", E.REPRODUCE)
    table = F.reproduce_frozen(
        settings=((0.1, 1), (0.1, 4)), out_dir=tmp_path, device="cpu", progress=False,
        budgets=(8,), n_samples=8, steps=2, eval_every=2,
    )  # fmt: skip
    names = {F.checkpoint_name(0.1, 1), F.checkpoint_name(0.1, 4), F.RESULTS, "nats_dense.pt"}
    assert set(data.read_manifest(tmp_path)["files"]) == names
    assert (tmp_path / F.checkpoint_name(0.1, 4)).stat().st_size < 50_000  # scorers only
    model, history = F.load_scorers(0.1, 4, device="cpu", data_dir=tmp_path)
    assert model.attentions == (nats.NatsAttention(E.WINDOW, 4),) * 2 and len(history.loss) == 2
    rows = {(r["policy"], r["setting"], r["chunk"]) for r in table["results"]}
    assert rows == {("full", 64, 1), ("sliding", 8, 1), ("h2o", 8, 1), ("nats", 0.1, 1), ("nats", 0.1, 4)}
    assert "| nats | λ = 0.1, C = 4 |" in E.format_table(table["results"])
    # scorers belong to one dense model: a different backbone is refused
    dense, _ = E.load_model(None, "cpu", tmp_path)
    with torch.no_grad():
        dense.classifier.bias.add_(1.0)
    E.save_model(dense, E.NatsHistory(), E.NatsTrainConfig(), tmp_path / "nats_dense.pt")
    data.record_file(tmp_path / "nats_dense.pt", "checkpoint", E.REPRODUCE)
    with pytest.raises(data.DataError, match="another dense model"):
        F.load_scorers(0.1, 4, device="cpu", data_dir=tmp_path)


def test_the_default_command_trains_the_frozen_regime_only(monkeypatch, tmp_path):
    """`reproduce` without `--regime` must not retrain the fine-tuned checkpoints."""
    calls = []
    monkeypatch.setattr(F, "reproduce_frozen", lambda **kwargs: calls.append(kwargs) or {"results": []})
    monkeypatch.setattr(E, "reproduce", lambda **kwargs: pytest.fail("the fine-tuned regime was retrained"))
    assert E.main(["reproduce", "--out-dir", str(tmp_path), "--device", "cpu"]) == 0
    assert calls == [{"out_dir": tmp_path, "device": "cpu"}]


def test_shipped_frozen_scorers_reproduce_the_table(dense):
    """Each shipped (λ, C) model gives its row: the accuracy and the entries the last query sees from the
    masked forward pass (which decoding with eviction reproduces); the baselines decode the same dense
    weights as in the fine-tuned table, so their rows are that table's."""
    table = F.load_results()
    assert table["backbone_sha256"] == data.read_manifest()["files"]["nats_dense.pt"]["sha256"]
    rows = {(r["policy"], r["setting"], r["chunk"]): r for r in table["results"]}
    tokens, answers = E.held_out(256)
    last = int(answers.max())
    for sparsity_weight, chunk in F.SETTINGS:
        model, history = F.load_scorers(sparsity_weight, chunk, device="cpu")
        with torch.no_grad():
            logits, roles = model.run(tokens)
        row = rows["nats", sparsity_weight, chunk]
        assert E.answer_accuracy(logits, tokens, answers) == row["accuracy"] == history.accuracy[-1]
        masks = [nats.nats_mask(one_hot.argmax(-1), E.WINDOW, chunk) for one_hot in roles]
        seen = torch.stack([mask[..., last, :].sum(-1) for mask in masks]).float().mean()
        assert row["cache_at_last_query"] == pytest.approx(float(seen))
    fine_tuned = {(r["policy"], r["setting"]): r for r in E.load_results()["results"]}
    for (policy, setting, _), row in rows.items():
        if policy != "nats" and (policy, setting) in fine_tuned:
            assert row["accuracy"] == fine_tuned[policy, setting]["accuracy"], (policy, setting)


def test_on_the_same_weights_frozen_nats_beats_the_baselines_and_chunks_cost_cache():
    """Per-token NAtS answers ≥ 99 % with at most 40 % of the cache, while StreamingLLM and H2O with up to
    10 entries more stay below 50 %; chunks of 4 and 8 keep the accuracy but hold more."""
    results = F.load_results()["results"]
    per_token = [r for r in results if r["policy"] == "nats" and r["chunk"] == 1]
    smallest = min(per_token, key=lambda r: r["cache_fraction"])
    assert all(r["accuracy"] >= 0.99 for r in per_token) and smallest["cache_fraction"] <= 0.4
    for r in results:
        if (
            r["policy"] in ("sliding", "h2o")
            and r["cache_at_last_query"] <= smallest["cache_at_last_query"] + 10
        ):
            assert r["accuracy"] < 0.5, r
    at_lambda = {r["chunk"]: r for r in results if r["policy"] == "nats" and r["setting"] == 0.1}
    assert at_lambda[1]["cache_fraction"] < at_lambda[4]["cache_fraction"] < at_lambda[8]["cache_fraction"]
    assert all(r["accuracy"] >= 0.99 for r in at_lambda.values())


def test_shared_baselines_pair_the_rows_both_tables_decoded():
    fine_tuned = [
        {"policy": "h2o", "setting": 8.0, "accuracy": 0.1},
        {"policy": "nats", "setting": 2.0, "accuracy": 1},
    ]
    frozen = [
        {"policy": "h2o", "setting": 8.0, "accuracy": 0.1},
        {"policy": "h2o", "setting": 48.0, "accuracy": 0.4},
    ]
    assert F.shared_baselines(fine_tuned, frozen) == [("h2o", 8.0, 0.1, 0.1)]
    pairs = F.shared_baselines(E.load_results()["results"], F.load_results()["results"])
    assert len(pairs) == 1 + 2 * len(E.BUDGETS) and all(a == b for *_, a, b in pairs)
