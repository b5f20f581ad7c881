"""ANNA's sub-quadratic guarantee with its parameters filled in, and measured.

As reported for the ANNA paper: take an LSH family under which unit vectors at distance ≤ r collide with
probability ≥ p₁ and vectors at distance > c·r with probability ≤ p₂, and let ρ = ln(1/p₁)/ln(1/p₂).
ANNA then takes time O(m·N^{1+3ρ}·log N) and meets the (c, r, ℓ, η)-ANNA definition
(`anna.check_anna_guarantee`) with probability 1 − O(N^{3ρ−1}); with ρ < 1/3 (c > √3 for a family with
the optimal ρ ≈ 1/c²) that is sub-quadratic and almost surely correct.

The paper's parameter choice is not available to us. Ours, consistent with those bounds:

* z = ⌈3·log_{1/p₂} N⌉ hashes per table: a far pair shares a bucket of one table with probability
  p₂^z ≤ N⁻³, so over N² pairs and ℓ tables a far collision happens with probability ≤ ℓ·N²·p₂^z ≤ ℓ/N;
* a near pair shares it with probability p₁^z ≥ p₁·N^{−3ρ} (z overshoots 3·log_{1/p₂} N by less than 1);
* ℓ = ⌈N^{3ρ}⌉ tables (`recall="constant"`): then ℓ/N ≈ N^{3ρ−1}, the reported failure rate, and the time
  is ℓ·z hashes per token, O(m·N^{1+3ρ}·log N). But a near pair then meets its query in ℓ·p₁^z ≥ p₁
  tables on average and is missed by all of them with probability up to (1 − p₁^z)^ℓ ≈ e^{−p₁}, a
  constant. Catching every near pair with high probability needs ℓ = ⌈ln N / p₁^z⌉ ≈ N^{3ρ}·ln N
  (`recall="high"`, a near pair missed with probability ≤ 1/N), one more log factor of time.

`anna_parameters` computes all of this for one family, width, r, c and N; `guarantee_table` for a range
of N; `measure_guarantee` runs ANNA's collision counts at those ℓ and z on planted near neighbours and
checks the definition query by query.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import lsh
from .anna import check_anna_guarantee
from .checks import check_count, check_family, check_seed

RECALLS = ("constant", "high")


@dataclass(frozen=True)
class GuaranteeParameters:
    """ANNA's parameters and predicted cost and failure for N tokens of width m (our reconstruction)."""

    family: str
    width: int  # m
    r: float
    c: float
    n: int  # N
    p1: float  # collision probability of one hash at distance r
    p2: float  # collision probability of one hash at distance c·r
    rho: float
    n_hashes: int  # z
    n_tables: int  # ℓ

    @property
    def near_rate(self) -> float:
        """p₁^z: a near pair shares a bucket of one table."""
        return self.p1**self.n_hashes

    @property
    def far_rate(self) -> float:
        """p₂^z ≤ N⁻³: a pair at distance c·r shares a bucket of one table."""
        return self.p2**self.n_hashes

    @property
    def hashes_per_token(self) -> int:
        """ℓ·z hash evaluations per token (a softmax query instead reads all N keys)."""
        return self.n_tables * self.n_hashes

    @property
    def operations_per_hash(self) -> int:
        """m for a hyperplane, m·D = m² for a cross-polytope hash with a dense rotation."""
        return self.width if self.family == "hyperplane" else self.width**2

    @property
    def operations(self) -> int:
        """Hashing work for all N queries and keys: 2·N·ℓ·z·(operations per hash)."""
        return 2 * self.n * self.hashes_per_token * self.operations_per_hash

    @property
    def softmax_operations(self) -> int:
        """The N²·m multiply-adds of softmax's scores, for comparison."""
        return self.n**2 * self.width

    @property
    def far_failure_bound(self) -> float:
        """P[some far pair collides somewhere] ≤ ℓ·N²·p₂^z ≤ ℓ/N (capped at 1)."""
        return min(1.0, self.n_tables * self.n**2 * self.far_rate)

    @property
    def near_miss(self) -> float:
        """P[a given near pair collides in none of the ℓ tables] = (1 − p₁^z)^ℓ, at distance exactly r."""
        return (1 - self.near_rate) ** self.n_tables

    def query_failure_bound(self, n_far: int, n_near: int) -> float:
        """P[one query violates the definition] ≤ ℓ·(far keys)·p₂^z + (near keys)·(1 − p₁^z)^ℓ."""
        return min(1.0, self.n_tables * n_far * self.far_rate + n_near * self.near_miss)

    @property
    def sub_quadratic(self) -> bool:
        """ρ < 1/3: the cost N^{1+3ρ}·log N grows slower than N²."""
        return self.rho < 1 / 3


def _probability(distance: float, family: str, width: int) -> float:
    return lsh.collision_probability(lsh.distance_to_angle(distance), family, dim=width)


def anna_parameters(
    n: int, width: int, r: float, c: float, family: str = "hyperplane", recall: str = "constant"
) -> GuaranteeParameters:
    """z = ⌈3·log_{1/p₂} N⌉ and ℓ = ⌈N^{3ρ}⌉ (`recall="constant"`) or ⌈ln N / p₁^z⌉ (`recall="high"`),
    with p₁, p₂ from `lsh.collision_probability` (exact for hyperplanes, an estimate for cross-polytope).
    See the module docstring for what each choice guarantees."""
    check_count("n", n, minimum=2)
    check_count("width", width, minimum=2)
    check_family(family)
    if recall not in RECALLS:
        raise ValueError(f"recall: expected one of {RECALLS}, got {recall!r}")
    rho = lsh.rho(r, c, family, dim=width)  # also checks r > 0, c > 1, c·r < 2
    p1, p2 = _probability(r, family, width), _probability(c * r, family, width)
    n_hashes = math.ceil(3 * math.log(n) / math.log(1 / p2) - 1e-9)
    if recall == "constant":
        n_tables = math.ceil(n ** (3 * rho) - 1e-9)
    else:
        n_tables = math.ceil(math.log(n) / p1**n_hashes - 1e-9)
    return GuaranteeParameters(family, width, r, c, n, p1, p2, rho, n_hashes, n_tables)


def guarantee_table(ns, width: int, r: float, c: float, family: str = "hyperplane", recall="constant"):
    """`anna_parameters` for every N in `ns`, as rows for printing."""
    rows = []
    for n in ns:
        p = anna_parameters(n, width, r, c, family, recall)
        rows.append(
            {
                "family": family,
                "m": width,
                "c": c,
                "N": n,
                "rho": p.rho,
                "z": p.n_hashes,
                "l": p.n_tables,
                "hashes per token": p.hashes_per_token,
                "hashes / N": p.hashes_per_token / n,
                "operations / softmax": p.operations / p.softmax_operations,
                "far failure bound": p.far_failure_bound,
                "near miss": p.near_miss,
            }
        )
    return rows


# ---- measured ----------------------------------------------------------------------------------------------


def _max_hashes_per_id(family: str, width: int) -> int:
    """The most concatenated hashes `lsh.LSHTables` accepts (its bucket ids are exact int64 numbers)."""
    values = 2 if family == "hyperplane" else 2 * width
    z = 1
    while values ** (z + 1) <= 2**62:
        z += 1
    return z


def collision_counts(queries, keys, n_tables, n_hashes, family, seed=0, tables_per_pass=64) -> torch.Tensor:
    """c_ij: in how many of ℓ tables of z hashes query i and key j share a bucket, [Q, M].

    A table of z hashes is one `lsh.LSHTables` table; when z is more than its exact int64 bucket ids allow,
    the z hashes are split into parts of at most that many, each an `LSHTables` of its own seed
    (seed, seed + 1, …), and a pair shares the table's bucket when it shares the bucket of every part: the
    same event as agreeing on all z hashes. Without a split this is exactly `anna.collision_counts`."""
    check_count("n_tables", n_tables)
    check_count("n_hashes", n_hashes)
    check_count("tables_per_pass", tables_per_pass)
    width, most = queries.shape[-1], _max_hashes_per_id(family, queries.shape[-1])
    parts = [min(most, n_hashes - start) for start in range(0, n_hashes, most)]
    draws = [
        lsh.LSHTables(width, n_tables, z, family=family, seed=seed + i, device=queries.device)
        for i, z in enumerate(parts)
    ]
    ids = [(t.bucket_ids(queries), t.bucket_ids(keys)) for t in draws]  # per part: (ℓ, Q), (ℓ, M)
    counts = torch.zeros(queries.shape[0], keys.shape[0], dtype=torch.long, device=queries.device)
    for first in range(0, n_tables, tables_per_pass):  # a few tables at a time: (T, Q, M) stays small
        tables = slice(first, first + tables_per_pass)
        same = None
        for ids_q, ids_k in ids:
            agree = ids_q[tables, :, None] == ids_k[tables, None, :]  # (T, Q, M)
            same = agree if same is None else same & agree
        counts += same.sum(dim=0)
    return counts


@dataclass
class MeasuredGuarantee:
    """The (c, r, ℓ, η)-ANNA definition checked query by query at the parameters' ℓ and z."""

    parameters: GuaranteeParameters
    n_queries: int
    fraction_ok: float  # queries meeting both conditions
    predicted_ok: float  # 1 − the mean over queries of `query_failure_bound`
    near_caught: float  # fraction of near pairs that collided in some table
    far_collisions: int  # (query, far key) pairs with a collision

    @property
    def stderr(self) -> float:
        """Binomial standard error of a fraction near `predicted_ok` over n_queries queries."""
        p = min(max(self.predicted_ok, 0.0), 1.0)
        return math.sqrt(p * (1 - p) / self.n_queries)

    @property
    def holds(self) -> bool:
        """The measured fraction is at least the predicted one, up to three standard errors."""
        return self.fraction_ok >= self.predicted_ok - 3 * self.stderr


def measure_guarantee(
    parameters: GuaranteeParameters, n_queries: int = 256, seed: int = 0
) -> MeasuredGuarantee:
    """N random unit keys of width m and `n_queries` queries, each planted just inside distance r of one
    key (`lsh.planted_near_neighbors`); ANNA's weights c_ij / Σ_j c_ij at the parameters' ℓ and z; the
    fraction of queries meeting the definition (`anna.check_anna_guarantee`) against the prediction."""
    check_count("n_queries", n_queries)
    check_seed(seed)
    p = parameters
    angle = 0.999 * lsh.distance_to_angle(p.r)  # just inside r, so float rounding cannot push it out
    keys, queries = lsh.planted_near_neighbors(p.n, n_queries, p.width, angle, seed=seed, device="cpu")
    counts = collision_counts(queries, keys, p.n_tables, p.n_hashes, p.family, seed=seed)
    weights = counts.double() / counts.sum(dim=-1, keepdim=True).clamp(min=1)
    report = check_anna_guarantee(queries.double(), keys.double(), weights, p.r, p.c, p.n_tables)
    distance = torch.cdist(queries.double(), keys.double())
    near, far = distance <= p.r, distance > p.c * p.r
    bounds = [p.query_failure_bound(int(f), int(nr)) for f, nr in zip(far.sum(-1), near.sum(-1), strict=True)]
    return MeasuredGuarantee(
        parameters=p,
        n_queries=n_queries,
        fraction_ok=float(report.queries_ok.double().mean()),
        predicted_ok=1 - sum(bounds) / n_queries,
        near_caught=float((counts[near] > 0).double().mean()) if near.any() else 1.0,
        far_collisions=int((counts[far] > 0).sum()),
    )
