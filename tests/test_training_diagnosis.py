"""Why weight copying fails on Match2: the measurements behind notebook 04's section 3."""

import pytest
import torch

from fastattn_lib import data, training
from fastattn_lib.attention import Anna, Softmax
from fastattn_lib.training import diagnosis


def test_partner_mask_marks_pairs_summing_to_zero_and_never_the_diagonal():
    x = torch.tensor([[0, 3, 34, 0, 5]])
    mask = diagnosis.partner_mask(x, 37)
    expected = torch.zeros(1, 5, 5, dtype=torch.bool)
    for i, j in [(0, 3), (3, 0), (1, 2), (2, 1)]:
        expected[0, i, j] = True
    assert torch.equal(mask, expected)


def test_partners_only_keeps_partner_collisions_and_leaves_rows_without_one_alone():
    x = torch.tensor([[1, 36, 1, 5, 7, 30]])
    partners = diagnosis.partner_mask(x, 37)
    q, k = torch.randn(2, 1, 1, 6, 8).unbind(0)
    anna = Anna(4, 1, seed=3, impl="dense")
    raw = anna.weights(q, k)[:, 0]
    cleaned = diagnosis.PartnersOnly(anna, partners).weights(q, k)[:, 0]
    met = (raw * partners).sum(-1) > 0
    assert torch.allclose(cleaned[~met], raw[~met])
    assert (cleaned[met][~partners[met]] == 0).all()
    assert torch.allclose(cleaned[met].sum(-1), torch.ones(int(met.sum())))
    # against the definition, row by row: partner counts renormalised
    counts = (raw > 0) & partners
    for i in torch.nonzero(met[0]).flatten().tolist():
        row = raw[0, i] * counts[0, i]
        assert torch.allclose(cleaned[0, i], row / row.sum())


def test_mixture_of_softmax_sees_every_key_and_of_anna_only_its_collisions():
    x, y = data.load_test_set("match2")
    x, y = x[:32], y[:32]
    model = training.load_pretrained("match2", 10.0, "surrogate", "cpu")
    soft = diagnosis.mixture(model, Softmax(10.0), x, y)
    assert soft.met == 1 and soft.empty == 0 and soft.error == training.error_rate(model, x, y)
    assert 0 < soft.partner_share < 1
    anna = Anna(8, 1, seed=0, impl="dense")
    hashed = diagnosis.mixture(model, anna, x, y)
    assert hashed.error == training.error_rate(model.with_attention(anna), x, y)
    assert hashed.other_keys < soft.other_keys and 0 <= hashed.met <= 1


def test_weight_copying_fails_because_the_average_changes_not_because_the_partner_is_missed():
    """The shipped β = 10 surrogate as ANNA (ℓ = 8, z = 1): the partner collides in most rows, yet it
    gets a much smaller share than under softmax; removing the other keys' collisions repairs most of it."""
    x, y = data.load_test_set("match2")
    model = training.load_pretrained("match2", 10.0, "surrogate", "cpu")
    measured = diagnosis.diagnose(model, 10.0, x, y, seeds=range(3))
    assert measured["anna"].met > 0.9
    assert measured["anna"].partner_share < measured["softmax"].partner_share - 0.3
    assert measured["partners only"].error < measured["anna"].error / 3
    shares = diagnosis.share_by_tables(model, x, tables=(1, 16), seeds=range(3))
    assert abs(shares[1] - shares[0]) < 0.2  # more tables do not restore the share


def test_diagnose_refuses_bad_hashing():
    model = training.load_pretrained("match2", 10.0, "surrogate", "cpu")
    x, y = data.load_test_set("match2")
    with pytest.raises(ValueError, match="n_tables"):
        diagnosis.diagnose(model, 10.0, x[:2], y[:2], n_tables=0)


def test_error_causes_split_every_wrong_position_once():
    x, y = data.load_test_set("match2")
    x, y = x[:64], y[:64]
    model = training.load_pretrained("match2", 10.0, "surrogate", "cpu")
    anna = Anna(2, 1, seed=1, impl="dense")
    causes = diagnosis.error_causes(model, anna, x, y)
    total = round(training.error_rate(model.with_attention(anna), x, y) * y.numel())
    assert causes.missed + causes.diluted + causes.false_alarm == total > 0
    assert causes.missed > 0  # two tables of the copied weights miss partners
    fine_tuned = training.load_pretrained("match2", 10.0, device="cpu")
    assert diagnosis.error_causes(fine_tuned, Anna(8, 1, seed=0, impl="dense"), x, y).missed == 0
