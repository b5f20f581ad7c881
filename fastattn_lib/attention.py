"""Attention as a value: each kind of attention is a small immutable object behind one interface.

    attention(q, k, v, causal=False) -> out [..., N, d_v]        attention.weights(q, k) -> [..., N, N_k]

q [..., N, m], k [..., N_k, m], v [..., N_k, d_v]. `weights` is the attention matrix the kind applies (for
pictures and oracles); `out` = weights @ v, computed without that matrix where the kind allows it.

* `Softmax(beta)`: softmax(β·q̂·k̂ᵀ)·v on unit-normalised q̂, k̂; β is an inverse temperature: as it grows,
  the weight concentrates on the keys closest to the query. ANNA's trainable surrogate.
  `Softmax(beta, normalize=False)` is the usual scaled dot product softmax(β·q·kᵀ) (β = 1/√m).
* `Anna(n_tables=ℓ, n_hashes=z)`: approximate nearest-neighbour attention (`fastattn_lib.anna`): LSH buckets
  instead of scores, w_ij ∝ the number of tables in which q_i and k_j collide (`rotation="hadamard"` for
  the cheaper pseudo-random rotation of cross-polytope hashing).
* `CollisionKernel(n_hashes=z)`: ANNA's expectation, differentiable in q and k (for training).
* `StraightThroughAnna(n_tables, n_hashes)`: ANNA forward, the collision kernel's gradient backward.
* `LowRank()`: φ(q)·(φ(k)ᵀv) / φ(q)·Σφ(k) with φ = elu + 1, linear in N and never sparse.

On a 4-D input [batch, heads, N, m] the hashing kinds give every head its own hash functions (seed + h);
on 2-D and 3-D inputs there is no head axis and every leading index shares one set. The functions behind
the objects (`softmax_attention`, `anna_attention`, …) take their parameters as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .anna import (  # noqa: F401  (re-exported: ANNA's functions are part of this module's API)
    GuaranteeReport,
    anna_attention,
    anna_weights,
    causal_mask,
    check_anna_guarantee,
    collision_counts,
    collision_kernel_attention,
    collision_kernel_weights,
    straight_through_anna,
)
from .checks import (
    FAMILIES,
    IMPLS,
    check_beta,
    check_choice,
    check_count,
    check_family,
    check_hashing,
    check_qkv,
    check_rotation,
    check_seed,
)


def _empty_queries(q, v):
    """The output for N = 0 queries: [..., 0, d_v] (every kind returns it instead of failing)."""
    return v.new_zeros(*q.shape[:-2], 0, v.shape[-1])


# ---- softmax ---------------------------------------------------------------------------------------------


def softmax_weights(q, k, beta=1.0, causal=False, normalize=True, query_positions=None) -> torch.Tensor:
    """The attention matrix softmax(β·q̂·k̂ᵀ), shape [..., N, N_k] (rows sum to 1). With `query_positions`,
    the queries are those rows of a longer sequence (for the causal mask): weights for a few queries."""
    check_qkv(q, k, k, causal, query_positions)
    check_beta(beta)
    if normalize:
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    scores = beta * q @ k.transpose(-1, -2)  # (..., N, N_k)
    if causal:
        scores = scores.masked_fill(
            ~causal_mask(q.shape[-2], k.shape[-2], q.device, query_positions), -torch.inf
        )
    return scores.softmax(dim=-1)


def softmax_attention(
    q, k, v, beta: float = 1.0, causal: bool = False, normalize: bool = True
) -> torch.Tensor:
    """softmax(β·q̂·k̂ᵀ)·v, through torch's fused `scaled_dot_product_attention` (no N×N_k matrix kept)."""
    check_qkv(q, k, v, causal)
    check_beta(beta)
    if q.shape[-2] == 0:
        return _empty_queries(q, v)
    if k.shape[-2] == 0:
        raise ValueError("k: softmax attention needs at least one key (N_k ≥ 1)")
    if normalize:
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    if q.dim() == 2:  # the fused kernel wants a batch dimension
        return F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=causal, scale=beta)[0]
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=beta)


# ---- low rank --------------------------------------------------------------------------------------------


def _feature_map(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1  # positive features, so the normaliser never vanishes


def low_rank_weights(q, k, causal: bool = False) -> torch.Tensor:
    """The implied matrix φ(q_i)·φ(k_j) / Σ_j' φ(q_i)·φ(k_j'), shape [..., N, N_k], rank ≤ m."""
    check_qkv(q, k, k, causal)
    scores = _feature_map(q) @ _feature_map(k).transpose(-1, -2)  # (..., N, N_k)
    if causal:
        scores = scores.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), 0)
    return scores / scores.sum(dim=-1, keepdim=True)


def low_rank_attention(q, k, v, causal: bool = False) -> torch.Tensor:
    """φ(q)·(φ(k)ᵀ·v) / φ(q)·Σ_j φ(k_j) in O(N·m·d_v), with φ(x) = elu(x) + 1; causal via prefix sums."""
    check_qkv(q, k, v, causal)
    if q.shape[-2] == 0:
        return _empty_queries(q, v)
    if k.shape[-2] == 0:
        raise ValueError("k: low-rank attention needs at least one key (N_k ≥ 1)")
    phi_q, phi_k = _feature_map(q), _feature_map(k)
    if not causal:
        kv = phi_k.transpose(-1, -2) @ v  # (..., m, d_v)
        return (phi_q @ kv) / (phi_q @ phi_k.sum(dim=-2).unsqueeze(-1))
    kv = (phi_k.unsqueeze(-1) * v.unsqueeze(-2)).cumsum(dim=-3)  # (..., N, m, d_v): Σ_{j≤i} φ(k_j) v_jᵀ
    normaliser = (phi_q * phi_k.cumsum(dim=-2)).sum(dim=-1, keepdim=True)  # (..., N, 1)
    return (phi_q.unsqueeze(-2) @ kv).squeeze(-2) / normaliser


# ---- the attention kinds as values -----------------------------------------------------------------------


def _has_heads(q) -> bool:
    return q.dim() >= 4  # [batch, heads, N, m]


def _check_hashed(kind) -> None:
    """The fields `Anna` and `StraightThroughAnna` share: ℓ, z, impl, family, seed and rotation."""
    check_hashing(kind.n_tables, kind.n_hashes, kind.impl)
    check_family(kind.family)
    check_seed(kind.seed)
    check_rotation(kind.rotation, kind.family)


def _hashed_weights(kind, q, k, causal: bool) -> torch.Tensor:
    """The matrix an `Anna` or `StraightThroughAnna` applies: ANNA's collision-count weights."""
    heads = _has_heads(q)
    return anna_weights(
        q, k, kind.n_tables, kind.n_hashes, kind.family, kind.seed, causal, None, heads, kind.rotation
    )


@dataclass(frozen=True)
class Softmax:
    """softmax(β·q̂·k̂ᵀ)·v; β = `beta` > 0 is the inverse temperature. `normalize=False` skips the unit
    normalisation of q and k: the transformer's usual scaled dot product with β = 1/√m."""

    beta: float = 1.0
    normalize: bool = True

    def __post_init__(self):
        check_beta(self.beta)
        check_choice("normalize", self.normalize, (True, False))

    def __call__(self, q, k, v, causal: bool = False) -> torch.Tensor:
        return softmax_attention(q, k, v, self.beta, causal, self.normalize)

    def weights(self, q, k, causal: bool = False) -> torch.Tensor:
        return softmax_weights(q, k, self.beta, causal, self.normalize)


@dataclass(frozen=True)
class Anna:
    """ANNA with ℓ = `n_tables` tables of z = `n_hashes` hashes drawn from `seed` (`anna.anna_attention`);
    `impl` is "tables" (Algorithm 1), "linear_memory" (Algorithm 2) or "dense" (the oracle)."""

    n_tables: int
    n_hashes: int
    family: str = "cross_polytope"
    seed: int = 0
    impl: str = "tables"
    rotation: str = "dense"

    def __post_init__(self):
        _check_hashed(self)

    def __call__(self, q, k, v, causal: bool = False) -> torch.Tensor:
        return anna_attention(
            q, k, v, self.n_tables, self.n_hashes, self.family, self.seed, causal, self.impl, _has_heads(q),
            self.rotation,
        )  # fmt: skip

    def weights(self, q, k, causal: bool = False) -> torch.Tensor:
        return _hashed_weights(self, q, k, causal)


@dataclass(frozen=True)
class CollisionKernel:
    """ANNA in expectation: w_ij ∝ p(θ_ij)^z (ℓ → ∞), or with `n_tables=ℓ` each row scaled by the chance
    that some key collides (`anna.collision_kernel_weights`). Differentiable in q and k."""

    n_hashes: int = 1
    family: str = "cross_polytope"
    n_tables: int | None = None

    def __post_init__(self):
        check_count("n_hashes", self.n_hashes)
        check_family(self.family)
        if self.n_tables is not None:
            check_count("n_tables", self.n_tables)

    def __call__(self, q, k, v, causal: bool = False) -> torch.Tensor:
        return collision_kernel_attention(q, k, v, self.n_hashes, self.family, causal, self.n_tables)

    def weights(self, q, k, causal: bool = False) -> torch.Tensor:
        return collision_kernel_weights(q, k, self.n_hashes, self.family, causal, self.n_tables)


@dataclass(frozen=True)
class StraightThroughAnna:
    """ANNA's output with the collision kernel's gradient for q and k (`anna.straight_through_anna`);
    `finite_kernel` takes the kernel for this ℓ. For training: draw a fresh `seed` each step."""

    n_tables: int
    n_hashes: int
    family: str = "cross_polytope"
    seed: int = 0
    finite_kernel: bool = False
    impl: str = "tables"
    rotation: str = "dense"

    def __post_init__(self):
        _check_hashed(self)
        check_choice("finite_kernel", self.finite_kernel, (True, False))

    def __call__(self, q, k, v, causal: bool = False) -> torch.Tensor:
        return straight_through_anna(
            q, k, v, self.n_tables, self.n_hashes, self.family, self.seed, causal, self.impl,
            self.finite_kernel, _has_heads(q), self.rotation,
        )  # fmt: skip

    def weights(self, q, k, causal: bool = False) -> torch.Tensor:
        return _hashed_weights(self, q, k, causal)


@dataclass(frozen=True)
class LowRank:
    """Low-rank (kernelised) attention with φ(x) = elu(x) + 1: rank ≤ m, linear time."""

    def __call__(self, q, k, v, causal: bool = False) -> torch.Tensor:
        return low_rank_attention(q, k, v, causal)

    def weights(self, q, k, causal: bool = False) -> torch.Tensor:
        return low_rank_weights(q, k, causal)


KINDS = (Softmax, Anna, CollisionKernel, StraightThroughAnna, LowRank)
__all__ = [
    "FAMILIES",
    "IMPLS",
    "KINDS",
    "Softmax",
    "Anna",
    "CollisionKernel",
    "StraightThroughAnna",
    "LowRank",
]
