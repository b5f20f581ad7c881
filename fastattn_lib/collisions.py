"""Collision probabilities: how often two unit vectors at angle θ share an LSH bucket, in theory.

* one hash: p(θ) = 1 − θ/π for a random hyperplane (exact); for a cross-polytope hash with a Gaussian
  rotation, a Monte-Carlo table interpolated in θ (exact at 0°, 90° and 180°);
* z hashes per table and ℓ tables: the AND-OR amplification 1 − (1 − p^z)^ℓ (`amplification`);
* the quality of a family for near radius r and far radius c·r: ρ = ln(1/p₁)/ln(1/p₂) (`rho`);
* `collision_probability_of_cosine`: p as a differentiable function of the cosine, for training through
  ANNA's expectation; `pairs_at_angle`: random unit vectors at exactly θ, for measuring all of this.

`lsh` re-exports these names; they live here so that the hashing itself reads first there.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from .checks import check_angles, check_count, check_family
from .device import DeviceLike, cpu_generator, resolve_device
from .kernels import signed_axis


def amplification(p, n_hashes: int = 1, n_tables: int = 1):
    """P[collide in at least one of ℓ tables] = 1 − (1 − p^z)^ℓ for a single-hash collision probability p.

    With z hashes per table (AND) and ℓ tables (OR) the curve in p is an S: z pushes it right (far pairs
    drop out), ℓ pushes it left (near pairs are caught). Works on floats, numpy arrays and tensors.
    """
    check_count("n_hashes", n_hashes)
    check_count("n_tables", n_tables)
    return 1 - (1 - p**n_hashes) ** n_tables


def pairs_at_angle(theta, n_pairs: int, dim: int, seed: int = 0, device: DeviceLike = None):
    """Random unit vectors x and y with angle(x_i, y_i) exactly θ, for each θ in `theta`.

    Returns x, y of shape [len(theta), n_pairs, dim]: x uniform on the sphere, y = cos θ·x + sin θ·w with
    w a uniform unit vector orthogonal to x.
    """
    angles, _ = check_angles(theta)
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
    check_family(family)
    check_count("n_hashes", n_hashes)
    check_count("n_tables", n_tables)
    angles, scalar = check_angles(theta)
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
    The table's angles are evenly spaced, Δθ apart, so the segment holding cos is ⌊arccos(cos)/Δθ⌋,
    found without a search (this runs on every (query, key) pair of every training step).
    """
    check_family(family)
    cos = cos.clamp(-1.0, 1.0)
    if family == "hyperplane":
        # arccos has an infinite slope at ±1: exact values there, gradients only from the interior
        inside = cos.abs() < 1
        angle = torch.where(inside, torch.arccos(torch.where(inside, cos, 0)), torch.arccos(cos.detach()))
        return 1 - angle / math.pi
    check_count("dim", dim, minimum=2)
    grid, rates = _cross_polytope_table(dim)
    grid_cos, grid_p = grid.cos().to(cos), rates.to(cos)  # cos θ_s decreasing from 1 to −1
    slope = (grid_p[1:] - grid_p[:-1]) / (grid_cos[1:] - grid_cos[:-1])  # dp/dcos on each segment
    step = float(grid[1] - grid[0])
    segment = (torch.arccos(cos.detach()) / step).long().clamp(max=len(grid) - 2)  # θ_s ≤ θ ≤ θ_s+1
    return grid_p[segment] + slope[segment] * (cos - grid_cos[segment])


def distance_to_angle(tau):
    """Angle θ between unit vectors at Euclidean distance τ: θ = 2·arcsin(τ/2)."""
    return 2 * math.asin(tau / 2)


def rho(r: float, c: float, family: str = "hyperplane", dim=None) -> float:
    """LSH quality ρ = ln(1/p1) / ln(1/p2), p1 = p(distance r), p2 = p(distance c·r), for unit vectors.

    Smaller is better: ℓ ≈ N^ρ tables find near neighbours (ANNA's bound uses N^{3ρ}). For hyperplanes
    ρ ≈ 1/c for small r; cross-polytope approaches its limit (1/c²)·(4 − c²r²)/(4 − r²), which is below 1/c²,
    only as the dimension grows (slowly).
    """
    if not (0 < r and c > 1 and c * r < 2):
        raise ValueError(f"r, c: expected r > 0, c > 1 and c·r < 2 (unit vectors), got r={r}, c={c}")
    p1 = collision_probability(distance_to_angle(r), family, dim=dim)
    p2 = collision_probability(distance_to_angle(c * r), family, dim=dim)
    return math.log(1 / p1) / math.log(1 / p2)
