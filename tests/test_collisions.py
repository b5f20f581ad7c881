"""Collision probabilities in theory: exact values, the amplification, ρ, the differentiable curve."""

import math

import numpy as np
import pytest
import torch

from fastattn_lib import collisions

ANGLES = torch.tensor(
    [0.0, math.pi / 6, math.pi / 3, math.pi / 2, 2 * math.pi / 3, math.pi], dtype=torch.float64
)


def test_theory_values():
    assert collisions.collision_probability(math.pi / 2) == pytest.approx(0.5)
    assert collisions.collision_probability(math.pi / 3, n_hashes=2, n_tables=3) == pytest.approx(
        1 - (1 - (2 / 3) ** 2) ** 3
    )
    assert collisions.collision_probability(0.0, "cross_polytope", dim=8) == 1.0
    assert collisions.collision_probability(math.pi, "cross_polytope", dim=8) == 0.0
    assert collisions.amplification(0.5, 2, 3) == pytest.approx(1 - 0.75**3)
    assert collisions.rho(0.3, 2) == pytest.approx(0.467, abs=5e-4)
    assert collisions.rho(0.3, 2, "cross_polytope", dim=64) < collisions.rho(
        0.3, 2
    )  # cross-polytope is the better family


def test_pairs_are_at_the_requested_angle():
    x, y = collisions.pairs_at_angle(ANGLES, 10, 7, device="cpu")
    cosine = (x * y).sum(-1).double()
    assert torch.allclose(cosine, ANGLES.cos()[:, None].expand_as(cosine), atol=1e-5)
    assert torch.allclose(x.norm(dim=-1), torch.ones(6, 10)) and torch.allclose(
        y.norm(dim=-1), torch.ones(6, 10)
    )


def test_bad_theory_arguments():
    with pytest.raises(ValueError, match="theta"):
        collisions.collision_probability(4.0)
    with pytest.raises(ValueError, match="theta"):
        collisions.collision_probability(float("nan"))
    with pytest.raises(ValueError, match="dim"):
        collisions.collision_probability(1.0, "cross_polytope")
    with pytest.raises(ValueError, match="n_tables"):
        collisions.collision_probability(1.0, n_tables=0)
    with pytest.raises(ValueError, match="r, c"):
        collisions.rho(0.3, 0.5)


def test_collision_probability_of_cosine_interpolates_linearly_in_the_cosine_between_knots():
    """Against numpy's interpolation on the table, knots as cosines: the segment found arithmetically (the
    angles are evenly spaced) is the one a search would find, at the ends ±1 too."""
    grid, rates = collisions._cross_polytope_table(16)
    inside = torch.rand(5000, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    cos = torch.cat([inside, torch.tensor([-1.0, 1.0, 0.0], dtype=torch.float64), grid.cos()])
    oracle = np.interp(cos.numpy(), grid.cos().flip(0).numpy(), rates.flip(0).numpy())
    p = collisions.collision_probability_of_cosine(cos, "cross_polytope", dim=16)
    assert np.allclose(p.numpy(), oracle, rtol=0, atol=1e-12)


def test_collision_probability_of_cosine_matches_the_tabulated_curve_and_has_gradients():
    angles = torch.linspace(0, math.pi, 61, dtype=torch.float64)  # the tabulation grid
    for family in ("hyperplane", "cross_polytope"):
        tabulated = collisions.collision_probability(angles, family, dim=16)
        cos = angles.cos().requires_grad_()
        p = collisions.collision_probability_of_cosine(cos, family, dim=16)
        assert torch.allclose(p, tabulated, atol=1e-6)
        p.sum().backward()
        assert torch.isfinite(cos.grad).all() and (cos.grad >= 0).all() and cos.grad.sum() > 0
