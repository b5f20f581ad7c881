"""LSH: the vectorised hashing against a loop oracle, and measured collision rates against theory."""

import math

import pytest
import torch

from fastattn_lib import kernels, lsh
from fastattn_lib.device import cpu_generator

ANGLES = torch.tensor(
    [0.0, math.pi / 6, math.pi / 3, math.pi / 2, 2 * math.pi / 3, math.pi], dtype=torch.float64
)


def loop_oracle_bucket_ids(x, n_tables, n_hashes, family, seed):
    """Bucket ids computed one table, one hash, one point at a time, from the documented draw order."""
    dim = x.shape[-1]
    generator = cpu_generator(seed, "lsh-tables")
    rows = 1 if family == "hyperplane" else dim
    draws = torch.randn(n_tables, n_hashes, rows, dim, generator=generator)
    base = 2 if family == "hyperplane" else 2 * dim
    ids = torch.zeros(n_tables, x.shape[0], dtype=torch.long)
    for u in range(n_tables):
        for i in range(x.shape[0]):
            bucket = 0
            for h in range(n_hashes):
                y = draws[u, h] @ x[i]
                if family == "hyperplane":
                    value = int(y[0] > 0)
                else:
                    axis = int(y.abs().argmax())
                    value = axis + (dim if y[axis] < 0 else 0)
                bucket += value * base**h
            ids[u, i] = bucket
    return ids


@pytest.mark.parametrize("family", lsh.FAMILIES)
@pytest.mark.parametrize("n_hashes", [1, 3])
def test_bucket_ids_match_the_loop_oracle(family, n_hashes):
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(1))
    tables = lsh.LSHTables(5, 4, n_hashes, family, seed=11, device="cpu")
    assert torch.equal(tables.bucket_ids(x), loop_oracle_bucket_ids(x, 4, n_hashes, family, seed=11))


@pytest.mark.parametrize("family", lsh.FAMILIES)
def test_chunked_hashing_matches_the_loop_oracle(family, monkeypatch):
    """Rows are hashed in cache-sized chunks; with tiny chunks (the last one partial) nothing changes."""
    monkeypatch.setitem(
        kernels.CHUNK_FLOATS, "cpu", 3 * 2 * 6 * 7
    )  # 7 rows of ℓ·z·D = 2·3·6 (cross-polytope)
    x = torch.randn(45, 6, generator=torch.Generator().manual_seed(2))
    tables = lsh.LSHTables(6, 2, 3, family, seed=5, device="cpu")
    assert torch.equal(tables.bucket_ids(x), loop_oracle_bucket_ids(x, 2, 3, family, seed=5))


@pytest.mark.parametrize("family", lsh.FAMILIES)
def test_shapes_ranges_and_batch_dimensions(family):
    tables = lsh.LSHTables(8, 3, 2, family, device="cpu")
    x = torch.randn(2, 4, 10, 8)
    ids = tables.bucket_ids(x)
    assert ids.shape == (3, 2, 4, 10) and ids.dtype == torch.long
    assert ids.min() >= 0 and ids.max() < tables.n_buckets
    assert torch.equal(ids[:, 1, 2], tables.bucket_ids(x[1, 2]))


@pytest.mark.parametrize("family", lsh.FAMILIES)
def test_same_bucket_exactly_when_all_z_values_agree(family):
    tables = lsh.LSHTables(3, 5, 3, family, seed=2, device="cpu")
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(3))
    values, ids = tables.hash_values(x), tables.bucket_ids(x)  # (ℓ, N, z), (ℓ, N)
    same_values = (values[:, :, None, :] == values[:, None, :, :]).all(-1)
    same_bucket = ids[:, :, None] == ids[:, None, :]
    assert torch.equal(same_values, same_bucket)
    assert same_bucket.float().mean() > 0.01  # the check is not vacuous: collisions do happen


@pytest.mark.parametrize("family", lsh.FAMILIES)
def test_seeded_nested_and_scale_invariant(family):
    x = torch.randn(50, 16)
    eight = lsh.LSHTables(16, 8, 2, family, seed=5, device="cpu").bucket_ids(x)
    assert torch.equal(eight, lsh.LSHTables(16, 8, 2, family, seed=5, device="cpu").bucket_ids(x))
    assert not torch.equal(eight, lsh.LSHTables(16, 8, 2, family, seed=6, device="cpu").bucket_ids(x))
    assert torch.equal(eight[:3], lsh.LSHTables(16, 3, 2, family, seed=5, device="cpu").bucket_ids(x))
    assert torch.equal(eight, lsh.LSHTables(16, 8, 2, family, seed=5, device="cpu").bucket_ids(3.5 * x))


@pytest.mark.parametrize("family", lsh.FAMILIES)
def test_identical_vectors_always_collide_and_antipodal_never(family):
    tables = lsh.LSHTables(32, 20, 4, family, seed=0, device="cpu")
    x = torch.randn(100, 32)
    assert torch.equal(tables.bucket_ids(x), tables.bucket_ids(x.clone()))
    assert (tables.bucket_ids(x) != tables.bucket_ids(-x)).all()


@pytest.mark.parametrize("n_hashes", [1, 2, 3])
def test_hyperplane_rate_within_three_sigma_of_theory_over_many_seeds(n_hashes):
    rate, stderr = lsh.empirical_collision_rate(
        ANGLES, dim=24, n_hashes=n_hashes, family="hyperplane", n_draws=400, n_pairs=25, seed=n_hashes
    )
    theory = (1 - ANGLES / math.pi) ** n_hashes
    assert torch.all((rate - theory).abs() <= 3 * stderr + 1e-12), (rate, theory, stderr)


@pytest.mark.parametrize("dim", [4, 16, 64])
def test_cross_polytope_rate_at_right_angle_is_one_over_2dim(dim):
    rate, stderr = lsh.empirical_collision_rate(
        [math.pi / 2], dim=dim, family="cross_polytope", n_draws=200, n_pairs=100, seed=dim
    )
    assert abs(rate.item() - 1 / (2 * dim)) <= 3 * stderr.item(), (rate, 1 / (2 * dim))
    assert lsh.collision_probability(math.pi / 2, "cross_polytope", dim=dim) == pytest.approx(
        1 / (2 * dim), abs=0.01
    )


@pytest.mark.parametrize("family", lsh.FAMILIES)
def test_rates_fall_with_angle(family):
    rate, stderr = lsh.empirical_collision_rate(
        ANGLES, dim=16, family=family, n_draws=100, n_pairs=40, seed=9
    )
    assert rate[0] == 1.0 and rate[-1] == 0.0
    assert torch.all(rate[1:] < rate[:-1] + 1e-12)
    theory = lsh.collision_probability(ANGLES, family, dim=16)
    assert torch.all(theory[1:] <= theory[:-1])


def test_cross_polytope_amplified_theory_matches_measurement():
    n_tables, n_hashes = 3, 2
    rate, stderr = lsh.empirical_collision_rate(
        ANGLES, 16, n_tables, n_hashes, "cross_polytope", n_draws=200, n_pairs=20, seed=4
    )
    theory = lsh.collision_probability(ANGLES, "cross_polytope", n_hashes, n_tables, dim=16)
    assert torch.all((rate - theory).abs() <= 3 * stderr + 0.015), (rate, theory)


def test_near_neighbor_search_matches_brute_force():
    tables = lsh.LSHTables(6, 4, 1, "cross_polytope", seed=3, device="cpu")
    points, queries = lsh.planted_near_neighbors(60, 12, 6, math.pi / 5, seed=1, device="cpu")
    result = lsh.near_neighbor_search(tables, points, queries, math.pi / 4)
    ids_p, ids_q = tables.bucket_ids(points), tables.bucket_ids(queries)
    for u in range(1, 5):
        found = examined = n_near = 0
        for qi in range(12):
            for pj in range(60):
                candidate = any(ids_q[t, qi] == ids_p[t, pj] for t in range(u))
                near = torch.dot(queries[qi], points[pj]).item() >= math.cos(math.pi / 4) - 1e-6
                found += candidate and near
                examined += candidate
                n_near += near
        assert result.recall[u - 1].item() == pytest.approx(found / n_near)
        assert result.examined[u - 1].item() == pytest.approx(examined / (12 * 60))
        assert result.precision[u - 1].item() == pytest.approx(found / max(examined, 1))


def test_planted_queries_sit_at_the_angle():
    points, queries = lsh.planted_near_neighbors(100, 20, 16, 0.4, seed=0, device="cpu")
    best = (queries @ points.T).max(dim=1).values
    assert torch.allclose(best, torch.full((20,), math.cos(0.4)), atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_tables": 0}, "n_tables"),
        ({"n_hashes": 0}, "n_hashes"),
        ({"n_tables": 2.0}, "n_tables"),
        ({"family": "minhash"}, "family"),
        ({"device": "gpu"}, "device"),
        ({"n_hashes": 20, "dim": 64}, "n_hashes"),
        ({"dim": 0}, "dim"),
    ],
)
def test_bad_construction_arguments_name_the_argument(kwargs, message):
    arguments = {
        "dim": 8,
        "n_tables": 2,
        "n_hashes": 1,
        "family": "cross_polytope",
        "device": "cpu",
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        lsh.LSHTables(**arguments)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.randn(5, 7), "shape"),
        (torch.randn(8), "shape"),
        (torch.tensor([[float("nan")] * 8]), "NaN"),
        (torch.tensor([[float("inf")] * 8]), "infinite"),
        (torch.ones(3, 8, dtype=torch.long), "floating"),
        ([[0.0] * 8], "torch.Tensor"),
    ],
)
def test_bad_points_are_rejected(x, message):
    with pytest.raises(ValueError, match=message):
        lsh.LSHTables(8, 2, 1, device="cpu").bucket_ids(x)


@pytest.mark.gpu
@pytest.mark.parametrize("family", lsh.FAMILIES)
def test_cuda_draws_the_same_functions_and_buckets(family):
    x = torch.randn(4096, 64)
    cpu = lsh.LSHTables(64, 8, 2, family, seed=1, device="cpu")
    gpu = lsh.LSHTables(64, 8, 2, family, seed=1, device="cuda")
    assert torch.equal(cpu.projections, gpu.projections.cpu())
    agree = (cpu.bucket_ids(x) == gpu.bucket_ids(x.cuda()).cpu()).float().mean()
    assert agree > 0.999  # float rounding may only flip near-ties


@pytest.mark.parametrize("family", lsh.FAMILIES)
def test_one_table_at_a_time_gives_the_same_buckets(family):
    tables = lsh.LSHTables(12, 5, 2, family, seed=4, device="cpu")
    x = torch.randn(3, 30, 12)
    assert torch.equal(torch.stack([tables.bucket_ids(x, table=u) for u in range(5)]), tables.bucket_ids(x))
    with pytest.raises(ValueError, match="table"):
        tables.bucket_ids(x, table=5)


@pytest.mark.parametrize("family", lsh.FAMILIES)
def test_per_head_tables_hash_head_h_with_seed_plus_h(family):
    x = torch.randn(2, 3, 40, 8, generator=torch.Generator().manual_seed(3))  # (B, H, N, m)
    tables = lsh.LSHTables.per_head(8, 3, n_tables=4, n_hashes=2, family=family, seed=5, device="cpu")
    ids = tables.bucket_ids(x)  # (ℓ, B, H, N)
    for h in range(3):
        alone = lsh.LSHTables(8, 4, 2, family, seed=5 + h, device="cpu")
        assert torch.equal(ids[:, :, h], alone.bucket_ids(x[:, h]))
        assert torch.equal(tables.bucket_ids(x, table=2)[:, h], alone.bucket_ids(x[:, h], table=2))
    with pytest.raises(ValueError, match="x: expected shape"):
        tables.bucket_ids(x[:, :2])


def test_hadamard_tables_are_reproducible_per_head_and_per_table():
    x = torch.randn(2, 3, 50, 20, generator=torch.Generator().manual_seed(4))  # (B, H, N, m), D = 32
    tables = lsh.LSHTables.per_head(20, 3, 4, 2, seed=6, device="cpu", rotation="hadamard")
    assert tables.values_per_hash == 64 and tables.n_buckets == 64**2
    ids = tables.bucket_ids(x)
    for h in range(3):
        alone = lsh.LSHTables(20, 4, 2, seed=6 + h, device="cpu", rotation="hadamard")
        assert torch.equal(ids[:, :, h], alone.bucket_ids(x[:, h]))
        assert torch.equal(alone.bucket_ids(x[:, h], table=3), ids[3, :, h])
    fewer = lsh.LSHTables(20, 2, 2, seed=6, device="cpu", rotation="hadamard")
    assert torch.equal(fewer.bucket_ids(x[:, 0]), ids[:2, :, 0])  # adding tables keeps the old ones
    with pytest.raises(ValueError, match="rotation"):
        lsh.LSHTables(20, 2, 2, family="hyperplane", rotation="hadamard")


def test_hadamard_rotation_collides_like_a_random_rotation():
    """Near pairs collide as often as with the dense Gaussian rotation (within sampling error); orthogonal
    pairs less often than the Gaussian's exact 1/(2D), because H·S₃·H·S₂·H·S₁ is an exact rotation and keeps
    them orthogonal, while Ax and Ay for a Gaussian A are independent."""
    near = torch.tensor([0.3, 0.6])
    dense, dense_se = lsh.empirical_collision_rate(near, 32, family="cross_polytope", n_draws=200, n_pairs=50)
    hadamard, hadamard_se = lsh.empirical_collision_rate(
        near, 32, family="cross_polytope", n_draws=200, n_pairs=50, rotation="hadamard"
    )
    assert ((hadamard - dense).abs() < 4 * (dense_se**2 + hadamard_se**2).sqrt() + 0.01).all()
    orthogonal, se = lsh.empirical_collision_rate(
        [math.pi / 2], 32, family="cross_polytope", n_draws=200, n_pairs=50, rotation="hadamard"
    )
    assert orthogonal[0] + 4 * se[0] < 1 / 64
