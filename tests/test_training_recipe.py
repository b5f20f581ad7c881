"""The training recipe: its configuration, the three phases, error rates under any attention."""

import pytest
import torch

from fastattn_lib import data, training
from fastattn_lib.attention import Anna, Softmax


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="task"):
        training.TrainConfig(task="match3")
    with pytest.raises(ValueError, match="n_tables"):
        training.TrainConfig(task="induction", n_tables=(8, 8, 8))
    with pytest.raises(ValueError, match="finetune_n_train"):
        training.TrainConfig(finetune_n_train=-1)
    with pytest.raises(ValueError, match="finetune_steps"):
        training.TrainConfig(finetune_steps=-1)
    assert training.TrainConfig(task="induction", n_tables=(8,)).tables_per_layer() == [8, 8]


def test_learning_rate_stays_then_falls_along_a_half_cosine_to_zero():
    factor = training.learning_rate_factor
    assert [factor(step, 10, 0) for step in (0, 9, 10)] == [1.0, 1.0, 1.0]  # no decay
    assert [factor(step, 10, 4) for step in (0, 5)] == [1.0, 1.0]
    assert factor(6, 10, 4) == 1.0 and factor(8, 10, 4) == pytest.approx(0.5)
    assert factor(10, 10, 4) == pytest.approx(0.0) and factor(12, 10, 4) == pytest.approx(0.0)
    falling = [factor(step, 10, 4) for step in range(6, 11)]
    assert all(a > b for a, b in zip(falling, falling[1:], strict=False))
    assert factor(0, 4, 10) == 1.0 and factor(4, 4, 10) == pytest.approx(
        0.0
    )  # a short phase decays throughout
    with pytest.raises(ValueError, match="finetune_decay_steps"):
        training.TrainConfig(finetune_decay_steps=-1)


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
    config = training.TrainConfig(
        task="match2", steps=0, kernel_steps=0, finetune_steps=5, n_train=64, finetune_n_train=128
    )  # the fine-tuning draws from its own, larger set
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


# ---------------------------------------------------------------------------------- the shipped models


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
