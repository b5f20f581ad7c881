"""Notebook 01's exercises: collision probabilities, a hyperplane hash, tables for a target recall, and the
quality ρ of a family."""

from __future__ import annotations

import math

import torch

from .. import collisions
from .core import Exercise, close_to, equals, require_function, same_output


def _hyperplane_bucket_reference(x: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    bits = (x @ normals > 0).long()  # (N, z): which side of each hyperplane
    return (bits * 2 ** torch.arange(normals.shape[1], device=x.device)).sum(-1)


def _judge_hyperplane_bucket(function) -> bool:
    require_function(function)
    generator = torch.Generator().manual_seed(7)
    x, normals = torch.randn(50, 6, generator=generator), torch.randn(6, 3, generator=generator)
    same_output(
        function(x, normals), _hyperplane_bucket_reference(x, normals), "random x [50, 6] and normals [6, 3]"
    )
    return True


def _smallest_tables(theta: float, n_hashes: int, target: float) -> int:
    p = 1 - theta / math.pi
    return math.ceil(math.log(1 - target) / math.log(1 - p**n_hashes))


def _hyperplane_rho_from_distances(near: float, far: float) -> float:
    p_near, p_far = (1 - 2 * math.asin(dist / 2) / math.pi for dist in (near, far))  # θ = 2·asin(‖x − y‖/2)
    return math.log(1 / p_near) / math.log(1 / p_far)


EXERCISES: dict[str, Exercise] = {
    "lsh_collision_at_60_degrees": Exercise(
        notebook="01",
        prompt="Predict the probability that two unit vectors at 60° share a bucket in at least one of "
        "ℓ = 4 tables of z = 2 hyperplane hashes (within 0.01).",
        hint="One hyperplane separates them with probability θ/π, so p = 1 − θ/π; a table needs all z "
        "hashes to agree (p^z), and some table of ℓ must: 1 − (1 − p^z)^ℓ.",
        judge=close_to(
            collisions.collision_probability(math.pi / 3, "hyperplane", n_hashes=2, n_tables=4), 0.01
        ),
        solution=lambda: 1 - (1 - (1 - 1 / 3) ** 2) ** 4,
        wrong=(None, "0.8", 2 / 3, (2 / 3) ** 2),
    ),
    "lsh_hyperplane_bucket": Exercise(
        notebook="01",
        prompt="Write hyperplane_bucket(x, normals): the bucket of each row of x [N, m] under z hyperplanes "
        "(normals [m, z], column t the normal g_t), read as the z-bit number Σ_{t=0}^{z−1} bit_t·2^t with "
        "bit_t = 1 when ⟨x, g_t⟩ > 0.",
        hint="x @ normals gives (N, z) projections; compare with 0, turn the booleans into 0/1 integers and "
        "weight column t by 2**t before summing over the last dimension.",
        judge=_judge_hyperplane_bucket,
        solution=lambda: _hyperplane_bucket_reference,
        wrong=(
            None,
            lambda x, normals: (x @ normals > 0).long().sum(-1),
            lambda x, normals: (x @ normals).sum(-1),
        ),
    ),
    "lsh_tables_for_recall": Exercise(
        notebook="01",
        prompt="With z = 3 hyperplane hashes per table, find the smallest ℓ for which a pair at 45° "
        "collides in some table with probability at least 0.9.",
        hint="Solve 1 − (1 − p^z)^ℓ ≥ 0.9 for ℓ with p = 1 − 45°/180°: ℓ ≥ ln(0.1) / ln(1 − p^z), "
        "rounded up.",
        judge=equals(_smallest_tables(math.pi / 4, 3, 0.9)),
        solution=lambda: _smallest_tables(math.pi / 4, 3, 0.9),
        wrong=(
            None,
            2.0,
            _smallest_tables(math.pi / 4, 3, 0.9) - 1,
            _smallest_tables(math.pi / 4, 3, 0.9) + 1,
        ),
    ),
    "lsh_cross_polytope_at_right_angle": Exercise(
        notebook="01",
        prompt="Predict the probability that one cross-polytope hash with only D = 8 rotated dimensions "
        "(A ∈ R^{8×16} Gaussian, y = A·x, then the closest of the 16 signed axes ±e_a of R^8) gives two "
        "orthogonal unit vectors in R^16 the same value (within 0.001).",
        hint="Each coordinate of Ax and of Ay is a Gaussian, and for orthogonal x and y the pair "
        "(⟨a, x⟩, ⟨a, y⟩) of one row a is uncorrelated, hence independent: Ax and Ay are independent "
        "N(0, I_D) vectors. What counts is D, the number of signed axes 2D, not the input width m.",
        judge=close_to(1 / (2 * 8), 0.001),
        solution=lambda: 1 / (2 * 8),
        wrong=(None, 1 / (2 * 16), 1 / 8, 0.5, 0),
    ),
    "lsh_hyperplane_rho": Exercise(
        notebook="01",
        prompt="Predict the quality ρ = ln(1/p₁)/ln(1/p₂) of hyperplane hashes at r = 0.5 and c = 2: a near "
        "pair of unit vectors at distance 0.5, a far pair at distance 1 (within 0.005).",
        hint="Turn each distance ‖x − y‖ into an angle first, θ = 2·asin(‖x − y‖/2) (distance 1 is 60°, "
        "not 1 radian); one hyperplane collides with probability p = 1 − θ/π; then ρ = ln(1/p₁) / ln(1/p₂).",
        judge=close_to(collisions.rho(0.5, 2.0, "hyperplane"), 0.005),
        solution=lambda: _hyperplane_rho_from_distances(0.5, 1.0),
        wrong=(
            None,
            0.25,  # 1/c², the cross-polytope's limit at small r, not the hyperplane's ρ
            collisions.rho(0.3, 2.0, "hyperplane"),  # Figure 5's r = 0.3, read off instead of worked out
            math.log(1 / (1 - 0.5 / math.pi)) / math.log(1 / (1 - 1 / math.pi)),  # distances used as angles
            "0.43",
        ),
    ),
}
