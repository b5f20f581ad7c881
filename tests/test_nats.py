"""NAtS: the role mask's properties, its differentiable form, NAtS attention as a value, the cache that
evicts, and the baselines."""

import dataclasses

import pytest
import torch
from nats_helpers import brute_force_chunk_mask, brute_force_mask, chunk_roles, rand, random_roles

from fastattn_lib import nats
from fastattn_lib.nats import GLOBAL, LOCAL, SLIDING


@pytest.mark.parametrize("window", [0, 1, 3, 8])
def test_mask_matches_the_definition(window):
    for seed in range(5):
        roles = random_roles(17, seed=seed)
        assert torch.equal(nats.nats_mask(roles, window), brute_force_mask(roles, window))


def test_mask_is_causal_keeps_the_diagonal_and_each_column_is_one_run():
    roles = random_roles(4, 3, 40, seed=1)
    mask = nats.nats_mask(roles, 5)
    n = roles.shape[-1]
    assert not (mask & ~torch.ones(n, n, dtype=torch.bool).tril()).any()
    assert mask.diagonal(dim1=-2, dim2=-1).all()
    # each key j is visible to queries j .. end_j and to none after: the column never switches back on
    switches = (mask[..., 1:, :] & ~mask[..., :-1, :]).sum(dim=-2)  # off → on transitions below the first row
    on_from_diagonal = switches == torch.ones(n, dtype=torch.long).index_fill(0, torch.tensor([0]), 0)
    assert ((switches == 0) | on_from_diagonal).all()
    starts = mask.float().argmax(dim=-2)
    assert torch.equal(starts, torch.arange(n).expand_as(starts))


def test_all_global_is_dense_and_all_sliding_is_a_window():
    n = 12
    assert torch.equal(nats.nats_mask(torch.zeros(n, dtype=torch.long), 3), torch.ones(n, n).tril().bool())
    sliding = torch.full((n,), SLIDING)
    assert torch.equal(nats.nats_mask(sliding, 3), nats.sliding_window_mask(n, 3))
    q, k, v = rand(2, n, 8, seed=1), rand(2, n, 8, seed=2), rand(2, n, 4, seed=3)
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    out = nats.masked_attention(q, k, v, nats.nats_mask(torch.zeros(2, n, dtype=torch.long), 3))
    assert torch.allclose(out, dense, atol=1e-5)


def test_local_tokens_live_until_the_next_global():
    roles = torch.tensor([GLOBAL, LOCAL, LOCAL, SLIDING, GLOBAL, LOCAL])
    mask = nats.nats_mask(roles, 0)
    assert mask[4, 1] and mask[4, 2] and not mask[5, 1] and not mask[5, 2]
    assert mask[5, 5] and mask[5, 4] and mask[5, 0] and not mask[4, 3]
    assert torch.equal(nats.span_ends(roles), torch.tensor([0, 4, 4, 4, 4, 6]))


@pytest.mark.parametrize("window", [0, 2, 5])
def test_soft_mask_equals_the_hard_mask_on_one_hots(window):
    roles = random_roles(3, 25, seed=window)
    one_hot = torch.nn.functional.one_hot(roles, 3).double()
    assert torch.equal(nats.soft_mask(one_hot, window).bool(), nats.nats_mask(roles, window))
    assert set(nats.soft_mask(one_hot, window).unique().tolist()) <= {0.0, 1.0}


def test_soft_mask_gradient_reaches_the_global_that_closes_a_span():
    """Turning token 3 from Local into Global shortens token 1's Local span: d M[4, 1] / d g_3 < 0."""
    roles = torch.tensor([GLOBAL, LOCAL, SLIDING, LOCAL, SLIDING, SLIDING])
    one_hot = torch.nn.functional.one_hot(roles, 3).double().requires_grad_()
    nats.soft_mask(one_hot, 1)[4, 1].backward()
    assert one_hot.grad[3, GLOBAL] < 0 and one_hot.grad[1, LOCAL] > 0


def test_scorer_gets_gradients_through_the_mask_and_forces_the_first_token_global():
    torch.manual_seed(0)
    scorer = nats.RoleScorer(d_model=16, n_heads=2)
    h = rand(3, 10, 16, seed=4).requires_grad_()
    one_hot = scorer(h)
    assert (one_hot[..., 0, :] == torch.tensor([1.0, 0, 0])).all()
    assert torch.equal(one_hot.sum(-1), torch.ones(3, 2, 10))
    q, k, v = rand(3, 2, 10, 8, seed=5), rand(3, 2, 10, 8, seed=6), rand(3, 2, 10, 8, seed=7)
    loss = nats.masked_attention(q, k, v, nats.soft_mask(one_hot, 2)).square().sum()
    loss = loss + nats.sparsity_loss(one_hot, 0.5)
    loss.backward()
    assert scorer.proj.weight.grad.abs().sum() > 0
    assert h.grad is None  # the scorer reads a detached hidden state
    scorer.eval()
    roles = scorer.roles(h)
    assert torch.equal(torch.nn.functional.one_hot(roles, 3).float(), scorer(h))


def test_sparsity_loss_is_one_for_all_global_and_zero_for_all_sliding():
    n = 9
    everything = torch.nn.functional.one_hot(torch.zeros(n, dtype=torch.long), 3).float()
    nothing = torch.nn.functional.one_hot(torch.full((n,), SLIDING), 3).float()
    assert nats.sparsity_loss(everything, 2.0).item() == pytest.approx(2.0)
    assert nats.sparsity_loss(nothing, 2.0).item() == 0.0
    with pytest.raises(ValueError, match="sparsity_weight"):
        nats.sparsity_loss(nothing, -1.0)


def test_nats_attention_is_masked_attention_under_the_roles_it_is_given():
    roles = random_roles(2, 3, 20, seed=4)
    roles[..., 0] = GLOBAL
    one_hot = torch.nn.functional.one_hot(roles, 3).float()
    q, k, v = rand(2, 3, 20, 8, seed=1), rand(2, 3, 20, 8, seed=2), rand(2, 3, 20, 5, seed=3)
    attention = nats.NatsAttention(window=3)
    expected = nats.masked_attention(q, k, v, nats.nats_mask(roles, 3))
    assert torch.allclose(attention(q, k, v, causal=True, roles=one_hot), expected, atol=1e-6)
    weights = attention.weights(q, k, roles=one_hot)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3, 20))
    assert not (weights[~nats.nats_mask(roles, 3)]).any()  # nothing outside the mask
    assert torch.allclose(weights @ v, expected, atol=1e-6)


def test_nats_attention_is_an_immutable_validated_value():
    attention = nats.NatsAttention(4)
    assert attention == nats.NatsAttention(window=4, chunk=1)
    assert repr(attention) == "NatsAttention(window=4, chunk=1)"
    assert attention.reads_roles and [f.name for f in dataclasses.fields(attention)] == ["window", "chunk"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        attention.window = 2
    for bad in (-1, 2.0, True, None):
        with pytest.raises(ValueError, match="window"):
            nats.NatsAttention(bad)
        with pytest.raises(ValueError, match="chunk"):
            nats.NatsAttention(4, chunk=bad)
    q = rand(5, 4)
    with pytest.raises(ValueError, match="roles"):
        attention(q, q, q)
    with pytest.raises(ValueError, match="causal"):
        attention(q, q, q, causal=False, roles=torch.eye(3)[[0, 2, 2, 1, 2]])


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="roles"):
        nats.nats_mask(torch.tensor([0, 3, 1]), 2)
    with pytest.raises(ValueError, match="roles"):
        nats.nats_mask(torch.tensor([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match="window"):
        nats.nats_mask(torch.tensor([0, 1]), -1)
    with pytest.raises(ValueError, match="roles"):
        nats.decode_with_cache(rand(5, 4), rand(5, 4), rand(5, 4), torch.zeros(4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="q, k, v"):
        nats.decode_with_cache(rand(5, 4), rand(6, 4), rand(5, 4), torch.zeros(5, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="window"):
        nats.NAtSPolicy(-1)
    with pytest.raises(ValueError, match="budget"):
        nats.HeavyHitters(0)
    with pytest.raises(ValueError, match="n_sinks"):
        nats.SlidingWindowWithSinks(4, n_sinks=4)


# ---- chunks: one role per C consecutive tokens ------------------------------------------------------------


@pytest.mark.parametrize("chunk, window", [(1, 2), (2, 0), (3, 1), (4, 5), (8, 3)])
def test_chunk_mask_matches_the_definition_over_chunks(chunk, window):
    for seed in range(4):
        roles = chunk_roles(23, chunk, seed=seed)  # 23 tokens: the last chunk is shorter unless C = 1
        assert torch.equal(nats.nats_mask(roles, window, chunk), brute_force_chunk_mask(roles, window, chunk))
        one_hot = torch.nn.functional.one_hot(roles, 3).double()
        assert torch.equal(
            nats.soft_mask(one_hot, window, chunk).bool(), nats.nats_mask(roles, window, chunk)
        )


def brute_force_soft_mask(one_hot, window, chunk):
    """g_j + l_j·∏_{c=b+1}^{a−1}(1 − g_c) + s_j·[i − j ≤ W] one entry at a time (1 inside the query's own
    chunk below the diagonal): the differentiable mask written out."""
    n = one_hot.shape[-2]
    rows = []
    for i in range(n):
        row = []
        for j in range(n):
            g, l, s = one_hot[j]
            if j > i:
                row.append(torch.zeros((), dtype=one_hot.dtype))
            elif i // chunk == j // chunk and j < i:
                row.append(torch.ones((), dtype=one_hot.dtype))
            else:
                still_open = torch.ones((), dtype=one_hot.dtype)
                for c in range(j // chunk + 1, i // chunk):
                    still_open = still_open * (1 - one_hot[c * chunk, GLOBAL])
                row.append(g + l * still_open + s * float(i - j <= window))
        rows.append(torch.stack(row))
    return torch.stack(rows)


@pytest.mark.parametrize("chunk", [1, 3])
def test_soft_mask_and_its_gradient_match_the_formula_written_out(chunk):
    """C = 1 is the per-token product ∏_{k=j+1}^{i−1}(1 − g_k); the gradients agree as well as the values."""
    logits = rand(-(-11 // chunk), 3, seed=chunk).double().requires_grad_()
    one_hot = torch.nn.functional.gumbel_softmax(logits, hard=True).repeat_interleave(chunk, dim=0)[:11]
    weights = rand(11, 11, seed=7).double()
    ours = torch.autograd.grad(
        (nats.soft_mask(one_hot, 2, chunk) * weights).sum(), logits, retain_graph=True
    )[0]
    theirs = torch.autograd.grad((brute_force_soft_mask(one_hot, 2, chunk) * weights).sum(), logits)[0]
    assert torch.allclose(nats.soft_mask(one_hot, 2, chunk), brute_force_soft_mask(one_hot, 2, chunk))
    assert torch.allclose(ours, theirs) and ours.abs().sum() > 0


def test_chunk_of_one_is_the_per_token_rule():
    roles = random_roles(3, 30, seed=9)
    q, k, v = rand(3, 30, 8, seed=1), rand(3, 30, 8, seed=2), rand(3, 30, 4, seed=3)
    assert all(torch.equal(nats.nats_mask(r, 3, 1), brute_force_mask(r, 3)) for r in roles)
    one, sizes_one = nats.decode_with_cache(q, k, v, roles, 3, chunk=1)
    per_token, sizes = nats.decode(q, k, v, nats.NAtSPolicy(3), roles)
    assert torch.equal(one, per_token) and torch.equal(sizes_one, sizes)
    one_hot = torch.nn.functional.one_hot(roles, 3).float()
    assert nats.sparsity_loss(one_hot, 1.0, chunk=1) == nats.sparsity_loss(one_hot, 1.0)


def test_chunked_scorer_reads_the_chunk_mean_and_decoding_reveals_roles_at_chunk_ends():
    torch.manual_seed(0)
    scorer = nats.RoleScorer(d_model=8, n_heads=2).eval()
    torch.nn.init.normal_(scorer.proj.weight, std=3.0)
    h = rand(2, 10, 8, seed=4)
    one_hot = scorer(h, chunk=4)  # chunks 0..3, 4..7, 8..9
    assert one_hot.shape == (2, 2, 10, 3) and (one_hot[..., :4, GLOBAL] == 1).all()
    means = torch.stack([h[:, 4:8].mean(1), h[:, 8:].mean(1)], dim=1)  # (B, 2, m)
    expected = scorer.proj(means).view(2, 2, 2, 3).argmax(-1).transpose(1, 2)  # (B, H, 2)
    assert torch.equal(one_hot[..., 4:, :].argmax(-1), expected.repeat_interleave(4, dim=-1)[..., :6])
    assert torch.equal(scorer.roles(h, chunk=4), one_hot.argmax(-1))
    assert torch.equal(scorer(h, chunk=1), scorer(h))
    cache = nats.KVCache((2, 2), 4, 4, torch.float32, "cpu")
    revealed = [scorer.step_role(h[:, t : t + 1], t, 4, cache) for t in range(10)]
    assert [r is None for r in revealed] == [t % 4 != 3 for t in range(10)]
    assert torch.equal(revealed[7], expected[..., 0]) and (revealed[3] == GLOBAL).all()
    with pytest.raises(ValueError, match="roles"):
        nats.nats_mask(torch.tensor([GLOBAL, LOCAL, SLIDING, SLIDING]), 1, chunk=2)
    with pytest.raises(ValueError, match="chunk"):
        nats.nats_mask(torch.tensor([GLOBAL, LOCAL]), 1, chunk=0)
    with pytest.raises(ValueError, match="one_hot"):
        nats.sparsity_loss(torch.eye(3)[[0, 1, 1, 2]], 1.0, chunk=3)


def test_chunked_sparsity_counts_a_local_chunk_until_the_global_chunk_that_closes_it_has_ended():
    """Chunks of 2: G G | L L | S S | G G | S S. Held (query rows i ≥ j): tokens 0, 1 by 10 and 9 rows, the
    Locals 2, 3 until the end of the closing Global chunk (rows ..7: 6 and 5), tokens 6, 7 by 4 and 3;
    SLIDING tokens count nothing. Of the causal mask's 55 entries, 37."""
    roles = torch.tensor([GLOBAL] * 2 + [LOCAL] * 2 + [SLIDING] * 2 + [GLOBAL] * 2 + [SLIDING] * 2)
    one_hot = torch.nn.functional.one_hot(roles, 3).float()
    assert nats.sparsity_loss(one_hot, 1.0, chunk=2).item() == pytest.approx(37 / 55)
    mask = nats.nats_mask(roles, 0, 2)
    assert mask[7, 2] and mask[7, 3] and not mask[8, 2] and not mask[8, 3]
