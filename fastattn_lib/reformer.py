"""Reformer-style attention with constant-size buckets, and why it needs depth where ANNA does not.

Reformer (Kitaev, Kaiser, Levskaya 2020) hashes shared query-keys x̂ with one LSH table, sorts the tokens by
(bucket, position) and cuts the sorted sequence into chunks of a fixed size b; each token attends only to
same-bucket tokens in its own chunk and the one before. That bounds the work per token by 2·b, and it also
bounds what one output can depend on: at most 2·b inputs per layer, so at most (2·b)^L after L layers, and a
global average over N tokens needs ⌈log_{2b} N⌉ layers. ANNA's buckets have no size limit: one layer whose
queries and keys all coincide already averages every token.

* `chunked_bucket_attention`: the layer itself;
* `layers_for_global_average`: the depth bound ⌈log_span N⌉;
* `receptive_fields`: the measured number of inputs an output depends on, layer after layer, for both.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .attention import anna_attention
from .checks import check_count, check_qkv
from .device import cpu_generator
from .lsh import LSHTables


def chunked_bucket_attention(
    x, v, bucket_size: int, n_hashes: int = 1, family="cross_polytope", seed: int = 0
) -> torch.Tensor:
    """Each token averages the values of the same-bucket tokens in its chunk and the previous chunk.

    x [..., N, m] are the shared query-keys, v [..., N, d_v] the values; N must be a multiple of
    `bucket_size`. One table of z = `n_hashes` hashes. Every token sees at least itself. Returns
    [..., N, d_v].
    """
    check_qkv(x, x, v, causal=False)
    n = x.shape[-2]
    check_count("bucket_size", bucket_size)
    if n % bucket_size:
        raise ValueError(f"bucket_size: expected a positive divisor of N={n}, got {bucket_size!r}")
    tables = LSHTables(x.shape[-1], 1, n_hashes, family, seed=seed, device=x.device)
    ids = tables.bucket_ids(F.normalize(x, dim=-1).reshape(-1, n, x.shape[-1]))[0]  # (B, N)
    positions = torch.arange(n, device=x.device)
    order = (ids * n + positions).argsort(dim=-1)  # (B, N): sorted by bucket, then position
    sorted_ids = ids.gather(-1, order)
    sorted_v = v.reshape(-1, n, v.shape[-1]).gather(1, order.unsqueeze(-1).expand(-1, -1, v.shape[-1]))
    chunks = n // bucket_size
    chunk_ids = sorted_ids.view(-1, chunks, bucket_size)  # (B, C, b)
    chunk_v = sorted_v.view(-1, chunks, bucket_size, v.shape[-1])  # (B, C, b, d_v)
    look_ids = torch.cat([chunk_ids.roll(1, dims=1), chunk_ids], dim=-1)  # (B, C, 2b): previous chunk + own
    look_v = torch.cat([chunk_v.roll(1, dims=1), chunk_v], dim=-2)
    look_ids[:, 0, :bucket_size] = -1  # the first chunk has no previous one (roll wrapped the last around)
    same = (chunk_ids.unsqueeze(-1) == look_ids.unsqueeze(-2)).to(v.dtype)  # (B, C, b, 2b)
    out_sorted = (same @ look_v) / same.sum(-1, keepdim=True)
    out = torch.empty_like(sorted_v).scatter_(
        1, order.unsqueeze(-1).expand_as(sorted_v), out_sorted.flatten(1, 2)
    )
    return out.reshape(v.shape)


def layers_for_global_average(n: int, span: int) -> int:
    """Layers an attention whose outputs each see at most `span` inputs needs before one output can
    depend on all n inputs: ⌈log_span n⌉ (one for ANNA, whose bucket can hold all n keys)."""
    check_count("n", n)
    check_count("span", span, minimum=2)
    return max(1, math.ceil(math.log(n) / math.log(span) - 1e-12))


def receptive_fields(n: int, bucket_size: int, n_layers: int, dim: int = 16, seed: int = 0) -> dict:
    """How many inputs the best-connected output depends on after 1..n_layers layers.

    Reformer: `chunked_bucket_attention` on random shared query-keys (fresh ones per layer); its weight
    matrix is read off by attending over the identity (out = W·I), and dependence composes as the boolean
    product of the layers' patterns. ANNA: one layer whose queries and keys are all equal already depends on
    all N (the global average). Returns {"reformer", "reformer_bound", "anna"}, lists over layers.
    """
    check_count("n", n, minimum=2)
    check_count("n_layers", n_layers)
    identity = torch.eye(n)
    generator = cpu_generator(seed, "receptive-field")
    depends, reformer = torch.eye(n), []
    for layer in range(n_layers):
        x = torch.randn(n, dim, generator=generator)
        pattern = (chunked_bucket_attention(x, identity, bucket_size, seed=seed + layer) != 0).float()
        depends = ((pattern @ depends) > 0).float()
        reformer.append(int(depends.sum(dim=1).max()))
    same = torch.ones(n, dim)
    anna_pattern = anna_attention(same, same, identity, n_tables=1, n_hashes=1) != 0
    anna = [int(anna_pattern.sum(dim=1).max())] * n_layers
    bound = [min(n, (2 * bucket_size) ** (layer + 1)) for layer in range(n_layers)]
    return {"reformer": reformer, "reformer_bound": bound, "anna": anna}
