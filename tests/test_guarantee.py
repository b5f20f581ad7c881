"""ANNA's guarantee with its parameters: values by hand for hyperplanes, and the measurement."""

import math

import pytest
import torch

from fastattn_lib import anna, guarantee, lsh


def test_hyperplane_parameters_by_hand():
    n, r, c = 2**12, 0.3, 3
    p1 = 1 - 2 * math.asin(r / 2) / math.pi  # hyperplane: p(θ) = 1 − θ/π, θ = 2·asin(τ/2)
    p2 = 1 - 2 * math.asin(c * r / 2) / math.pi
    rho = math.log(1 / p1) / math.log(1 / p2)
    z = math.ceil(3 * math.log(n) / math.log(1 / p2))
    params = guarantee.anna_parameters(n, 16, r, c, "hyperplane")
    assert params.p1 == pytest.approx(p1, rel=1e-12) and params.p2 == pytest.approx(p2, rel=1e-12)
    assert params.rho == pytest.approx(rho, rel=1e-12)
    assert params.n_hashes == z == 71
    assert params.n_tables == math.ceil(n ** (3 * rho)) == 1250
    assert params.far_rate <= n**-3 < p2 ** (z - 1)  # z is the smallest count with p2^z ≤ N⁻³
    assert params.near_rate >= p1 * n ** (-3 * rho)
    assert params.hashes_per_token == 1250 * 71
    assert params.operations == 2 * n * 1250 * 71 * 16
    assert params.far_failure_bound == pytest.approx(1250 * n**2 * p2**z)
    assert params.far_failure_bound <= params.n_tables / n
    assert params.near_miss == pytest.approx((1 - p1**z) ** 1250)
    assert params.sub_quadratic
    high = guarantee.anna_parameters(n, 16, r, c, "hyperplane", recall="high")
    assert high.n_hashes == z and high.n_tables == math.ceil(math.log(n) / p1**z)
    assert high.near_miss <= 1 / n


def test_rho_above_a_third_needs_more_tables_than_tokens_and_the_cost_ratio_grows():
    rows = guarantee.guarantee_table([2**10, 2**12, 2**14, 2**16], 64, 0.3, 2, "cross_polytope")
    assert all(row["rho"] > 1 / 3 and row["l"] > row["N"] for row in rows)
    ratios = [row["hashes / N"] for row in rows]
    assert ratios == sorted(ratios)
    falling = [row["hashes / N"] for row in guarantee.guarantee_table([2**10, 2**16], 16, 0.3, 3)]
    assert falling[1] < falling[0]


def test_split_collision_counts_equal_annas_when_one_id_suffices():
    keys, queries = lsh.planted_near_neighbors(50, 20, 16, angle=0.3, seed=1)
    for family in ("hyperplane", "cross_polytope"):
        counts = guarantee.collision_counts(queries, keys, 9, 3, family, seed=4, tables_per_pass=4)
        assert torch.equal(counts, anna.collision_counts(queries, keys, 9, 3, family, seed=4))


def test_split_collision_counts_agree_with_comparing_every_hash_value():
    keys, queries = lsh.planted_near_neighbors(40, 10, 4, angle=0.02, seed=2)
    counts = guarantee.collision_counts(queries, keys, 5, 70, "hyperplane", seed=3)  # 2^70 ids: split
    parts = [lsh.LSHTables(4, 5, z, "hyperplane", seed=3 + i) for i, z in enumerate((62, 8))]
    values_q = torch.cat([t.hash_values(queries) for t in parts], -1)
    values_k = torch.cat([t.hash_values(keys) for t in parts], -1)
    agree = (values_q[:, :, None, :] == values_k[:, None, :, :]).all(-1)  # (ℓ, Q, M): all 14 values agree
    assert torch.equal(counts, agree.sum(0)) and counts.sum() > 0


@pytest.mark.parametrize("recall", ["constant", "high"])
def test_measured_guarantee_meets_the_prediction(recall):
    params = guarantee.anna_parameters(128, 16, 0.3, 3, "hyperplane", recall)
    measured = guarantee.measure_guarantee(params, n_queries=64, seed=0)
    assert measured.holds and measured.far_collisions == 0
    assert measured.fraction_ok == pytest.approx(measured.near_caught)  # the only failures: missed near keys
    if recall == "high":
        assert measured.fraction_ok > 0.9
    else:
        assert measured.predicted_ok < 0.8  # ℓ = N^{3ρ} tables catch a near key with constant probability


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="recall"):
        guarantee.anna_parameters(1024, 16, 0.3, 3, recall="sometimes")
    with pytest.raises(ValueError, match="r, c"):
        guarantee.anna_parameters(1024, 16, 0.3, 0.5)
    with pytest.raises(ValueError, match="n"):
        guarantee.anna_parameters(1, 16, 0.3, 3)
