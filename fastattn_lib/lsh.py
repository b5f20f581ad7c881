"""Locality-sensitive hashing for unit vectors (angular distance).

An LSH family is a random hash function h for which close vectors collide more often than far ones.
For two unit vectors at angle θ (Euclidean distance τ = 2·sin(θ/2)) we write p(θ) = P[h(x) = h(y)].

Two families, both invariant to the length of x, so normalising first changes nothing:

* **Hyperplane** (SimHash, Charikar 2002): h(x) = 1[⟨g, x⟩ > 0] with g ~ N(0, I_m).
  A random hyperplane separates x and y with probability θ/π, hence p(θ) = 1 − θ/π exactly.
* **Cross-polytope** (Andoni, Indyk, Laarhoven, Razenshteyn, Schmidt 2015): y = A·x with
  A ∈ R^{D×m} Gaussian (here D = m), and h(x) = the signed coordinate of y with the largest magnitude,
  one of 2D values. For orthogonal x and y, Ax and Ay are independent, so p(90°) = 1/(2D) exactly;
  elsewhere p(θ) has no closed form and `collision_probability` estimates it (see there).

Amplification. A table keys each point by z concatenated hash values, g_u(x) = (h_{u,1}(x), …, h_{u,z}(x)),
so a pair shares a bucket of table u with probability p^z (the AND: fewer far collisions). With ℓ
independent tables a pair collides somewhere with probability 1 − (1 − p^z)^ℓ (the OR: near pairs are
not missed). In code z is `n_hashes` and ℓ is `n_tables`; FALCONN calls them k and l, Reformer calls
ℓ `n_hashes` and has z = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from numba import njit, prange

from .checks import check_count, check_finite_floats
from .device import DeviceLike, cpu_generator, match_numba_threads, resolve_device

FAMILIES = ("hyperplane", "cross_polytope")
_MAX_BUCKETS = 2**62  # bucket ids are int64 mixed-radix numbers; this keeps them exact
# Rows are projected and reduced in chunks of about this many floats (2 MiB of float32), which stay in a
# CPU core's cache between the matmul and the arg-max; a GPU prefers few large launches.
_CHUNK_FLOATS = {"cpu": 2**19, "cuda": 2**26}
_COLUMN_BLOCK = 512  # columns per thread in the compiled arg-max: its five work arrays stay in L1


def _chunk_rows(device: torch.device, width: int) -> int:
    """Rows of `width` floats per chunk on `device` (see `_CHUNK_FLOATS`)."""
    return max(1, _CHUNK_FLOATS.get(device.type, _CHUNK_FLOATS["cuda"]) // width)


def _check_family(family) -> None:
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")


def signed_axis_reference(y: torch.Tensor) -> torch.Tensor:
    """The cross-polytope hash of y's direction: the index in 0 .. 2D−1 of the vertex ±e_a closest to
    y/‖y‖, over the last dimension D: a if the largest-magnitude entry y_a is positive, D + a if negative.
    Ties go to the smaller index: +t beats −t, and the first of equal entries wins (probability 0 for
    continuous inputs, but defined). The plain definition, kept as the oracle of `signed_axis`."""
    top, top_axis = y.max(dim=-1)
    bottom, bottom_axis = y.min(dim=-1)
    return torch.where(top >= -bottom, top_axis, bottom_axis + y.shape[-1])


@njit(parallel=True, fastmath=True, cache=True, boundscheck=False)
def _signed_axis_columns(y, out):  # pragma: no cover - compiled by numba; tested through signed_axis
    """The reference's rule down every column of y (T, D, R): out[t, r] = code of the vector y[t, :, r].

    Axis-major, so that each step is one pass over contiguous numbers, which the compiler turns into
    vector instructions (a row of only D numbers it does not): the max and the min over the axes, then
    the winner and its offset (0 for +, D for −; the max on a tie), then the first axis holding the
    winner, found by scanning the axes from last to first. Threads take blocks of columns of one hash
    function each, so that a single function (one table, z = 1) still uses every core.
    """
    n_functions, dim, n_rows = y.shape
    n_blocks = (n_rows + _COLUMN_BLOCK - 1) // _COLUMN_BLOCK
    for job in prange(n_functions * n_blocks):
        t, start = job // n_blocks, (job % n_blocks) * _COLUMN_BLOCK
        stop = min(start + _COLUMN_BLOCK, n_rows)
        top, bottom = y[t, 0, start:stop].copy(), y[t, 0, start:stop].copy()
        for a in range(1, dim):
            column = y[t, a, start:stop]
            for r in range(stop - start):
                value = column[r]
                top[r] = value if value > top[r] else top[r]
                bottom[r] = value if value < bottom[r] else bottom[r]
        target = np.empty_like(top)
        offset = np.empty(stop - start, dtype=np.int64)
        for r in range(stop - start):
            positive = top[r] >= -bottom[r]
            target[r] = top[r] if positive else bottom[r]
            offset[r] = 0 if positive else dim
        first = np.zeros(stop - start, dtype=np.int64)
        for a in range(dim - 1, -1, -1):
            column = y[t, a, start:stop]
            for r in range(stop - start):
                first[r] = a if column[r] == target[r] else first[r]
        for r in range(stop - start):
            out[t, start + r] = first[r] + offset[r]


def signed_axis_columns(y: torch.Tensor, out: torch.Tensor) -> None:
    """Write `signed_axis_reference` of every column y[t, :, r] of y (T, D, R) into out (T, R), exactly.

    The cross-polytope hash is an arg-max over D = m numbers for every token, table and hash: most of
    ANNA's time. torch's arg-max over a short dimension is slow on a CPU (its index is not vectorised),
    so there a compiled kernel does it; on a GPU torch's own reductions are fast and used as they are.
    y must be contiguous, float32 or float64 on a CPU.
    """
    if y.device.type == "cpu":
        match_numba_threads()
        _signed_axis_columns(y.detach().numpy(), out.numpy())
    else:
        out.copy_(signed_axis_reference(y.transpose(1, 2)))


def signed_axis(y: torch.Tensor) -> torch.Tensor:
    """`signed_axis_reference(y)`, exactly, by `signed_axis_columns`: codes of shape y.shape[:-1]."""
    if y.dtype not in (torch.float32, torch.float64):
        y = y.float()  # float16 and bfloat16 widen exactly
    rows = y.detach().reshape(-1, y.shape[-1])
    codes = torch.empty(len(rows), dtype=torch.long, device=y.device)
    block = _chunk_rows(y.device, y.shape[-1])
    for start in range(0, len(rows), block):  # blocks whose transposed copy stays in cache
        columns = rows[start : start + block].T.contiguous().unsqueeze(0)  # (1, D, block)
        signed_axis_columns(columns, codes[start : start + block].unsqueeze(0))
    return codes.view(y.shape[:-1])


class LSHTables:
    """ℓ = `n_tables` hash tables, each keyed by z = `n_hashes` concatenated hash functions.

    The hash functions are drawn once, from a CPU generator seeded with `seed`, table by table, so the
    same arguments give the same functions on every device, and the first u tables of an ℓ-table draw
    are the tables of the u-table draw (adding tables never changes the old ones).

    `bucket_ids(x)` maps x of shape [..., N, dim] to ids of shape [n_tables, ..., N]: points i and j share
    a bucket of table u exactly when all z hash values of table u agree. Ids are the z values read as
    one mixed-radix number, in 0 .. n_buckets − 1, with n_buckets = 2^z (hyperplane) or (2·dim)^z
    (cross-polytope).
    """

    def __init__(
        self,
        dim: int,
        n_tables: int,
        n_hashes: int,
        family: str = "cross_polytope",
        seed: int = 0,
        device: DeviceLike = None,
    ):
        check_count("dim", dim)
        check_count("n_tables", n_tables)
        check_count("n_hashes", n_hashes)
        _check_family(family)
        self.dim, self.n_tables, self.n_hashes, self.family, self.seed = dim, n_tables, n_hashes, family, seed
        self.device = resolve_device(device)
        # Values one hash function can take: a bit, or a signed coordinate of R^dim.
        self.values_per_hash = 2 if family == "hyperplane" else 2 * dim
        if self.values_per_hash**n_hashes > _MAX_BUCKETS:
            max_z = int(math.log(_MAX_BUCKETS) // math.log(self.values_per_hash))
            raise ValueError(
                f"n_hashes: {n_hashes} concatenated {family} hashes of dim {dim} give "
                f"{self.values_per_hash}^{n_hashes} buckets, more than exact int64 ids allow; "
                f"use n_hashes <= {max_z}"
            )
        self.n_buckets = self.values_per_hash**n_hashes
        generator = cpu_generator(seed, "lsh-tables")
        # Projections per hash: one hyperplane, or the D = dim rows of the random rotation A.
        self.out_per_hash = 1 if family == "hyperplane" else dim
        # Drawn as [ℓ, z, D, m] so that table u's functions are the same for every ℓ > u.
        draws = torch.randn(n_tables, n_hashes, self.out_per_hash, dim, generator=generator)
        self.projections = draws.reshape(-1, dim).T.contiguous().to(self.device)  # (m, ℓ·z·D)
        self._radix = (self.values_per_hash ** torch.arange(n_hashes, dtype=torch.int64)).to(self.device)

    def __repr__(self) -> str:
        return (
            f"LSHTables(dim={self.dim}, n_tables={self.n_tables}, n_hashes={self.n_hashes}, "
            f"family={self.family!r}, seed={self.seed}, device={str(self.device)!r})"
        )

    def _check_points(self, x: torch.Tensor) -> None:
        check_finite_floats("x", x)
        if x.dim() < 2 or x.shape[-1] != self.dim:
            raise ValueError(f"x: expected shape [..., N, {self.dim}], got {tuple(x.shape)}")
        if x.device != self.device:
            raise ValueError(f"x: is on {x.device} but the tables were drawn on {self.device}")

    def hash_values(self, x: torch.Tensor, table: int | None = None) -> torch.Tensor:
        """Hash values: LongTensor [n_tables, ..., N, n_hashes], each in 0 .. values_per_hash−1.

        With `table=u` only table u is hashed (shape [..., N, n_hashes]); its cost and memory do not grow
        with ℓ, which is what the linear-memory ANNA needs.
        """
        self._check_points(x)
        n_tables, projections = self.n_tables, self.projections
        if table is not None:
            if isinstance(table, bool) or not isinstance(table, int) or not 0 <= table < self.n_tables:
                raise ValueError(f"table: expected an integer in [0, {self.n_tables}), got {table!r}")
            width = projections.shape[1] // self.n_tables
            n_tables, projections = 1, projections[:, table * width : (table + 1) * width]
        # Hash values are piecewise constant in x: no gradient flows through them.
        rows, projections = x.detach().reshape(-1, self.dim), projections.to(x.dtype)  # (R, m), (m, ℓ·z·D)
        values = self._hash_rows(rows, projections).view(n_tables, self.n_hashes, *x.shape[:-1])
        values = values.movedim(1, -1)  # (ℓ, ..., N, z)
        return values[0] if table is not None else values

    def _hash_rows(self, rows: torch.Tensor, projections: torch.Tensor) -> torch.Tensor:
        """Hash values of rows (R, m) under the given projections (m, T·D): LongTensor (T, R).

        Projections come out axis-major, (T·D, rows), the layout `signed_axis_columns` reads fastest.
        """
        width = projections.shape[1]
        n_functions = width // self.out_per_hash
        values = torch.empty(n_functions, len(rows), dtype=torch.long, device=rows.device)
        chunk_rows = _chunk_rows(rows.device, width)
        # One projection buffer for every chunk: a fresh one would be page-faulted in each time.
        buffer = rows.new_empty(width * min(chunk_rows, len(rows)))
        for start in range(0, len(rows), chunk_rows):
            chunk = rows[start : start + chunk_rows]
            y = torch.mm(projections.T, chunk.T, out=buffer[: width * len(chunk)].view(width, len(chunk)))
            if self.family == "hyperplane":
                values[:, start : start + len(chunk)] = y > 0
            else:
                signed_axis_columns(
                    y.view(n_functions, self.dim, len(chunk)), values[:, start : start + len(chunk)]
                )
        return values

    def bucket_ids(self, x: torch.Tensor, table: int | None = None) -> torch.Tensor:
        """Bucket of every point in every table: LongTensor [n_tables, ..., N] ([..., N] for one `table`)."""
        return (self.hash_values(x, table) * self._radix).sum(dim=-1)


# ----------------------------------------------------------------------------------------------------
# Theory: collision probabilities and the AND-OR amplification
# ----------------------------------------------------------------------------------------------------


def amplification(p, n_hashes: int = 1, n_tables: int = 1):
    """P[collide in at least one of ℓ tables] = 1 − (1 − p^z)^ℓ for a single-hash collision probability p.

    With z hashes per table (AND) and ℓ tables (OR) the curve in p is an S: z pushes it right (far pairs
    drop out), ℓ pushes it left (near pairs are caught). Works on floats, numpy arrays and tensors.
    """
    check_count("n_hashes", n_hashes)
    check_count("n_tables", n_tables)
    return 1 - (1 - p**n_hashes) ** n_tables


def _as_angles(theta) -> tuple[torch.Tensor, bool]:
    scalar = isinstance(theta, (int, float)) and not isinstance(theta, bool)
    angles = torch.as_tensor(theta, dtype=torch.float64).cpu()
    # float32 π rounds up past math.pi; allow that rounding and nothing more
    if not torch.isfinite(angles).all() or (angles < 0).any() or (angles > math.pi + 1e-6).any():
        raise ValueError("theta: expected finite angles in radians within [0, π]")
    return angles.clamp(max=math.pi), scalar


def pairs_at_angle(theta, n_pairs: int, dim: int, seed: int = 0, device: DeviceLike = None):
    """Random unit vectors x and y with angle(x_i, y_i) exactly θ, for each θ in `theta`.

    Returns x, y of shape [len(theta), n_pairs, dim]: x uniform on the sphere, y = cos θ·x + sin θ·w with
    w a uniform unit vector orthogonal to x.
    """
    angles, _ = _as_angles(theta)
    angles = angles.reshape(-1)
    check_count("n_pairs", n_pairs)
    check_count("dim", dim, minimum=2)  # two distinct directions need two dimensions
    generator = cpu_generator(seed, "lsh-pairs")
    x = torch.nn.functional.normalize(torch.randn(len(angles), n_pairs, dim, generator=generator), dim=-1)
    w = torch.randn(len(angles), n_pairs, dim, generator=generator)
    w = torch.nn.functional.normalize(w - (w * x).sum(-1, keepdim=True) * x, dim=-1)
    cos, sin = angles.cos().float()[:, None, None], angles.sin().float()[:, None, None]
    device = resolve_device(device)
    return x.to(device), (cos * x + sin * w).to(device)


@lru_cache(maxsize=32)
def _cross_polytope_table(dim: int, n_angles: int = 61, n_samples: int = 16384, seed: int = 1234):
    """Monte-Carlo p(θ) of one cross-polytope hash in R^dim on a grid of angles, by common random numbers.

    For unit x, y at angle θ and Gaussian A, (Ax, Ay) has the law of (g, cos θ·g + sin θ·g') with g, g'
    independent N(0, I_D). One set of samples (g, g') serves every θ, which makes the curve smooth.
    The standard error of each entry is at most 0.5/√n_samples ≈ 0.004.
    """
    generator = cpu_generator(seed, "cross-polytope-collision-table")
    g = torch.randn(n_samples, dim, generator=generator)
    g_perp = torch.randn(n_samples, dim, generator=generator)

    angles = torch.linspace(0, math.pi, n_angles, dtype=torch.float64)
    code_g = signed_axis(g)
    rates = torch.stack(
        [
            (signed_axis(a.cos().float() * g + a.sin().float() * g_perp) == code_g).double().mean()
            for a in angles
        ]
    )
    return angles, rates


def collision_probability(theta, family: str = "hyperplane", n_hashes: int = 1, n_tables: int = 1, dim=None):
    """Probability that unit vectors at angle θ (radians) share a bucket in at least one of ℓ tables.

    Equals `amplification(p(θ), z, ℓ)` with the single-hash probability p(θ):

    * hyperplane: p(θ) = 1 − θ/π, exact; `dim` is not needed.
    * cross_polytope: an estimate, exact at θ = 0 (p = 1), θ = 90° (p = 1/(2·dim)) and θ = 180° (p = 0)
      up to Monte-Carlo error: p is tabulated on a 3° grid from 16384 Gaussian samples with a fixed seed
      (standard error ≤ 0.004) and linearly interpolated. `dim` is required.

    Returns a float for a scalar θ, otherwise a float64 tensor of θ's shape.
    """
    _check_family(family)
    check_count("n_hashes", n_hashes)
    check_count("n_tables", n_tables)
    angles, scalar = _as_angles(theta)
    if family == "hyperplane":
        p = 1 - angles / math.pi
    else:
        check_count("dim", dim, minimum=2)  # cross-polytope probabilities depend on the dimension
        grid, rates = _cross_polytope_table(dim)
        p = torch.as_tensor(np.interp(angles.numpy(), grid.numpy(), rates.numpy()))
    prob = amplification(p, n_hashes, n_tables)
    return float(prob) if scalar else prob


def collision_probability_of_cosine(
    cos: torch.Tensor, family: str = "cross_polytope", dim=None
) -> torch.Tensor:
    """Single-hash collision probability p as a differentiable function of the cosine between unit vectors.

    The same p(θ) as `collision_probability` (hyperplane exact, cross-polytope the interpolated
    Monte-Carlo table), written in torch on `cos`'s device and dtype so autograd can train through it.
    Linear interpolation in cos θ keeps the slope bounded at cos = ±1, where d arccos / d cos is infinite.
    """
    _check_family(family)
    cos = cos.clamp(-1.0, 1.0)
    if family == "hyperplane":
        # arccos has an infinite slope at ±1: exact values there, gradients only from the interior
        inside = cos.abs() < 1
        angle = torch.where(inside, torch.arccos(torch.where(inside, cos, 0)), torch.arccos(cos.detach()))
        return 1 - angle / math.pi
    check_count("dim", dim, minimum=2)
    grid, rates = _cross_polytope_table(dim)
    grid_cos = grid.cos().flip(0).to(cos)  # increasing, from −1 to 1
    grid_p = rates.flip(0).to(cos)
    right = torch.searchsorted(grid_cos, cos.detach().contiguous()).clamp(1, len(grid_cos) - 1)
    left = right - 1
    share = (cos - grid_cos[left]) / (grid_cos[right] - grid_cos[left])
    return grid_p[left] + share * (grid_p[right] - grid_p[left])


def distance_to_angle(tau):
    """Angle θ between unit vectors at Euclidean distance τ: θ = 2·arcsin(τ/2)."""
    return 2 * math.asin(tau / 2)


def rho(r: float, c: float, family: str = "hyperplane", dim=None) -> float:
    """LSH quality ρ = ln(1/p1) / ln(1/p2), p1 = p(distance r), p2 = p(distance c·r), for unit vectors.

    Smaller is better: ℓ ≈ N^ρ tables find near neighbours (ANNA's bound uses N^{3ρ}). For hyperplanes
    ρ ≈ 1/c for small r; cross-polytope approaches the optimal ≈ 1/c².
    """
    if not (0 < r and c > 1 and c * r < 2):
        raise ValueError(f"r, c: expected r > 0, c > 1 and c·r < 2 (unit vectors), got r={r}, c={c}")
    p1 = collision_probability(distance_to_angle(r), family, dim=dim)
    p2 = collision_probability(distance_to_angle(c * r), family, dim=dim)
    return math.log(1 / p1) / math.log(1 / p2)


# ----------------------------------------------------------------------------------------------------
# Measurement: what the drawn tables actually do
# ----------------------------------------------------------------------------------------------------


def empirical_collision_rate(
    theta,
    dim: int,
    n_tables: int = 1,
    n_hashes: int = 1,
    family: str = "hyperplane",
    n_draws: int = 16,
    n_pairs: int = 64,
    seed: int = 0,
    device: DeviceLike = None,
):
    """Measured P[collide in at least one of ℓ tables] for unit vectors at each angle in `theta`.

    Each of `n_draws` independent draws of ℓ tables (seeds seed·n_draws + r) hashes its own `n_pairs`
    fresh random pairs per angle, so the n_draws·n_pairs indicators are i.i.d. with mean exactly
    `collision_probability(θ, family, n_hashes, n_tables, dim)`. (One fixed draw would not do: its
    z hyperplanes are not exactly orthogonal, so its own rate differs from p^z.)

    Returns (rate, stderr): float64 tensors over θ, stderr the binomial standard error.
    """
    angles, _ = _as_angles(theta)
    angles = angles.reshape(-1)
    check_count("n_draws", n_draws)
    x, y = pairs_at_angle(angles, n_draws * n_pairs, dim, seed=seed, device=device)
    x, y = x.unflatten(1, (n_draws, n_pairs)), y.unflatten(1, (n_draws, n_pairs))  # (T, R, P, m)
    hits = torch.zeros(len(angles), dtype=torch.float64)
    for r in range(n_draws):  # a loop over independent hash draws, not over points
        tables = LSHTables(dim, n_tables, n_hashes, family, seed=seed * n_draws + r, device=device)
        collide = (tables.bucket_ids(x[:, r]) == tables.bucket_ids(y[:, r])).any(dim=0)  # (T, P)
        hits += collide.double().sum(dim=-1).cpu()
    n = n_draws * n_pairs
    rate = hits / n
    return rate, (rate * (1 - rate) / n).sqrt()


def planted_near_neighbors(n_points: int, n_queries: int, dim: int, angle: float, seed: int = 0, device=None):
    """N random unit points, and queries each placed at exactly `angle` from a random one of them.

    Random points in high dimension are nearly orthogonal to each other, so the planted point is usually a
    query's only near neighbour: a clean test bed for recall.
    """
    check_count("n_points", n_points)
    check_count("n_queries", n_queries)
    generator = cpu_generator(seed, "lsh-planted-points")
    points = torch.nn.functional.normalize(torch.randn(n_points, dim, generator=generator), dim=-1)
    planted = points[torch.randint(n_points, (n_queries,), generator=generator)]
    w = torch.randn(n_queries, dim, generator=generator)
    w = torch.nn.functional.normalize(w - (w * planted).sum(-1, keepdim=True) * planted, dim=-1)
    queries = math.cos(angle) * planted + math.sin(angle) * w
    device = resolve_device(device)
    return points.to(device), queries.to(device)


@dataclass
class SearchQuality:
    """Near-neighbour search with the first u tables, for u = 1 .. ℓ (tensors of length ℓ)."""

    n_tables: torch.Tensor  # u
    recall: torch.Tensor  # fraction of true near neighbours that share a bucket with their query
    examined: torch.Tensor  # fraction of all points that share a bucket (the candidates to check)
    precision: torch.Tensor  # fraction of candidates that are true near neighbours


def near_neighbor_search(tables: LSHTables, points: torch.Tensor, queries: torch.Tensor, near_angle: float):
    """Recall, work and precision of LSH candidate search, as a function of how many tables are used.

    A point is a candidate for a query when they share a bucket in at least one of the first u tables;
    it is a true near neighbour when its angle to the query is at most `near_angle`. This evaluation is
    dense (O(ℓ·Q·N)) on purpose: it is the ground truth a fast index is judged by.
    """
    for name, t in (("points", points), ("queries", queries)):
        if t.dim() != 2:
            raise ValueError(f"{name}: expected shape [N, {tables.dim}], got {tuple(t.shape)}")
    ids_q, ids_p = tables.bucket_ids(queries), tables.bucket_ids(points)  # (ℓ, Q), (ℓ, N)
    collide = ids_q[:, :, None] == ids_p[:, None, :]  # (ℓ, Q, N)
    candidate = collide.cummax(dim=0).values  # candidate under the first u tables
    cosine = torch.nn.functional.normalize(queries, dim=-1) @ torch.nn.functional.normalize(points, dim=-1).T
    near = cosine >= math.cos(near_angle) - 1e-6  # (Q, N)
    found = (candidate & near).flatten(1).sum(-1).double()  # (ℓ,)
    examined = candidate.flatten(1).sum(-1).double()
    n_near = max(int(near.sum()), 1)
    return SearchQuality(
        n_tables=torch.arange(1, tables.n_tables + 1),
        recall=(found / n_near).cpu(),
        examined=(examined / candidate[0].numel()).cpu(),
        precision=(found / examined.clamp(min=1)).cpu(),
    )
