"""ANNA: Algorithms 1 and 2 against the oracles, the collision kernel, the guarantee."""

import math

import pytest
import torch

from fastattn_lib import anna as A
from fastattn_lib.attention import softmax_attention
from fastattn_lib.checks import IMPLS
from fastattn_lib.lsh import LSHTables


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    ("family", "n_hashes"),
    [
        ("cross_polytope", 1),
        ("cross_polytope", 2),
        ("cross_polytope", 3),
        ("hyperplane", 1),
        ("hyperplane", 40),
    ],
)
def test_three_implementations_agree(family, n_hashes, causal):
    q, k, v = rand(2, 3, 40, 6, seed=4), rand(2, 3, 40, 6, seed=5), rand(2, 3, 40, 5, seed=6)
    args = (q, k, v, 4, n_hashes, family, 7, causal)
    dense = A.anna_attention(*args, impl="dense")
    assert torch.allclose(A.anna_attention(*args, impl="tables"), dense, atol=1e-5)
    assert torch.allclose(A.anna_attention(*args, impl="linear_memory"), dense, atol=1e-5)


def test_dense_oracle_matches_the_definition_loop():
    q, k, v = rand(25, 5, seed=1), rand(25, 5, seed=2), rand(25, 3, seed=3)
    for causal in (False, True):
        expected = loop_anna(q, k, v, 3, 1, "cross_polytope", 2, causal)
        actual = A.anna_attention(q, k, v, 3, 1, "cross_polytope", seed=2, causal=causal, impl="dense")
        assert torch.allclose(actual, expected, atol=1e-5)


def test_different_numbers_of_queries_and_keys():
    q, k, v = rand(3, 10, 6, seed=1), rand(3, 70, 6, seed=2), rand(3, 70, 4, seed=3)
    dense = A.anna_attention(q, k, v, 5, 1, impl="dense")
    assert dense.shape == (3, 10, 4)
    assert torch.allclose(A.anna_attention(q, k, v, 5, 1, impl="tables"), dense, atol=1e-5)
    assert torch.allclose(A.anna_attention(q, k, v, 5, 1, impl="linear_memory"), dense, atol=1e-5)


def test_bucket_ids_too_large_to_combine_are_renumbered():
    # (2·64)^8 = 2^56 buckets per table, times 8 tables · 64 batch entries, overflows int64: renumbering path.
    q, k, v = rand(64, 12, 64, seed=1), rand(64, 12, 64, seed=2), rand(64, 12, 3, seed=3)
    q, k = torch.cat([q, q[:, :4]], 1), torch.cat([k, q[:, :4]], 1)  # some exact matches collide for sure
    v = torch.cat([v, v[:, :4]], 1)
    for causal in (False, True):
        dense = A.anna_attention(q, k, v, 8, 8, causal=causal, impl="dense")
        assert dense.abs().sum() > 0
        assert torch.allclose(A.anna_attention(q, k, v, 8, 8, causal=causal), dense, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_weights_are_a_distribution_or_zero(causal):
    weights = A.anna_weights(rand(30, 8, seed=1), rand(30, 8, seed=2), 3, 2, causal=causal)
    sums = weights.sum(-1)
    assert (weights >= 0).all()
    assert torch.all(((sums - 1).abs() < 1e-6) | (sums == 0))
    assert (sums == 0).any() and (sums > 0).any()  # both cases occur, so the check is not vacuous
    if causal:
        assert (weights.triu(1) == 0).all()


@pytest.mark.parametrize("impl", IMPLS)
def test_rows_without_collision_are_zero(impl):
    q, k, v = rand(50, 16, seed=1), rand(50, 16, seed=2), rand(50, 4, seed=3) + 5
    counts = A.collision_counts(q, k, 2, 3)
    out = A.anna_attention(q, k, v, 2, 3, impl=impl)
    lonely = counts.sum(-1) == 0
    assert lonely.any() and (out[lonely] == 0).all() and (out[~lonely] != 0).all()


@pytest.mark.parametrize("impl", IMPLS)
def test_one_layer_global_average(impl):
    """Global aggregation: every query and key equal ⇒ one ANNA layer outputs the mean of all values."""
    direction = rand(16, seed=1)
    q = k = direction.expand(100, 16).contiguous()
    v = rand(100, 5, seed=2)
    out = A.anna_attention(q, k, v, 3, 2, impl=impl)
    assert torch.allclose(out, v.mean(0).expand(100, 5), atol=1e-5)
    causal = A.anna_attention(q, k, v, 3, 2, causal=True, impl=impl)
    prefix_means = v.cumsum(0) / torch.arange(1, 101).unsqueeze(1)
    assert torch.allclose(causal, prefix_means, atol=1e-5)


def test_exact_match_encodings_give_exact_match_attention():
    """Exact-match attention: with one-hot labels, ANNA averages exactly the keys with the query's label."""
    labels_q, labels_k = torch.randint(0, 8, (60,)), torch.randint(0, 8, (60,))
    q, k = torch.eye(8)[labels_q], torch.eye(8)[labels_k]
    v = rand(60, 3, seed=3)
    out = A.anna_attention(q, k, v, n_tables=2, n_hashes=6)
    for i in range(60):
        match = labels_k == labels_q[i]
        expected = v[match].mean(0) if match.any() else torch.zeros(3)
        assert torch.allclose(out[i], expected, atol=1e-5)


def test_identical_keys_get_equal_weight():
    k = rand(20, 8, seed=1)
    k[7] = k[3]
    weights = A.anna_weights(rand(20, 8, seed=2), k, 6, 1)
    assert torch.equal(weights[:, 3], weights[:, 7])


def test_many_tables_approach_the_collision_kernel():
    """Collision kernel: as ℓ → ∞ at fixed z, w_ij → p(θ_ij)^z / Σ_j' p(θ_ij')^z (hyperplane: p = 1 − θ/π)."""
    q, k = rand(4, 8, seed=1), rand(12, 8, seed=2)
    angle = torch.arccos(
        torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(k, dim=-1).T
    )
    kernel = (1 - angle / math.pi) ** 2
    expected = kernel / kernel.sum(-1, keepdim=True)
    weights = A.anna_weights(q, k, 4000, 2, "hyperplane", seed=3)
    assert torch.allclose(weights, expected, atol=0.02)
    assert torch.allclose(A.collision_kernel_weights(q, k, 2, "hyperplane"), expected, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_collision_kernel_is_the_many_table_limit_for_cross_polytope(causal):
    q, k = rand(6, 8, seed=4), rand(6, 8, seed=5)
    weights = A.anna_weights(q, k, 4000, 1, "cross_polytope", seed=6, causal=causal)
    kernel = A.collision_kernel_weights(q, k, 1, "cross_polytope", causal=causal)
    assert torch.allclose(weights, kernel, atol=0.03)
    v = rand(6, 3, seed=7)
    assert torch.allclose(A.collision_kernel_attention(q, k, v, causal=causal), kernel @ v, atol=1e-6)


def test_finite_table_kernel_models_the_rows_where_nothing_collides():
    """With few tables and far keys many rows are empty (output 0); the ℓ-aware kernel expects that."""
    q, k = rand(8, 16, seed=11), rand(6, 16, seed=12)
    n_tables, n_hashes, draws = 2, 6, 400
    mean_weights = (
        sum(A.anna_weights(q, k, n_tables, n_hashes, "hyperplane", seed=s) for s in range(draws)) / draws
    )
    limit = A.collision_kernel_weights(q, k, n_hashes, "hyperplane")
    finite = A.collision_kernel_weights(q, k, n_hashes, "hyperplane", n_tables=n_tables)
    assert torch.allclose(limit.sum(-1), torch.ones(8))
    assert (mean_weights.sum(-1) < 0.5).any()  # empty rows are common here
    assert (finite - mean_weights).abs().sum() < 0.2 * (limit - mean_weights).abs().sum()
    assert torch.allclose(finite.sum(-1), mean_weights.sum(-1), atol=0.1)
    assert torch.allclose(
        A.collision_kernel_weights(q, k, 2, n_tables=100_000), A.collision_kernel_weights(q, k, 2)
    )


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("impl", IMPLS)
def test_anna_is_differentiable_in_v_only(impl, causal):
    """Fine-tuning a distilled model trains the value path through fixed collision counts (the bucket
    sums then go through torch's differentiable scatter, not the compiled one)."""
    q, k = rand(2, 9, 4, seed=1).requires_grad_(), rand(2, 9, 4, seed=2).requires_grad_()
    v = rand(2, 9, 3, seed=3).requires_grad_()
    A.anna_attention(q, k, v, 3, 1, seed=1, causal=causal, impl=impl).square().sum().backward()
    weights = A.anna_weights(q.detach(), k.detach(), 3, 1, seed=1, causal=causal)
    expected = 2 * weights.transpose(-1, -2) @ (weights @ v.detach())
    assert torch.allclose(v.grad, expected, atol=1e-5)
    assert q.grad is None or not q.grad.any()


@pytest.mark.parametrize("finite_kernel", [False, True])
def test_straight_through_anna_is_anna_forward_and_the_kernel_backward(finite_kernel):
    q, k = rand(2, 7, 4, seed=1).requires_grad_(), rand(2, 7, 4, seed=2).requires_grad_()
    v = rand(2, 7, 3, seed=3).requires_grad_()
    out = A.straight_through_anna(q, k, v, 4, 1, seed=2, causal=True, finite_kernel=finite_kernel)
    assert torch.equal(out, A.anna_attention(q, k, v, 4, 1, seed=2, causal=True))
    out.square().sum().backward()
    grads = q.grad.clone(), k.grad.clone(), v.grad.clone()
    q.grad = k.grad = v.grad = None
    fixed = out.detach()
    surrogate = (A.anna_attention(q, k, v, 4, 1, seed=2, causal=True) * 2 * fixed).sum()
    kernel = A.collision_kernel_weights(q, k, 1, causal=True, n_tables=4 if finite_kernel else None)
    surrogate = surrogate + (kernel @ v.detach() * 2 * fixed).sum()
    surrogate.backward()
    for actual, expected in zip(grads, (q.grad, k.grad, v.grad), strict=True):
        assert torch.allclose(actual, expected, atol=1e-6)
    assert grads[0].abs().sum() > 0


def test_guarantee_holds_for_exact_matches_and_fails_for_coarse_hashes():
    labels = torch.randint(0, 6, (40,), generator=torch.Generator().manual_seed(0))
    q = k = torch.eye(6)[labels]
    weights = A.anna_weights(q, k, 2, 6)
    report = A.check_anna_guarantee(q, k, weights, r=0.1, c=2.0, n_tables=2)
    assert report.holds and report.near_pairs > 40 and bool(report.queries_ok.all())
    x = rand(200, 16, seed=1)
    coarse = A.anna_weights(x, x, 1, 1, "hyperplane")  # two buckets: far keys collide all the time
    coarse_report = A.check_anna_guarantee(x, x, coarse, r=0.5, c=1.5, n_tables=1)
    assert not coarse_report.holds and coarse_report.far_violations > 0


def test_guarantee_detects_a_starved_near_key():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[1.0, 0.0], [0.999, 0.045], [0.0, 1.0]])
    weights = torch.tensor([[1.0, 0.0, 0.0]])  # key 1 is near but gets nothing
    report = A.check_anna_guarantee(q, k, weights, r=0.1, c=2.0, n_tables=3)
    assert report.near_violations == 1 and report.far_violations == 0 and not report.holds


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"q": rand(10, 5)}, "widths differ"),
        ({"v": rand(9, 4)}, "k, v"),
        ({"q": rand(2, 10, 6)}, "batch dimensions"),
        ({"v": rand(10, 4).double()}, "dtypes differ"),
        ({"k": torch.full((10, 6), float("nan"))}, "NaN"),
        ({"v": torch.full((10, 4), float("inf"))}, "infinite"),
        ({"n_tables": 0}, "n_tables"),
        ({"n_hashes": -1}, "n_hashes"),
        ({"impl": "fast"}, "impl"),
        ({"q": rand(8, 6), "causal": True}, "causal"),
        ({"q": torch.ones(10, 6, dtype=torch.long)}, "floating"),
    ],
)
def test_anna_rejects_bad_input(change, message):
    arguments = {"q": rand(10, 6), "k": rand(10, 6), "v": rand(10, 4), "n_tables": 2, "n_hashes": 1, **change}
    with pytest.raises(ValueError, match=message):
        A.anna_attention(**arguments)


@pytest.mark.gpu
@pytest.mark.parametrize("causal", [False, True])
def test_cuda_agrees_with_cpu(causal):
    q, k, v = rand(2, 4, 2048, 64, seed=1), rand(2, 4, 2048, 64, seed=2), rand(2, 4, 2048, 64, seed=3)
    cpu = A.anna_attention(q, k, v, 8, 1, causal=causal)
    for impl in ("tables", "linear_memory"):
        gpu = A.anna_attention(q.cuda(), k.cuda(), v.cuda(), 8, 1, causal=causal, impl=impl).cpu()
        rows_equal = ((gpu - cpu).abs().amax(-1) < 1e-4).float().mean()
        assert rows_equal > 0.99  # a rounding difference may flip a near-tie hash for a few rows
    soft_gpu = softmax_attention(q.cuda(), k.cuda(), v.cuda(), beta=3.0, causal=causal).cpu()
    assert torch.allclose(soft_gpu, softmax_attention(q, k, v, beta=3.0, causal=causal), atol=1e-4)


@pytest.mark.gpu
def test_linear_memory_peak_is_flat_in_the_number_of_tables():
    q, k, v = (torch.randn(1, 1, 65536, 64, device="cuda") for _ in range(3))
    peaks = {}
    for n_tables in (4, 32):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        A.anna_attention(q, k, v, n_tables, 1, impl="linear_memory")
        torch.cuda.synchronize()
        peaks[n_tables] = torch.cuda.max_memory_allocated() - base
    assert peaks[32] < 1.2 * peaks[4], peaks


def loop_anna(q, k, v, n_tables, n_hashes, family, seed, causal):
    """ANNA by its definition, one query and one key at a time (2-D inputs)."""
    tables = LSHTables(q.shape[-1], n_tables, n_hashes, family, seed=seed, device="cpu")
    q_ids, k_ids = tables.bucket_ids(q), tables.bucket_ids(k)
    out = torch.zeros(q.shape[0], v.shape[1])
    for i in range(q.shape[0]):
        total, weight = torch.zeros(v.shape[1]), 0
        for j in range(k.shape[0]):
            if causal and j > i:
                continue
            c = int((q_ids[:, i] == k_ids[:, j]).sum())
            total += c * v[j]
            weight += c
        out[i] = total / weight if weight else 0
    return out
