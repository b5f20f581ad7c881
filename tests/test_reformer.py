"""The Reformer separation: constant-size buckets need depth to reach every token, ANNA does not."""

import math

import pytest
import torch

from fastattn_lib import anna, mpc, reformer, tasks


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_reformer_receptive_field_grows_by_at_most_2b_per_layer_and_anna_sees_everything_at_once():
    n, bucket = 256, 4
    fields = reformer.receptive_fields(n, bucket, n_layers=5)
    assert fields["anna"][0] == n
    assert all(r <= b for r, b in zip(fields["reformer"], fields["reformer_bound"], strict=True))
    assert fields["reformer"][0] < n
    first_full = next(i + 1 for i, r in enumerate(fields["reformer"]) if r == n)
    assert first_full >= reformer.layers_for_global_average(n, 2 * bucket) > 1


def test_chunked_attention_with_one_chunk_is_single_table_anna():
    x, v = rand(2, 64, 8, seed=1), rand(2, 64, 3, seed=2)
    assert torch.allclose(
        reformer.chunked_bucket_attention(x, v, bucket_size=64, n_hashes=2, seed=3),
        anna.anna_attention(x, x, v, 1, 2, seed=3, impl="dense"),
        atol=1e-6,
    )


def test_chunked_attention_sees_at_most_two_chunks():
    """With constant chunks an output sees ≤ 2·bucket_size inputs, so a global average fails."""
    x = rand(8, seed=1).expand(256, 8).contiguous()  # one bucket for everyone
    v = rand(256, 3, seed=2).requires_grad_()
    out = reformer.chunked_bucket_attention(x, v, bucket_size=16)
    out[100].sum().backward()
    assert 0 < int((v.grad.abs().sum(-1) > 0).sum()) <= 32
    assert not torch.allclose(out, v.mean(0).expand(256, 3), atol=1e-2)
    assert torch.allclose(anna.anna_attention(x, x, v, 1, 1), v.mean(0).expand(256, 3), atol=1e-5)
    with pytest.raises(ValueError, match="bucket_size"):
        reformer.chunked_bucket_attention(x, v, bucket_size=24)


def test_layers_for_global_average():
    assert reformer.layers_for_global_average(1024, 32) == 2
    assert reformer.layers_for_global_average(1025, 32) == 3
    assert reformer.layers_for_global_average(100, 128) == 1


def test_window_reach_grows_by_w_per_layer():
    pattern = reformer.window_pattern(40, window=3)
    depends = pattern
    for layers in range(1, 5):
        offset = torch.arange(40)[:, None] - torch.arange(40)[None, :]
        assert torch.equal(depends, (offset >= 0) & (offset <= 3 * layers))
        depends = reformer.compose(depends, pattern)


def test_khop_sources_follow_find_k_times():
    x, y = tasks.khop(8, seq_len=60, alphabet=4, hops=5, seed=2)
    source = reformer.khop_sources(x, 4, 5)
    defined = source >= 0
    assert torch.equal(torch.where(defined, x.gather(1, source.clamp(min=0)), 4), y)
    brute = torch.full_like(x, -1)
    for b in range(8):  # an oracle loop over samples and positions
        for i in range(60):
            p = i
            for _ in range(5):
                earlier = [j for j in range(p) if x[b, j] == x[b, p]]
                if not earlier:
                    p = -1
                    break
                p = max(earlier) + 1
            brute[b, i] = p
    assert torch.equal(source, brute)


def test_window_depth_for_khop_is_the_farthest_source_over_w_and_grows_with_k():
    x, _ = tasks.khop(16, seq_len=128, alphabet=4, hops=1, seed=1)
    hops = [1, 2, 4, 8, 16]
    depths = reformer.khop_window_depth(x, 4, hops, window=4)
    position = torch.arange(128).expand_as(x)
    for k, depth in zip(hops, depths, strict=True):
        source = reformer.khop_sources(x, 4, k)
        farthest = int((position - source)[source >= 0].max())
        assert depth == math.ceil(farthest / 4)
        assert depth >= math.ceil(k / 4)  # each hop moves back at least one position
    assert depths == sorted(depths) and depths[-1] > mpc.build_khop_transformer(16, 128, 4).n_layers


def test_window_arguments_are_checked():
    with pytest.raises(ValueError, match="window"):
        reformer.window_pattern(10, 0)
    with pytest.raises(ValueError, match="hops"):
        reformer.khop_sources(torch.zeros(1, 5, dtype=torch.long), 4, 0)
