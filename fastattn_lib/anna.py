"""ANNA, approximate nearest-neighbour attention: each query averages the values of the keys it meets in
LSH buckets.

Hash the queries q_i and keys k_j into ℓ tables of z concatenated LSH functions (`lsh.LSHTables`). Both
families see only a vector's direction, so this is hashing the unit vectors q̂_i and k̂_j; q and k are
hashed as given, which spares a normalising pass (in floating point the two can differ only where two
rotated coordinates are equal to within rounding error). With c_ij the number of tables in which q_i and
k_j share a bucket,

    out_i = Σ_j c_ij·v_j / Σ_j c_ij          (0 when q_i collides with no key)

so ANNA's implied attention matrix is w_ij = c_ij / Σ_j' c_ij'. A near key collides in some table with high
probability, a far key rarely; the paper's (c, r, ℓ, η)-ANNA definition asks exactly that far keys get no
weight and every near key at least 1/((|𝒩(q_i, cr)| − 1)·ℓ + 1) (`check_anna_guarantee`). The paper names
its Algorithm 1 (ℓ tables kept at once) and Algorithm 2 (linear memory); their steps below, bucket sums and
counts with a key counted once for every table it shares with the query, are our reconstruction, chosen
because these weights meet that lower bound. Rows with no collision output 0 by our convention.

Three implementations agree to float tolerance:

* `impl="dense"`: the O(ℓ·N·N_k) oracle that builds c_ij explicitly (`collision_counts`);
* `impl="tables"` (our Algorithm 1): every bucket of every table stores the sum S and the count C of its
  keys' values; each query adds up S and C of its ℓ buckets: out_i = Σ_u S_u(q_i) / Σ_u C_u(q_i).
  Hashing costs ℓ·z·D·m per token with a dense D × m rotation (D = m), ℓ·z·3·D·log₂D with the
  Hadamard one; reading costs ℓ·d_v;
* `impl="linear_memory"` (our Algorithm 2): the same, one table at a time, so memory does not grow with ℓ.

Causal ANNA (j ≤ i; our variant, for decoders) reads only the prefix of each bucket up to the query.

Training: counts are piecewise constant in q and k, so ANNA has no gradient for them. Its expectation does:
E[c_ij] = ℓ·p(θ_ij)^z with p the single-hash collision probability, the **collision kernel**
(`collision_kernel_weights`), and `straight_through_anna` runs ANNA forward with the kernel's gradient.
Both are ours: the paper distils a softmax-trained model into ANNA without saying how.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .checks import check_count, check_hashing, check_qkv, check_table_memory
from .device import memory_limit
from .kernels import causal_bucket_sums, collision_count_matrix, read_bucket_sums, scatter_add_rows
from .lsh import LSHTables, collision_probability_of_cosine


def causal_mask(n_queries: int, n_keys: int, device, query_positions=None) -> torch.Tensor:
    """(N, N_k) bool: key j is visible to query i when j ≤ the position of i (i itself, unless given)."""
    if query_positions is None:
        query_positions = torch.arange(n_queries)
    return torch.arange(n_keys, device=device)[None, :] <= query_positions.to(device)[:, None]


def hash_tables(q, n_tables, n_hashes, family, seed, per_head: bool, rotation: str = "dense") -> LSHTables:
    """The tables ANNA hashes q and k with: one set for every leading index, or (`per_head`) head h of
    q [..., H, N, m] with the functions of seed + h."""
    if per_head:
        if q.dim() < 3:
            raise ValueError(f"q: per_head needs shape [..., H, N, m], got {tuple(q.shape)}")
        heads = q.shape[-3]
        return LSHTables.per_head(q.shape[-1], heads, n_tables, n_hashes, family, seed, q.device, rotation)
    return LSHTables(q.shape[-1], n_tables, n_hashes, family, seed, q.device, rotation)


def collision_counts(
    q,
    k,
    n_tables,
    n_hashes,
    family="cross_polytope",
    seed=0,
    causal=False,
    query_positions=None,
    per_head=False,
    rotation="dense",
) -> torch.Tensor:
    """c_ij: in how many of the ℓ tables q_i and k_j share a bucket, shape [..., N, N_k] (0 above the
    diagonal when causal; `query_positions`: the queries are those rows of a longer sequence).
    O(ℓ·N·N_k): for oracles and pictures."""
    check_qkv(q, k, k, causal, query_positions)
    check_hashing(n_tables, n_hashes, "dense")
    batch = q.shape[:-2].numel()
    check_table_memory(n_tables, batch * q.shape[-2] * k.shape[-2], 1, memory_limit(q.device))
    tables = hash_tables(q, n_tables, n_hashes, family, seed, per_head, rotation)
    query_ids, key_ids = tables._bucket_ids(q), tables._bucket_ids(k)  # (ℓ, ..., N), (ℓ, ..., N_k); checked
    n_tables, n_queries, n_keys = query_ids.shape[0], query_ids.shape[-1], key_ids.shape[-1]
    counts = collision_count_matrix(
        query_ids.reshape(n_tables, -1, n_queries), key_ids.reshape(n_tables, -1, n_keys)
    ).view(*query_ids.shape[1:], n_keys)  # (..., N, N_k)
    if causal:
        counts = counts.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device, query_positions), 0)
    return counts


def anna_weights(
    q,
    k,
    n_tables,
    n_hashes,
    family="cross_polytope",
    seed=0,
    causal=False,
    query_positions=None,
    per_head=False,
    rotation="dense",
) -> torch.Tensor:
    """ANNA's implied attention matrix w_ij = c_ij / Σ_j' c_ij' (a zero row where nothing collides)."""
    counts = collision_counts(
        q, k, n_tables, n_hashes, family, seed, causal, query_positions, per_head, rotation
    )
    counts = counts.to(q.dtype)
    return counts / counts.sum(dim=-1, keepdim=True).clamp(min=1)


# ---- Algorithm 1: bucket sums and counts -------------------------------------------------------------------


def number_buckets(key_ids, query_ids, n_buckets: int):
    """Number every (table, batch, bucket) that occurs with one small integer.

    key_ids (T, B, N_k) and query_ids (T, B, N) hold bucket ids < n_buckets per (table, batch) group.
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


def build_buckets(key_index, v, size: int):
    """Algorithm 1's tables: the sum S and count C of the values in every bucket.

    key_index (T, B, N_k) from `number_buckets`, v (B, N_k, d_v) → S (size, d_v), C (size,)."""
    sums = v.new_zeros(size, v.shape[-1])
    scatter_add_rows(key_index.reshape(key_index.shape[0], -1), v.reshape(-1, v.shape[-1]), sums)
    return sums, torch.bincount(key_index.flatten(), minlength=size)


def read_buckets(query_index, sums, counts):
    """Each query adds up S and C of its bucket in every table: num (B, N, d_v), den (B, N)."""
    return read_bucket_sums(query_index, sums, counts)


def _aggregate(query_ids, key_ids, v, n_buckets: int, causal: bool):
    """Bucket sums and counts read by every query, summed over tables.

    query_ids (T, B, N), key_ids (T, B, N_k), v (B, N_k, d_v). Returns num (B, N, d_v) = Σ_u Σ_{j in q_i's
    bucket of table u} v_j and den (B, N) = Σ_u |that bucket| (keys j ≤ i only when causal).
    """
    key_index, query_index, size = number_buckets(key_ids, query_ids, n_buckets)
    if not causal:
        return read_buckets(query_index, *build_buckets(key_index, v, size))
    # Causal: query i reads the part of its bucket that holds keys j ≤ i (a running sum over positions).
    return causal_bucket_sums(key_index, query_index, v, size)


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
    per_head: bool = False,
    rotation: str = "dense",
) -> torch.Tensor:
    """ANNA: each query averages the values of the keys it collides with, weighted by collision count.

    Hashing uses exactly the functions `LSHTables(q.shape[-1], n_tables, n_hashes, family, seed)` draws, on
    q and k as given (the hashes ignore length), the same for every leading index; with `per_head`,
    dimension −3 of q [..., H, N, m] holds heads and head h hashes with seed + h (all heads in one call).
    `rotation` ("dense" or "hadamard", cross-polytope only) is passed to `LSHTables`. See the module
    docstring for the formula and the three `impl`s (which agree to float tolerance). Returns [..., N, d_v].
    """
    check_qkv(q, k, v, causal)
    check_hashing(n_tables, n_hashes, impl)
    batch_shape, n_queries, d_v = q.shape[:-2], q.shape[-2], v.shape[-1]
    if n_queries == 0:
        return v.new_zeros(*batch_shape, 0, d_v)
    if impl == "dense":
        return anna_weights(q, k, n_tables, n_hashes, family, seed, causal, None, per_head, rotation) @ v
    batch = batch_shape.numel()
    if impl == "tables":  # ids of queries and keys, their bucket numbers, and a sum per occurring bucket
        per_row = 3 * 8 + d_v * v.element_size()
        check_table_memory(n_tables, batch * (n_queries + k.shape[-2]), per_row, memory_limit(q.device))
    tables = hash_tables(q, n_tables, n_hashes, family, seed, per_head, rotation)

    def ids(x, table=None):  # (T, B, N): bucket ids with every leading dimension flattened into B
        found = tables._bucket_ids(x, table)  # x was checked by check_qkv
        return found.reshape(-1 if table is None else 1, batch, x.shape[-2])

    v = v.reshape(batch, -1, d_v)  # (B, N_k, d_v)
    if impl == "tables":
        num, den = _aggregate(ids(q), ids(k), v, tables.n_buckets, causal)
    else:
        num, den = v.new_zeros(batch, n_queries, d_v), torch.zeros(batch, n_queries, device=v.device)
        for u in range(n_tables):  # Algorithm 2: build, read and drop one table at a time
            table_num, table_den = _aggregate(ids(q, u), ids(k, u), v, tables.n_buckets, causal)
            num += table_num
            den += table_den
    scale = den.clamp(min=1).unsqueeze(-1).to(v.dtype)  # rows without a collision stay 0
    # num is ours: dividing it in place spares page-faulting a fresh output (8x the division at 8 heads)
    out = num / scale if num.requires_grad else num.div_(scale)
    return out.reshape(*batch_shape, n_queries, d_v)


# ---- training through ANNA: the collision kernel -------------------------------------------------------


def collision_kernel_weights(
    q, k, n_hashes=1, family="cross_polytope", causal=False, n_tables: int | None = None
) -> torch.Tensor:
    """The ℓ → ∞ limit of ANNA's weights: w_ij = p(θ_ij)^z / Σ_j' p(θ_ij')^z, differentiable in q and k.

    E[c_ij] = ℓ·p(θ_ij)^z for every ℓ, so by the law of large numbers `anna_weights` converges to this as
    the number of tables grows. Training through it teaches q and k the geometry LSH can see: a key is
    found reliably only when its angle to the query is small, whatever β a softmax would use.

    The limit forgets one thing a finite ℓ cannot: a query that collides with no key gets output 0. The
    normalisation above hides it (a row of tiny p^z still sums to 1). With `n_tables=ℓ` each row is
    scaled by the chance that something collides, treating keys as independent within a table:

        w_ij · (1 − Π_j' (1 − p(θ_ij')^z)^ℓ)
    """
    check_qkv(q, k, k, causal)
    check_count("n_hashes", n_hashes)
    if n_tables is not None:
        check_count("n_tables", n_tables)
    cos = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-1, -2)  # (..., N, N_k)
    kernel = collision_probability_of_cosine(cos, family, dim=q.shape[-1]) ** n_hashes
    if causal:
        kernel = kernel.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), 0)
    weights = kernel / kernel.sum(dim=-1, keepdim=True).clamp(min=torch.finfo(kernel.dtype).tiny)
    if n_tables is None:
        return weights
    # log P[no key collides in one table]; p^z = 1 (an identical key) is kept just below 1 for the gradient
    log_missed = torch.log1p(-kernel.clamp(max=1 - 1e-6)).sum(dim=-1, keepdim=True)
    return weights * (1 - torch.exp(n_tables * log_missed))


def collision_kernel_attention(
    q, k, v, n_hashes=1, family="cross_polytope", causal=False, n_tables: int | None = None
) -> torch.Tensor:
    """ANNA in expectation: `collision_kernel_weights(q, k, ..., n_tables) @ v` (ℓ → ∞ without n_tables)."""
    check_qkv(q, k, v, causal)
    return collision_kernel_weights(q, k, n_hashes, family, causal, n_tables) @ v


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
    per_head: bool = False,
    rotation: str = "dense",
) -> torch.Tensor:
    """ANNA forward; backward, v gets ANNA's exact gradient and q, k the collision kernel's gradient.

    Returns exactly `anna_attention(...)` plus K(q, k)·v − stop_grad(K·v) (K = `collision_kernel_weights`,
    with v held fixed in that term), which is zero in value and gives q and k the gradient of ANNA's
    expectation. The loss is the real finite-ℓ loss, so the batches where a partner key was missed are the
    ones that pull it closer. With `finite_kernel` K is the kernel for this ℓ (`n_tables=ℓ`), whose gradient
    also sees the rows where nothing is likely to collide.
    """
    out = anna_attention(q, k, v, n_tables, n_hashes, family, seed, causal, impl, per_head, rotation)
    tables = n_tables if finite_kernel else None
    expected = collision_kernel_weights(q, k, n_hashes, family, causal, tables) @ v.detach()
    return out + (expected - expected.detach())


# ---- the ANNA guarantee, checked on an input -----------------------------------------------------------


@dataclass
class GuaranteeReport:
    """How an attention matrix measures up to the (c, r, ℓ, η)-ANNA definition, on unit-normalised q and k."""

    far_violations: int  # pairs with w_ij > 0 although ‖q̂_i − k̂_j‖ > c·r
    near_violations: int  # pairs with ‖q̂_i − k̂_j‖ ≤ r but w_ij < 1/((|𝒩(q_i, cr)| − 1)·ℓ + 1)
    near_pairs: int  # pairs with ‖q̂_i − k̂_j‖ ≤ r
    queries_ok: torch.Tensor  # [..., N] bool: query i meets both conditions

    @property
    def holds(self) -> bool:
        return self.far_violations == 0 and self.near_violations == 0


def check_anna_guarantee(
    q, k, weights, r: float, c: float, n_tables: int, causal: bool = False, query_positions=None
) -> GuaranteeReport:
    """Check the two conditions of the (c, r, ℓ, η)-ANNA definition for attention weights [..., N, N_k]:

    1. no far keys: w_ij > 0 only if ‖q̂_i − k̂_j‖ ≤ c·r;
    2. near keys get a share: ‖q̂_i − k̂_j‖ ≤ r ⇒ w_ij ≥ 1 / ((|𝒩(q_i, cr)| − 1)·ℓ + 1),
       𝒩(q, t) = {j : ‖q̂ − k̂_j‖ ≤ t} (keys j ≤ i only when causal).
    """
    check_qkv(q, k, k, causal, query_positions)
    if not (isinstance(r, (int, float)) and isinstance(c, (int, float)) and r > 0 and c > 1):
        raise ValueError(f"r, c: expected r > 0 and c > 1, got r={r!r}, c={c!r}")
    if weights.shape != q.shape[:-1] + k.shape[-2:-1]:
        raise ValueError(
            f"weights: expected shape {tuple(q.shape[:-1] + k.shape[-2:-1])}, got {tuple(weights.shape)}"
        )
    distance = torch.cdist(F.normalize(q, dim=-1), F.normalize(k, dim=-1))  # (..., N, N_k)
    if causal:
        visible = causal_mask(q.shape[-2], k.shape[-2], q.device, query_positions)
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
