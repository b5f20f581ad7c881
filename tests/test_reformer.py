"""The Reformer separation: constant-size buckets need depth to reach every token, ANNA does not."""

import pytest
import torch

from fastattn_lib import anna, reformer


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
