"""Attention three ways: softmax, ANNA (approximate nearest-neighbour attention) and low-rank.

* `softmax_attention`: softmax(β·q̂·k̂ᵀ)·v on unit-normalised q̂, k̂. β is the temperature; as β grows the
  weights concentrate on the keys closest to the query. This is the differentiable surrogate ANNA is
  distilled from.
* `anna_attention`: hash q̂ and k̂ into ℓ tables of z concatenated LSH functions (`lsh.LSHTables`). With
  c_ij the number of tables in which q_i and k_j share a bucket,

      out_i = Σ_j c_ij·v_j / Σ_j c_ij          (0 when q_i collides with no key)

  so w_ij = c_ij / Σ_j' c_ij' (spec §1: a near key collides at least once, each of the other admissible
  keys at most ℓ times, hence w_ij ≥ 1/((|N(q_i, cr)| − 1)·ℓ + 1)). Three implementations agree:
    - `impl="dense"`: the O(ℓ·N·M) oracle that builds c_ij explicitly;
    - `impl="tables"` (Algorithm 1): all ℓ tables at once; each bucket stores the sum and count of its
      keys' values, each query reads its ℓ buckets: O(ℓ·N·(z·m·D + d_v)) time, O(ℓ·N·d_v) memory;
    - `impl="linear_memory"` (Algorithm 2): the same, one table at a time; memory independent of ℓ.
  Causal masking (j ≤ i) uses prefix sums of values within each bucket, found by sorting (bucket, j).
* `low_rank_attention`: φ(q)·(φ(k)ᵀv) / φ(q)·Σφ(k), φ(x) = elu(x) + 1: linear-time, softmax-free.

Tensors are [..., N, m] for queries and [..., M, m], [..., M, d_v] for keys and values; any leading batch
dimensions (batch, heads) are allowed and must match.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from numba import njit, prange
from torch import nn

from .checks import check_count, check_finite_floats
from .device import match_numba_threads
from .lsh import LSHTables, _check_family, collision_probability_of_cosine

IMPLS = ("tables", "linear_memory", "dense")


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, query_positions=None) -> None:
    for name, tensor in (("q", q), ("k", k), ("v", v)):
        check_finite_floats(name, tensor)
        if tensor.dim() < 2:
            raise ValueError(f"{name}: expected shape [..., N, dim], got {tuple(tensor.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q, k: widths differ ({q.shape[-1]} vs {k.shape[-1]}); both must be m")
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"k, v: expected matching [..., M], got {tuple(k.shape)} and {tuple(v.shape)}")
    if q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q, k: batch dimensions differ ({tuple(q.shape[:-2])} vs {tuple(k.shape[:-2])})")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v: dtypes differ ({q.dtype}, {k.dtype}, {v.dtype})")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v: devices differ ({q.device}, {k.device}, {v.device})")
    if query_positions is not None:
        if query_positions.shape != (q.shape[-2],) or query_positions.dtype != torch.long:
            raise ValueError(f"query_positions: expected a LongTensor of shape ({q.shape[-2]},)")
    elif causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal: needs as many queries as keys, got N={q.shape[-2]}, M={k.shape[-2]}")


def _check_beta(beta) -> None:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta: expected a finite number > 0, got {beta!r}")


def _check_hashing(n_tables, n_hashes, impl) -> None:
    check_count("n_tables", n_tables)
    check_count("n_hashes", n_hashes)
    if impl not in IMPLS:
        raise ValueError(f"impl: expected one of {IMPLS}, got {impl!r}")


def _causal_mask(n_queries: int, n_keys: int, device, query_positions=None) -> torch.Tensor:
    """(N, M) bool: key j is visible to query i when j ≤ the position of i (i itself, unless given)."""
    if query_positions is None:
        query_positions = torch.arange(n_queries)
    return torch.arange(n_keys, device=device)[None, :] <= query_positions.to(device)[:, None]


# ----------------------------------------------------------------------------------------------------
# Softmax attention
# ----------------------------------------------------------------------------------------------------


def softmax_weights(q, k, beta=1.0, causal=False, normalize=True, query_positions=None) -> torch.Tensor:
    """The attention matrix softmax(β·q̂·k̂ᵀ), shape [..., N, M] (rows sum to 1). With `query_positions`,
    the queries are those rows of a longer sequence (for the causal mask): weights for a few queries."""
    _check_qkv(q, k, k, causal, query_positions)
    _check_beta(beta)
    if normalize:
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    scores = beta * q @ k.transpose(-1, -2)  # (..., N, M)
    if causal:
        visible = _causal_mask(q.shape[-2], k.shape[-2], q.device, query_positions)
        scores = scores.masked_fill(~visible, float("-inf"))
    return scores.softmax(dim=-1)


def softmax_attention(
    q, k, v, beta: float = 1.0, causal: bool = False, normalize: bool = True
) -> torch.Tensor:
    """softmax(β·q̂·k̂ᵀ)·v, through torch's fused `scaled_dot_product_attention` (no N×M matrix kept)."""
    _check_qkv(q, k, v, causal)
    _check_beta(beta)
    if normalize:
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    if q.dim() == 2:  # the fused kernel wants a batch dimension
        return F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=causal, scale=beta)[0]
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=beta)


# ----------------------------------------------------------------------------------------------------
# ANNA
# ----------------------------------------------------------------------------------------------------


def _bucket_tables(q, k, n_tables, n_hashes, family, seed):
    """The tables ANNA uses, and the unit-normalised q̂, k̂ it hashes."""
    tables = LSHTables(q.shape[-1], n_tables, n_hashes, family, seed=seed, device=q.device)
    return tables, F.normalize(q, dim=-1), F.normalize(k, dim=-1)


def collision_counts(
    q, k, n_tables, n_hashes, family="cross_polytope", seed=0, causal=False, query_positions=None
) -> torch.Tensor:
    """c_ij: in how many of the ℓ tables q_i and k_j share a bucket, shape [..., N, M] (0 above the
    diagonal when causal; `query_positions` as in `softmax_weights`). O(ℓ·N·M): for oracles and pictures."""
    _check_qkv(q, k, k, causal, query_positions)
    _check_hashing(n_tables, n_hashes, "dense")
    tables, q_hat, k_hat = _bucket_tables(q, k, n_tables, n_hashes, family, seed)
    query_ids, key_ids = tables.bucket_ids(q_hat), tables.bucket_ids(k_hat)  # (ℓ, ..., N), (ℓ, ..., M)
    counts = (query_ids[..., :, None] == key_ids[..., None, :]).sum(dim=0)  # (..., N, M)
    if causal:
        counts = counts.masked_fill(~_causal_mask(q.shape[-2], k.shape[-2], q.device, query_positions), 0)
    return counts


def anna_weights(
    q, k, n_tables, n_hashes, family="cross_polytope", seed=0, causal=False, query_positions=None
) -> torch.Tensor:
    """ANNA's implied attention matrix w_ij = c_ij / Σ_j' c_ij' (a zero row where nothing collides)."""
    counts = collision_counts(q, k, n_tables, n_hashes, family, seed, causal, query_positions).to(q.dtype)
    return counts / counts.sum(dim=-1, keepdim=True).clamp(min=1)


def collision_kernel_weights(
    q, k, n_hashes=1, family="cross_polytope", causal=False, n_tables: int | None = None
) -> torch.Tensor:
    """The ℓ → ∞ limit of ANNA's weights: w_ij = p(θ_ij)^z / Σ_j' p(θ_ij')^z, differentiable in q and k.

    E[c_ij] = ℓ·p(θ_ij)^z for every ℓ, so by the law of large numbers `anna_weights` converges to this as
    the number of tables grows (spec §3). Training through it teaches q and k the geometry LSH can see:
    a key is found reliably only when its angle to the query is small, whatever β a softmax would use.

    The limit forgets one thing a finite ℓ cannot: a query that collides with no key gets output 0. The
    normalisation above hides it (a row of tiny p^z still sums to 1). With `n_tables=ℓ` each row is
    scaled by the chance that something collides, treating keys as independent within a table:

        w_ij · (1 − Π_j' (1 − p(θ_ij')^z)^ℓ)

    so training through it also asks for some key to be close in absolute terms, not only the closest.
    """
    _check_qkv(q, k, k, causal)
    check_count("n_hashes", n_hashes)
    cos = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-1, -2)  # (..., N, M)
    kernel = collision_probability_of_cosine(cos, family, dim=q.shape[-1]) ** n_hashes
    if causal:
        kernel = kernel.masked_fill(~_causal_mask(q.shape[-2], k.shape[-2], q.device), 0)
    weights = kernel / kernel.sum(dim=-1, keepdim=True).clamp(min=torch.finfo(kernel.dtype).tiny)
    if n_tables is None:
        return weights
    check_count("n_tables", n_tables)
    # log P[no key collides in one table]; p^z = 1 (an identical key) is kept just below 1 for the gradient
    log_missed = torch.log1p(-kernel.clamp(max=1 - 1e-6)).sum(dim=-1, keepdim=True)
    return weights * (1 - torch.exp(n_tables * log_missed))


def collision_kernel_attention(
    q, k, v, n_hashes=1, family="cross_polytope", causal=False, n_tables: int | None = None
) -> torch.Tensor:
    """ANNA in expectation: `collision_kernel_weights(q, k, ..., n_tables) @ v` (ℓ → ∞ without n_tables)."""
    _check_qkv(q, k, v, causal)
    return collision_kernel_weights(q, k, n_hashes, family, causal, n_tables) @ v


def _dense_bucket_index(key_ids, query_ids, n_buckets: int):
    """Number every (table, batch, bucket) that occurs with one small integer.

    key_ids (T, B, M) and query_ids (T, B, N) hold bucket ids < n_buckets per (table, batch) group.
    Returns (key_index, query_index, size): equal indices ⇔ same group and same bucket, all < size.
    """
    n_groups = key_ids.shape[0] * key_ids.shape[1]
    group = torch.arange(n_groups, device=key_ids.device).view(key_ids.shape[0], key_ids.shape[1], 1)
    n_ids = key_ids.numel() + query_ids.numel()
    if n_groups * n_buckets >= 2**62:  # group·n_buckets + id would overflow int64: renumber ids first
        _, inverse = torch.unique(torch.cat([key_ids.flatten(), query_ids.flatten()]), return_inverse=True)
        key_ids, query_ids = (
            inverse[: key_ids.numel()].view_as(key_ids),
            inverse[key_ids.numel() :].view_as(query_ids),
        )
        n_buckets = n_ids
    key_index, query_index = group * n_buckets + key_ids, group * n_buckets + query_ids
    if n_groups * n_buckets <= 4 * n_ids + 2**16:  # few possible buckets: index them directly
        return key_index, query_index, n_groups * n_buckets
    occurring, inverse = torch.unique(
        torch.cat([key_index.flatten(), query_index.flatten()]), return_inverse=True
    )
    return (
        inverse[: key_ids.numel()].view_as(key_ids),
        inverse[key_ids.numel() :].view_as(query_ids),
        len(occurring),
    )


@njit(parallel=True, cache=True, boundscheck=False)
def _scatter_add_rows(index, values, sums):  # pragma: no cover - compiled by numba; tested via anna_attention
    """sums[index[u, j]] += values[j] for every table u and key j, one table per thread.

    Tables own disjoint ranges of `sums` (see `_dense_bucket_index`), so threads never write the same row.
    """
    n_tables, n_keys = index.shape
    for u in prange(n_tables):
        for j in range(n_keys):
            row = index[u, j]
            for c in range(values.shape[1]):
                sums[row, c] += values[j, c]


def _build_buckets(key_index, v, size: int):
    """Algorithm 1's tables: the sum S and count C of the values in every bucket.

    key_index (T, B, M) from `_dense_bucket_index`, v (B, M, d_v) → S (size, d_v), C (size,)."""
    sums, values = v.new_zeros(size, v.shape[-1]), v.reshape(-1, v.shape[-1])
    compiled = v.device.type == "cpu" and v.dtype in (torch.float32, torch.float64)
    if compiled and not (v.requires_grad and torch.is_grad_enabled()):
        # torch's CPU index_add_ is a slow generic scatter; a compiled loop is several times faster (it
        # has no gradient, so training keeps index_add_)
        match_numba_threads()
        _scatter_add_rows(
            key_index.reshape(key_index.shape[0], -1).numpy(),
            values.contiguous().numpy(),
            sums.numpy(),
        )
    else:
        for u in range(key_index.shape[0]):  # one scatter per table spares an ℓ-fold copy of v
            sums.index_add_(0, key_index[u].flatten(), values)
    return sums, torch.bincount(key_index.flatten(), minlength=size)


def _read_buckets(query_index, sums, counts):
    """Each query adds up S and C of its bucket in every table: num (B, N, d_v), den (B, N)."""
    n_tables, batch, _ = query_index.shape
    reads = query_index.permute(1, 2, 0).reshape(-1, n_tables)  # (B·N, ℓ): the buckets each query reads
    num = F.embedding_bag(reads, sums, mode="sum").view(batch, -1, sums.shape[-1])  # fused gather-and-sum
    return num, counts[query_index].sum(dim=0)


def _aggregate(query_ids, key_ids, v, n_buckets: int, causal: bool):
    """Bucket sums and counts read by every query, summed over tables.

    query_ids (T, B, N), key_ids (T, B, M), v (B, M, d_v). Returns num (B, N, d_v) = Σ_u Σ_{j in q_i's
    bucket of table u} v_j and den (B, N) = Σ_u |that bucket| (keys j ≤ i only when causal).
    """
    n_tables, batch, n_keys = key_ids.shape
    d_v = v.shape[-1]
    key_index, query_index, size = _dense_bucket_index(key_ids, query_ids, n_buckets)
    if not causal:
        return _read_buckets(query_index, *_build_buckets(key_index, v, size))
    # Causal: sort keys by (bucket, position); a query at position i reads the prefix of its bucket up to i.
    positions = torch.arange(n_keys, device=v.device)
    order_key = (key_index * n_keys + positions).flatten()  # (T·B·M,)
    sorted_key, order = order_key.sort()
    source = (torch.arange(batch, device=v.device).view(1, batch, 1) * n_keys + positions).expand_as(
        key_index
    )
    sorted_values = v.reshape(-1, d_v)[source.flatten()[order]].double()  # float64: prefix sums cancel
    prefix = torch.cat([sorted_values.new_zeros(1, d_v), sorted_values.cumsum(dim=0)])  # (T·B·M + 1, d_v)
    first = torch.searchsorted(sorted_key, (query_index * n_keys).flatten())
    last = torch.searchsorted(sorted_key, (query_index * n_keys + positions).flatten(), right=True)
    num = (prefix[last] - prefix[first]).to(v.dtype).view(n_tables, batch, -1, d_v)
    return num.sum(dim=0), (last - first).view(n_tables, batch, -1).sum(dim=0)


def anna_attention(
    q,
    k,
    v,
    n_tables: int,
    n_hashes: int,
    family: str = "cross_polytope",
    seed: int = 0,
    causal: bool = False,
    impl: str = "tables",
) -> torch.Tensor:
    """ANNA: each query averages the values of the keys it collides with, weighted by collision count.

    Hashing uses exactly the functions `LSHTables(q.shape[-1], n_tables, n_hashes, family, seed)` draws, on
    unit-normalised q and k, the same for every batch and head index. See the module docstring for the
    formula and the three `impl`s (which agree to float tolerance). Returns [..., N, d_v].
    """
    _check_qkv(q, k, v, causal)
    _check_hashing(n_tables, n_hashes, impl)
    if impl == "dense":
        return anna_weights(q, k, n_tables, n_hashes, family, seed, causal) @ v
    tables, q_hat, k_hat = _bucket_tables(q, k, n_tables, n_hashes, family, seed)
    batch_shape, n_queries, d_v = q.shape[:-2], q.shape[-2], v.shape[-1]
    q_hat, k_hat = q_hat.reshape(-1, n_queries, q.shape[-1]), k_hat.reshape(-1, k.shape[-2], k.shape[-1])
    v = v.reshape(-1, v.shape[-2], d_v)  # (B, M, d_v)
    if impl == "tables":
        num, den = _aggregate(tables.bucket_ids(q_hat), tables.bucket_ids(k_hat), v, tables.n_buckets, causal)
    else:
        num, den = (
            v.new_zeros(v.shape[0], n_queries, d_v),
            torch.zeros(v.shape[0], n_queries, device=v.device),
        )
        for u in range(n_tables):  # Algorithm 2: build, read and drop one table at a time
            table_num, table_den = _aggregate(
                tables.bucket_ids(q_hat, table=u)[None],
                tables.bucket_ids(k_hat, table=u)[None],
                v,
                tables.n_buckets,
                causal,
            )
            num += table_num
            den += table_den
    out = num / den.clamp(min=1).unsqueeze(-1).to(v.dtype)  # rows without a collision stay 0
    return out.reshape(*batch_shape, n_queries, d_v)


def straight_through_anna(
    q,
    k,
    v,
    n_tables,
    n_hashes,
    family="cross_polytope",
    seed=0,
    causal=False,
    impl="tables",
    finite_kernel: bool = False,
) -> torch.Tensor:
    """ANNA forward; backward, v gets ANNA's exact gradient and q, k the collision kernel's gradient.

    Collision counts are piecewise constant in q and k, so ANNA alone cannot teach them. This
    straight-through estimator returns exactly `anna_attention(...)` but adds K(q, k)·v − stop_grad(K·v)
    (K = `collision_kernel_weights`, with v held fixed in that term), which is zero in value and gives
    q and k the gradient of ANNA's expectation. The loss is the real finite-ℓ loss, so the batches where
    a partner key was missed are the ones that pull it closer. With `finite_kernel` K is the kernel for
    this ℓ (`n_tables=ℓ`), whose gradient also sees the rows where nothing is likely to collide.
    """
    out = anna_attention(q, k, v, n_tables, n_hashes, family, seed, causal, impl)
    tables = n_tables if finite_kernel else None
    expected = collision_kernel_weights(q, k, n_hashes, family, causal, tables) @ v.detach()
    return out + (expected - expected.detach())


def chunked_bucket_attention(
    x, v, bucket_size: int, n_hashes: int = 1, family="cross_polytope", seed: int = 0
):
    """Reformer-style attention with constant-size chunks, for the separation of spec §4.

    Queries and keys are shared (x, as in Reformer). One table hashes x̂; tokens are sorted by (bucket,
    position) and cut into chunks of `bucket_size`; each token averages the values of the same-bucket tokens
    in its own chunk and the one before. So an output depends on at most 2·bucket_size inputs whatever N
    is, and a global average over N tokens needs about log_{2·bucket_size} N layers; ANNA needs one.
    """
    _check_qkv(x, x, v, causal=False)
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
    chunk_ids = sorted_ids.view(-1, chunks, bucket_size)  # (B, C, bs)
    chunk_v = sorted_v.view(-1, chunks, bucket_size, v.shape[-1])  # (B, C, bs, d_v)
    look_ids = torch.cat([chunk_ids.roll(1, dims=1), chunk_ids], dim=-1)  # (B, C, 2·bs): previous chunk + own
    look_v = torch.cat([chunk_v.roll(1, dims=1), chunk_v], dim=-2)
    look_ids[:, 0, :bucket_size] = -1  # the first chunk has no previous one (roll wrapped the last around)
    same = (chunk_ids.unsqueeze(-1) == look_ids.unsqueeze(-2)).to(v.dtype)  # (B, C, bs, 2·bs)
    out_sorted = (same @ look_v) / same.sum(-1, keepdim=True)  # every token sees at least itself
    out = torch.empty_like(sorted_v).scatter_(
        1, order.unsqueeze(-1).expand_as(sorted_v), out_sorted.flatten(1, 2)
    )
    return out.reshape(v.shape)


def layers_for_global_average(n: int, span: int) -> int:
    """Layers an attention whose outputs each see at most `span` inputs needs before one output can
    depend on all n inputs: ⌈log_span n⌉ (one for ANNA, whose bucket can hold all n keys)."""
    return max(1, math.ceil(math.log(n) / math.log(span) - 1e-12))


# ----------------------------------------------------------------------------------------------------
# The ANNA guarantee, checked on an input (spec §1)
# ----------------------------------------------------------------------------------------------------


@dataclass
class GuaranteeReport:
    """How an attention matrix measures up to the (c, r, ℓ)-ANNA definition, on unit-normalised q and k."""

    far_violations: int  # pairs with w_ij > 0 although ‖q̂_i − k̂_j‖ > c·r
    near_violations: int  # pairs with ‖q̂_i − k̂_j‖ ≤ r but w_ij < 1/((|N(q_i, cr)| − 1)·ℓ + 1)
    near_pairs: int  # pairs with ‖q̂_i − k̂_j‖ ≤ r
    queries_ok: torch.Tensor  # [..., N] bool: query i meets both conditions

    @property
    def holds(self) -> bool:
        return self.far_violations == 0 and self.near_violations == 0


def check_anna_guarantee(
    q, k, weights, r: float, c: float, n_tables: int, causal: bool = False, query_positions=None
) -> GuaranteeReport:
    """Check the two conditions of the ANNA definition for attention weights [..., N, M]:

    1. no far keys: w_ij > 0 only if ‖q̂_i − k̂_j‖ ≤ c·r;
    2. near keys get a share: ‖q̂_i − k̂_j‖ ≤ r ⇒ w_ij ≥ 1 / ((|N(q_i, cr)| − 1)·ℓ + 1),
       N(q, t) = {j : ‖q̂ − k̂_j‖ ≤ t} (keys j ≤ i only when causal; `query_positions` as in
       `softmax_weights`).
    """
    _check_qkv(q, k, k, causal, query_positions)
    if not (isinstance(r, (int, float)) and isinstance(c, (int, float)) and r > 0 and c > 1):
        raise ValueError(f"r, c: expected r > 0 and c > 1, got r={r!r}, c={c!r}")
    if weights.shape != q.shape[:-1] + k.shape[-2:-1]:
        raise ValueError(
            f"weights: expected shape {tuple(q.shape[:-1] + k.shape[-2:-1])}, got {tuple(weights.shape)}"
        )
    distance = torch.cdist(F.normalize(q, dim=-1), F.normalize(k, dim=-1))  # (..., N, M)
    if causal:
        visible = _causal_mask(q.shape[-2], k.shape[-2], q.device, query_positions)
    else:
        visible = torch.ones_like(distance, dtype=torch.bool)
    near, admissible = (distance <= r) & visible, (distance <= c * r) & visible
    far_hit = (weights > 0) & ~admissible
    bound = 1 / ((admissible.sum(dim=-1, keepdim=True) - 1).clamp(min=0) * n_tables + 1)
    near_miss = near & (weights < bound - 1e-6)
    return GuaranteeReport(
        far_violations=int(far_hit.sum()),
        near_violations=int(near_miss.sum()),
        near_pairs=int(near.sum()),
        queries_ok=~(far_hit | near_miss).any(dim=-1),
    )


# ----------------------------------------------------------------------------------------------------
# Low-rank (kernelised) attention
# ----------------------------------------------------------------------------------------------------


def _feature_map(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1  # positive features, so the normaliser never vanishes


def low_rank_weights(q, k, causal: bool = False) -> torch.Tensor:
    """The implied matrix φ(q_i)·φ(k_j) / Σ_j' φ(q_i)·φ(k_j'), shape [..., N, M], rank ≤ m."""
    _check_qkv(q, k, k, causal)
    scores = _feature_map(q) @ _feature_map(k).transpose(-1, -2)  # (..., N, M)
    if causal:
        scores = scores.masked_fill(~_causal_mask(q.shape[-2], k.shape[-2], q.device), 0)
    return scores / scores.sum(dim=-1, keepdim=True)


def low_rank_attention(q, k, v, causal: bool = False) -> torch.Tensor:
    """φ(q)·(φ(k)ᵀ·v) / φ(q)·Σ_j φ(k_j) in O(N·m·d_v), with φ(x) = elu(x) + 1; causal via prefix sums."""
    _check_qkv(q, k, v, causal)
    phi_q, phi_k = _feature_map(q), _feature_map(k)
    if not causal:
        kv = phi_k.transpose(-1, -2) @ v  # (..., m, d_v)
        return (phi_q @ kv) / (phi_q @ phi_k.sum(dim=-2).unsqueeze(-1))
    kv = (phi_k.unsqueeze(-1) * v.unsqueeze(-2)).cumsum(dim=-3)  # (..., N, m, d_v): Σ_{j≤i} φ(k_j) v_jᵀ
    normaliser = (phi_q * phi_k.cumsum(dim=-2)).sum(dim=-1, keepdim=True)  # (..., N, 1)
    return (phi_q.unsqueeze(-2) @ kv).squeeze(-2) / normaliser


# ----------------------------------------------------------------------------------------------------
# A drop-in multi-head layer
# ----------------------------------------------------------------------------------------------------


class MultiHeadAttention(nn.Module):
    """Multi-head attention whose inner attention is switchable between softmax and ANNA.

    x (B, N, d_model) → q, k, v per head (B, H, N, d_head) → attention → (B, N, d_model). Each head's ANNA
    draws its own hash functions (seed + head index), as independent heads should.
    """

    def __init__(self, d_model: int, n_heads: int = 1, causal: bool = False, beta: float = 1.0):
        super().__init__()
        if not isinstance(n_heads, int) or n_heads < 1 or d_model % n_heads:
            raise ValueError(f"n_heads: expected a divisor of d_model={d_model}, got {n_heads!r}")
        self.n_heads, self.causal = n_heads, causal
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.use_attention("softmax", beta=beta)

    def use_attention(self, kind: str, **params) -> MultiHeadAttention:
        """Switch attention, keeping every weight:

        * `("softmax", beta=)`: the surrogate softmax(β·q̂·k̂ᵀ);
        * `("anna", n_tables=, n_hashes=, family=, seed=, impl=, straight_through=, finite_kernel=)`: ANNA
          with those hash functions (`straight_through=True` for training: see `straight_through_anna`);
        * `("collision_kernel", n_hashes=, family=, n_tables=)`: ANNA's expectation, differentiable in q and
          k (ℓ → ∞ without `n_tables`; see `collision_kernel_weights`).
        """
        defaults = {
            "softmax": {"beta": getattr(self, "beta", 1.0)},
            "anna": {
                "family": "cross_polytope",
                "seed": 0,
                "straight_through": False,
                "finite_kernel": False,
            },
            "collision_kernel": {"n_hashes": 1, "family": "cross_polytope", "n_tables": None},
        }
        if kind not in defaults:
            raise ValueError(f"kind: expected one of {sorted(defaults)}, got {kind!r}")
        allowed = {
            "softmax": {"beta"},
            "anna": {"n_tables", "n_hashes", "family", "seed", "impl", "straight_through", "finite_kernel"},
            "collision_kernel": {"n_hashes", "family", "n_tables"},
        }[kind]
        if set(params) - allowed:
            raise ValueError(
                f"{kind} attention takes {sorted(allowed)}, got unexpected {sorted(set(params) - allowed)}"
            )
        params = {**defaults[kind], **params}
        if kind == "softmax":
            _check_beta(params["beta"])
            self.beta = params["beta"]
        elif kind == "anna":
            _check_hashing(params.get("n_tables"), params.get("n_hashes"), params.get("impl", "tables"))
        if kind != "softmax":
            _check_family(params["family"])
        if kind == "collision_kernel":
            check_count("n_hashes", params["n_hashes"])
            if params["n_tables"] is not None:
                check_count("n_tables", params["n_tables"])
        self.attention_kind, self.attention_params = kind, params
        return self

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention matrix the current attention applies to x, [B, H, N, N] (for pictures)."""
        batch, n, d_model = x.shape
        q, k, _ = self.qkv(x).view(batch, n, 3, self.n_heads, d_model // self.n_heads).permute(2, 0, 3, 1, 4)
        params = dict(self.attention_params)
        if self.attention_kind == "softmax":
            return softmax_weights(q, k, causal=self.causal, **params)
        if self.attention_kind == "collision_kernel":
            return collision_kernel_weights(q, k, causal=self.causal, **params)
        seed = params.pop("seed")
        for training_only in ("impl", "straight_through", "finite_kernel"):
            params.pop(training_only, None)
        heads = [
            anna_weights(q[:, h], k[:, h], causal=self.causal, seed=seed + h, **params)
            for h in range(self.n_heads)
        ]
        return torch.stack(heads, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, n, d_model = x.shape
        q, k, v = self.qkv(x).view(batch, n, 3, self.n_heads, d_model // self.n_heads).permute(2, 0, 3, 1, 4)
        if self.attention_kind == "softmax":
            y = softmax_attention(
                q, k, v, beta=self.attention_params["beta"], causal=self.causal
            )  # (B, H, N, dh)
        elif self.attention_kind == "collision_kernel":
            y = collision_kernel_attention(q, k, v, causal=self.causal, **self.attention_params)
        else:
            params = dict(self.attention_params)
            seed, finite_kernel = params.pop("seed"), params.pop("finite_kernel")
            if params.pop("straight_through"):
                run = partial(straight_through_anna, finite_kernel=finite_kernel)
            else:
                run = anna_attention
            heads = [
                run(q[:, h], k[:, h], v[:, h], causal=self.causal, seed=seed + h, **params)
                for h in range(self.n_heads)
            ]
            y = torch.stack(heads, dim=1)  # (B, H, N, dh)
        return self.proj(y.transpose(1, 2).reshape(batch, n, d_model))
