"""The evicting KV cache: decoding with each policy, and NAtS decoding equal to masked attention."""

import pytest
import torch
from nats_helpers import chunk_roles, rand, random_roles

from fastattn_lib import kv_cache, nats
from fastattn_lib.nats import GLOBAL, SLIDING


def test_decode_runs_its_cache_through_cache_step():
    """`decode` is `cache_step` in a loop: the same loop written by hand gives the same outputs and cache."""
    roles = random_roles(3, 16, seed=5)
    roles[..., 0] = GLOBAL
    q, k, v = rand(3, 16, 8, seed=1), rand(3, 16, 8, seed=2), rand(3, 16, 4, seed=3)
    policy = kv_cache.NAtSPolicy(2)
    out, sizes = kv_cache.decode(q, k, v, policy, roles)
    cache = kv_cache.KVCache((3,), 8, 4, torch.float32, "cpu")
    for t in range(16):
        assert torch.equal(
            kv_cache.cache_step(cache, policy, q[:, t], k[:, t], v[:, t], t, roles[:, t]), out[:, t]
        )
        assert torch.equal(cache.sizes(), sizes[:, t])
    assert torch.allclose(out, nats.masked_attention(q, k, v, nats.nats_mask(roles, 2)), atol=1e-5)


@pytest.mark.parametrize("window", [0, 1, 4])
def test_decode_with_cache_equals_masked_attention_and_holds_exactly_what_later_queries_see(window):
    roles = random_roles(2, 3, 30, seed=window)
    roles[..., 0] = GLOBAL
    q, k, v = rand(2, 3, 30, 8, seed=1), rand(2, 3, 30, 8, seed=2), rand(2, 3, 30, 5, seed=3)
    mask = nats.nats_mask(roles, window)
    out, sizes = kv_cache.decode_with_cache(q, k, v, roles, window)
    assert torch.allclose(out, nats.masked_attention(q, k, v, mask), atol=1e-5)
    # after step t the cache holds the keys j ≤ t that some query i > t still sees (one more token appended,
    # whose role does not matter: no role of token i changes what query i sees)
    extended = nats.nats_mask(torch.cat([roles, torch.full_like(roles[..., :1], SLIDING)], dim=-1), window)
    for t in range(roles.shape[-1]):
        needed = extended[..., t + 1 :, : t + 1].any(dim=-2).sum(-1)
        assert torch.equal(sizes[..., t], needed)


def test_full_cache_is_dense_attention_and_grows_linearly():
    q, k, v = rand(4, 20, 8, seed=1), rand(4, 20, 8, seed=2), rand(4, 20, 3, seed=3)
    out, sizes = kv_cache.decode(q, k, v, kv_cache.FullCache())
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(out, dense, atol=1e-5)
    assert torch.equal(sizes[0], torch.arange(1, 21))


def test_sliding_window_with_sinks_keeps_the_first_tokens_and_a_recent_window():
    q, k, v = rand(20, 8, seed=1), rand(20, 8, seed=2), rand(20, 3, seed=3)
    out, sizes = kv_cache.decode(q, k, v, kv_cache.SlidingWindowWithSinks(budget=6, n_sinks=2))
    assert sizes.max() == 6 and sizes[-1] == 6
    i, j = torch.arange(20)[:, None], torch.arange(20)[None, :]
    seen = (j <= i) & ((j < 2) | (i - j <= 4))  # the 6 entries kept after step i − 1, and token i itself
    assert torch.allclose(out, nats.masked_attention(q, k, v, seen), atol=1e-5)


def test_heavy_hitters_keep_the_most_attended_old_tokens_within_budget():
    k = rand(30, 8, seed=2)
    q = k[3].expand(30, 8).clone()  # every query attends mostly to token 3
    v = rand(30, 3, seed=3)
    policy = kv_cache.HeavyHitters(budget=6)
    _, sizes = kv_cache.decode(q, k, v, policy)
    assert sizes.max() <= 6
    cache = kv_cache.KVCache((), 8, 3, torch.float32, "cpu")
    for t in range(30):
        kv_cache.cache_step(cache, policy, q[t], k[t], v[t], t, torch.tensor(SLIDING))
    assert 3 in cache.positions.tolist()


@pytest.mark.parametrize("chunk, window", [(2, 1), (4, 2), (4, 6), (5, 3)])
def test_chunked_decoding_equals_the_chunked_mask_and_holds_what_later_queries_see(chunk, window):
    """While a chunk is incomplete its tokens are held (as GLOBAL); its role, known at its last token,
    then decides. Decoding reproduces masked attention with the chunked mask, and after step t the cache
    holds exactly the keys some later query sees."""
    n = 6 * chunk
    roles = chunk_roles(n, chunk, 2, 3, seed=chunk + window)
    q, k, v = rand(2, 3, n, 8, seed=1), rand(2, 3, n, 8, seed=2), rand(2, 3, n, 5, seed=3)
    out, sizes = kv_cache.decode_with_cache(q, k, v, roles, window, chunk)
    mask = nats.nats_mask(roles, window, chunk)
    assert torch.allclose(out, nats.masked_attention(q, k, v, mask), atol=1e-5)
    # one more token (a chunk of its own, any role) makes the row of the next query after the last step
    extended = nats.nats_mask(torch.cat([roles, torch.full_like(roles[..., :1], SLIDING)], -1), window, chunk)
    for t in range(n):
        assert torch.equal(sizes[..., t], extended[..., t + 1 :, : t + 1].any(dim=-2).sum(-1))
    all_sliding = torch.full((n,), SLIDING).index_fill(0, torch.arange(chunk), GLOBAL)
    _, sizes = kv_cache.decode_with_cache(q[0, 0], k[0, 0], v[0, 0], all_sliding, 0, chunk)
    assert sizes[chunk - 1] == chunk  # the GLOBAL first chunk, held whole
    assert sizes[2 * chunk - 2] == chunk + chunk - 1  # its next chunk, incomplete, held entirely
    assert sizes[2 * chunk - 1] == chunk  # complete and SLIDING with W = 0: gone at once


@pytest.mark.parametrize(
    ("make", "knobs"),
    [
        (kv_cache.NAtSPolicy, [0, 3, 7]),
        (kv_cache.SlidingWindowWithSinks, [2, 5, 9]),
        (kv_cache.HeavyHitters, [1, 4, 9]),
    ],
)
def test_a_knob_per_sequence_decodes_each_sequence_as_its_own_policy_would(make, knobs):
    """One batch, a window or budget per sequence: each sequence's outputs and cache sizes equal decoding it
    alone under that knob."""
    roles = random_roles(3, 4, 24, seed=9)
    roles[..., 0] = GLOBAL
    q, k, v = rand(3, 4, 24, 8, seed=1), rand(3, 4, 24, 8, seed=2), rand(3, 4, 24, 5, seed=3)
    out, sizes = kv_cache.decode(q, k, v, make(knobs), roles)
    for b, knob in enumerate(knobs):
        alone_out, alone_sizes = kv_cache.decode(q[b], k[b], v[b], make(knob), roles[b])
        assert torch.allclose(out[b], alone_out, atol=1e-6) and torch.equal(sizes[b], alone_sizes)
    assert not torch.equal(sizes[0], sizes[-1])  # the knobs made a difference


def test_a_knob_per_sequence_is_checked_value_by_value():
    with pytest.raises(ValueError, match="window"):
        kv_cache.NAtSPolicy([2, -1])
    with pytest.raises(ValueError, match="budget"):
        kv_cache.HeavyHitters([])
    with pytest.raises(ValueError, match="n_sinks"):
        kv_cache.SlidingWindowWithSinks([4, 1], n_sinks=1)
