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

Amplification. A table keys each point by z concatenated hash values, b_u(x) = (h_{u,1}(x), …, h_{u,z}(x)),
so a pair shares a bucket of table u with probability p^z (the AND: fewer far collisions). With ℓ
independent tables a pair collides somewhere with probability 1 − (1 − p^z)^ℓ (the OR: near pairs are
not missed). In code z is `n_hashes` and ℓ is `n_tables`; FALCONN calls them k and l, Reformer calls
ℓ `n_hashes` and has z = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .checks import (  # noqa: F401  (FAMILIES and ROTATIONS: public here)
    FAMILIES,
    ROTATIONS,
    check_angles,
    check_count,
    check_family,
    check_finite_floats,
    check_rotation,
)
from .collisions import (  # noqa: F401  (the theory is public here too)
    amplification,
    collision_probability,
    collision_probability_of_cosine,
    distance_to_angle,
    pairs_at_angle,
    rho,
)
from .device import DeviceLike, cpu_generator, memory_limit, resolve_device
from .kernels import COLUMN_BLOCK, chunk_rows, hadamard_codes, signed_axis_columns

_MAX_BUCKETS = 2**62  # bucket ids are int64 mixed-radix numbers; this keeps them exact
HADAMARD_ROUNDS = 3  # sign-and-transform rounds of the pseudo-random rotation (FALCONN uses 2 or 3)


class LSHTables:
    """ℓ = `n_tables` hash tables, each keyed by z = `n_hashes` concatenated hash functions.

    `bucket_ids(x)` maps x of shape [..., N, dim] to ids of shape [n_tables, ..., N]: points i and j share
    a bucket of table u exactly when all z hash values of table u agree. Ids are the z values read as
    one mixed-radix number, in 0 .. n_buckets − 1, with n_buckets = 2^z (hyperplane) or (2·dim)^z
    (cross-polytope).

    The hash functions are drawn once, from a CPU generator seeded with `seed`, table by table, so the
    same arguments give the same functions on every device, and the first u tables of an ℓ-table draw
    are the tables of the u-table draw (adding tables never changes the old ones).

    `LSHTables.per_head(dim, n_heads, ...)` gives every head its own functions: head h uses exactly the
    functions `LSHTables(dim, ..., seed=seed + h)` draws, and `bucket_ids(x)` takes x [..., H, N, dim],
    hashing all heads in one call.

    `rotation` (cross-polytope only) is how x is rotated before the signed arg-max: `"dense"`, a Gaussian
    D × m matrix with D = m (z·m² multiply-adds per table), or `"hadamard"`, FALCONN's pseudo-random
    rotation H·S₃·H·S₂·H·S₁ with random sign diagonals S_k and the Walsh-Hadamard transform H of size D,
    the power of two ≥ m (x zero-padded; 3·D·log₂D additions per hash). Both give nearly the same collision
    probabilities for near pairs (measured in the tests); for orthogonal ones the exact (Hadamard) rotation
    collides less, about half as often at m = 16. The Hadamard one does less arithmetic.
    """

    def __init__(
        self,
        dim: int,
        n_tables: int,
        n_hashes: int,
        family: str = "cross_polytope",
        seed: int = 0,
        device: DeviceLike = None,
        rotation: str = "dense",
        _head_seeds: tuple[int, ...] | None = None,
    ):
        check_count("dim", dim)
        check_count("n_tables", n_tables)
        check_count("n_hashes", n_hashes)
        check_family(family)
        check_rotation(rotation, family)
        self.dim, self.n_tables, self.n_hashes, self.family, self.seed = dim, n_tables, n_hashes, family, seed
        self.rotation = rotation
        self.device = resolve_device(device)
        # Rows per hash function: one hyperplane, or the D axes of the rotation (D = dim for the dense one,
        # the power of two ≥ dim for the Hadamard one); its value is a bit, or one of the 2D signed axes.
        if family == "hyperplane":
            self.out_per_hash = 1
        else:
            self.out_per_hash = dim if rotation == "dense" else 1 << (dim - 1).bit_length()
        self.values_per_hash = 2 if family == "hyperplane" else 2 * self.out_per_hash
        if self.values_per_hash**n_hashes > _MAX_BUCKETS:
            max_z = int(math.log(_MAX_BUCKETS) // math.log(self.values_per_hash))
            raise ValueError(
                f"n_hashes: {n_hashes} concatenated {family} hashes of dim {dim} give "
                f"{self.values_per_hash}^{n_hashes} buckets, more than exact int64 ids allow; "
                f"use n_hashes <= {max_z}"
            )
        self.n_buckets = self.values_per_hash**n_hashes
        seeds = (seed,) if _head_seeds is None else _head_seeds
        self.n_heads = None if _head_seeds is None else len(seeds)
        per_function = HADAMARD_ROUNDS if rotation == "hadamard" else dim  # numbers drawn per row
        needed = 4 * len(seeds) * n_tables * n_hashes * self.out_per_hash * per_function  # float32
        if needed > memory_limit(self.device):
            raise ValueError(
                f"n_tables: {n_tables} tables of {n_hashes} hashes would need {needed} bytes of hash "
                f"functions, more than {self.device} has ({memory_limit(self.device)} bytes)"
            )
        # Drawn table by table, so that table u's functions are the same for every ℓ > u.
        self.projections, self.signs = None, None
        if rotation == "dense":  # [ℓ, z, D, m] Gaussians → (H, m, ℓ·z·D): one block per head
            draws = [
                torch.randn(
                    n_tables, n_hashes, self.out_per_hash, dim, generator=cpu_generator(s, "lsh-tables")
                )
                for s in seeds
            ]
            self.projections = torch.stack([d.reshape(-1, dim).T for d in draws]).contiguous().to(self.device)
        else:  # [ℓ, z, rounds, D] random signs → (H, ℓ·z, rounds, D)
            shape = (n_tables * n_hashes, HADAMARD_ROUNDS, self.out_per_hash)
            draws = [
                torch.randint(0, 2, shape, generator=cpu_generator(s, "lsh-hadamard-signs")) for s in seeds
            ]
            self.signs = (torch.stack(draws) * 2 - 1).float().to(self.device)
        self._radix = (self.values_per_hash ** torch.arange(n_hashes, dtype=torch.int64)).to(self.device)

    @classmethod
    def per_head(
        cls,
        dim,
        n_heads,
        n_tables,
        n_hashes,
        family="cross_polytope",
        seed=0,
        device: DeviceLike = None,
        rotation: str = "dense",
    ) -> LSHTables:
        """Tables for H heads, head h drawn with seed + h: `bucket_ids(x)` takes x [..., H, N, dim]."""
        check_count("n_heads", n_heads)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed: expected an integer, got {seed!r}")
        heads = tuple(seed + h for h in range(n_heads))
        return cls(dim, n_tables, n_hashes, family, seed, device, rotation, _head_seeds=heads)

    def __repr__(self) -> str:
        heads = "" if self.n_heads is None else f", n_heads={self.n_heads}"
        rotation = "" if self.rotation == "dense" else f", rotation={self.rotation!r}"
        return (
            f"LSHTables(dim={self.dim}, n_tables={self.n_tables}, n_hashes={self.n_hashes}, "
            f"family={self.family!r}, seed={self.seed}{heads}{rotation}, device={str(self.device)!r})"
        )

    def _check_points(self, x: torch.Tensor) -> None:
        check_finite_floats("x", x)
        if self.n_heads is None and (x.dim() < 2 or x.shape[-1] != self.dim):
            raise ValueError(f"x: expected shape [..., N, {self.dim}], got {tuple(x.shape)}")
        if self.n_heads is not None and (
            x.dim() < 3 or x.shape[-1] != self.dim or x.shape[-3] != self.n_heads
        ):
            raise ValueError(f"x: expected shape [..., {self.n_heads}, N, {self.dim}], got {tuple(x.shape)}")
        if x.device != self.device:
            raise ValueError(f"x: is on {x.device} but the tables were drawn on {self.device}")

    def hash_values(self, x: torch.Tensor, table: int | None = None) -> torch.Tensor:
        """Hash values: LongTensor [n_tables, ..., N, n_hashes], each in 0 .. values_per_hash−1.

        With `table=u` only table u is hashed (shape [..., N, n_hashes]); its cost and memory do not grow
        with ℓ, which is what the linear-memory ANNA needs.
        """
        self._check_points(x)
        self._check_table(table)
        return self._hash_values(x, table)

    def _check_table(self, table) -> None:
        if table is not None and (
            isinstance(table, bool) or not isinstance(table, int) or not 0 <= table < self.n_tables
        ):
            raise ValueError(f"table: expected an integer in [0, {self.n_tables}), got {table!r}")

    def _hash_values(self, x: torch.Tensor, table: int | None) -> torch.Tensor:
        """`hash_values` without the checks, for callers that have checked x already (ANNA checks q, k)."""
        values, lead = self._values_by_head(x, table)
        return self._arrange(values.movedim(2, -1), lead, table, trailing=1)

    def _values_by_head(self, x: torch.Tensor, table: int | None) -> tuple[torch.Tensor, torch.Size]:
        """Hash values of x heads first, (H, ℓ', z, R) with R = the points of one head, and x's (..., N)."""
        tables = range(self.n_tables) if table is None else range(table, table + 1)
        # Hash values are piecewise constant in x: no gradient flows through them.
        x = x.detach() if self.n_heads is None else x.detach().movedim(-3, 0)  # heads first
        groups = 1 if self.n_heads is None else self.n_heads
        values = self._hash_rows(x.reshape(groups, -1, self.dim), tables)  # (H, ℓ'·z, R)
        lead = x.shape[:-1] if self.n_heads is None else x.shape[1:-1]  # (..., N)
        return values.view(groups, len(tables), self.n_hashes, -1), lead

    def _arrange(self, by_head: torch.Tensor, lead, table: int | None, trailing: int) -> torch.Tensor:
        """(H, ℓ', R, *t) → [ℓ', ..., [H,] N, *t], with `trailing` = len(t) and no ℓ' for one `table`."""
        out = by_head.view(*by_head.shape[:2], *lead, *by_head.shape[3:])  # (H, ℓ', ..., N, *t)
        out = out[0] if self.n_heads is None else out.movedim(0, -2 - trailing)  # heads just before N
        return out[0] if table is not None else out

    def _hash_rows(self, rows: torch.Tensor, tables: range) -> torch.Tensor:
        """Hash values of rows (H, R, m) under the functions of `tables`: LongTensor (H, T, R), T = ℓ·z.

        Hadamard: one compiled pass rotates and takes the arg-max. Dense: the projections come out
        axis-major, (T·D, rows), the layout `signed_axis_columns` reads fastest, in cache-sized chunks.
        """
        n_heads, n_rows = len(rows), rows.shape[1]
        functions = slice(tables.start * self.n_hashes, tables.stop * self.n_hashes)
        n_functions = functions.stop - functions.start
        values = torch.empty(n_heads, n_functions, n_rows, dtype=torch.long, device=rows.device)
        if self.rotation == "hadamard":
            hadamard_codes(rows, self.signs[:, functions], values)
            return values
        # Head by head (a head's rows, rotated, fill the cache budget alone), in passes of a few functions ×
        # many rows: each pass's projections (F·D, rows) stay in cache between the matmul and the arg-max,
        # and the arg-max gets long columns (≥ COLUMN_BLOCK rows) to vectorise.
        per_pass = max(1, chunk_rows(rows.device, self.out_per_hash * COLUMN_BLOCK))
        # One projection buffer for every chunk of every pass (a fresh one would be page-faulted in each
        # time), as large as the largest chunk of a full pass or of the last, narrower one.
        widths = {min(per_pass, n_functions - f) * self.out_per_hash for f in range(0, n_functions, per_pass)}
        buffer = rows.new_empty(max(w * min(chunk_rows(rows.device, w), n_rows) for w in widths))
        for head in range(n_heads):
            for first in range(functions.start, functions.stop, per_pass):
                group = range(first, min(first + per_pass, functions.stop))
                columns = slice(group.start * self.out_per_hash, group.stop * self.out_per_hash)
                projections = self.projections[head, :, columns].to(rows.dtype)  # (m, F·D)
                out = values[head, group.start - functions.start : group.stop - functions.start]  # (F, R)
                self._project_and_hash(rows[head], projections, out, buffer)
        return values

    def _project_and_hash(self, rows, projections, out, buffer) -> None:
        """Hash values of one head's rows (R, m) under projections (m, F·D) into out (F, R), in row chunks
        that keep the projected block (F·D, chunk) in cache; `buffer` holds at least one chunk's block."""
        n_rows, (width, n_functions) = len(rows), (projections.shape[-1], out.shape[0])
        step = chunk_rows(rows.device, width)
        for start in range(0, n_rows, step):
            chunk = rows[start : start + step]  # (c, m)
            y = buffer[: width * len(chunk)].view(width, len(chunk))
            torch.mm(projections.T, chunk.T, out=y)  # (F·D, c)
            if self.family == "hyperplane":
                out[:, start : start + len(chunk)] = y > 0
            else:  # out[:, chunk] is a strided (F, c) view the kernel writes into
                signed_axis_columns(
                    y.view(n_functions, self.dim, len(chunk)), out[:, start : start + len(chunk)]
                )

    def bucket_ids(self, x: torch.Tensor, table: int | None = None) -> torch.Tensor:
        """Bucket of every point in every table: LongTensor [n_tables, ..., N] ([..., N] for one `table`)."""
        self._check_points(x)
        self._check_table(table)
        return self._bucket_ids(x, table)

    def _bucket_ids(self, x: torch.Tensor, table: int | None = None) -> torch.Tensor:
        """`bucket_ids` without the checks (see `_hash_values`). The z values are combined heads first, where
        they lie in memory, and the heads moved into place by one contiguous copy."""
        values, lead = self._values_by_head(x, table)  # (H, ℓ', z, R)
        ids = values[:, :, 0] if self.n_hashes == 1 else (values * self._radix[:, None]).sum(dim=2)
        return self._arrange(ids, lead, table, trailing=0).contiguous()


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
    rotation: str = "dense",
):
    """Measured P[collide in at least one of ℓ tables] for unit vectors at each angle in `theta`.

    Each of `n_draws` independent draws of ℓ tables (seeds seed·n_draws + r) hashes its own `n_pairs`
    fresh random pairs per angle, so the n_draws·n_pairs indicators are i.i.d. with mean exactly
    `collision_probability(θ, family, n_hashes, n_tables, dim)`. (One fixed draw would not do: its
    z hyperplanes are not exactly orthogonal, so its own rate differs from p^z.)

    Returns (rate, stderr): float64 tensors over θ, stderr the binomial standard error.
    """
    angles, _ = check_angles(theta)
    angles = angles.reshape(-1)
    check_count("n_draws", n_draws)
    x, y = pairs_at_angle(angles, n_draws * n_pairs, dim, seed=seed, device=device)
    x, y = x.unflatten(1, (n_draws, n_pairs)), y.unflatten(1, (n_draws, n_pairs))  # (T, R, P, m)
    hits = torch.zeros(len(angles), dtype=torch.float64)
    for r in range(n_draws):  # a loop over independent hash draws, not over points
        tables = LSHTables(dim, n_tables, n_hashes, family, seed * n_draws + r, device, rotation)
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
