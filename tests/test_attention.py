"""Softmax, ANNA and low-rank attention: fast paths against oracles, the paper's checkable facts."""

import pytest
import torch

from fastattn_lib import attention as A


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("beta", [0.1, 1.0, 10.0])
def test_softmax_attention_matches_the_explicit_formula(causal, beta):
    q, k, v = rand(2, 3, 20, 8, seed=1), rand(2, 3, 20, 8, seed=2), rand(2, 3, 20, 5, seed=3)
    q_hat, k_hat = q / q.norm(dim=-1, keepdim=True), k / k.norm(dim=-1, keepdim=True)
    scores = beta * q_hat @ k_hat.transpose(-1, -2)
    if causal:
        scores = scores.masked_fill(torch.ones(20, 20).triu(1).bool(), float("-inf"))
    expected = scores.softmax(-1) @ v
    assert torch.allclose(A.softmax_attention(q, k, v, beta=beta, causal=causal), expected, atol=1e-5)
    assert torch.allclose(A.softmax_weights(q, k, beta=beta, causal=causal) @ v, expected, atol=1e-5)


def test_softmax_without_normalisation_and_on_2d_inputs():
    q, k, v = rand(7, 4, seed=1), rand(9, 4, seed=2), rand(9, 3, seed=3)
    expected = (q @ k.T * 0.5).softmax(-1) @ v
    assert torch.allclose(A.softmax_attention(q, k, v, beta=0.5, normalize=False), expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------- ANNA


# ---------------------------------------------------------------------------------------------- guarantee


# ---------------------------------------------------------------------------------------------- low rank


@pytest.mark.parametrize("causal", [False, True])
def test_low_rank_attention_matches_its_weight_matrix(causal):
    q, k, v = rand(2, 30, 6, seed=1), rand(2, 30, 6, seed=2), rand(2, 30, 4, seed=3)
    expected = A.low_rank_weights(q, k, causal=causal) @ v
    assert torch.allclose(A.low_rank_attention(q, k, v, causal=causal), expected, atol=1e-5)
    assert torch.linalg.matrix_rank(A.low_rank_weights(q[0], k[0])) <= 6


# ---------------------------------------------------------------------------------------------- module


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("beta", [0, -1.0, float("nan"), float("inf"), True])
def test_softmax_rejects_bad_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        A.softmax_attention(rand(4, 3), rand(4, 3), rand(4, 3), beta=beta)


# ---------------------------------------------------------------------------------------------- GPU


# ---------------------------------------------------------------------------------------------- subsets


@pytest.mark.parametrize("causal", [False, True])
def test_weights_for_a_subset_of_queries_are_rows_of_the_full_matrix(causal):
    q, k = rand(40, 8, seed=1), rand(40, 8, seed=2)
    rows = torch.tensor([0, 5, 17, 39])
    full_soft = A.softmax_weights(q, k, beta=4.0, causal=causal)
    assert torch.allclose(
        A.softmax_weights(q[rows], k, beta=4.0, causal=causal, query_positions=rows),
        full_soft[rows],
        atol=1e-6,
    )
    full_anna = A.anna_weights(q, k, 5, 1, causal=causal)
    assert torch.equal(A.anna_weights(q[rows], k, 5, 1, causal=causal, query_positions=rows), full_anna[rows])
    full = A.check_anna_guarantee(q, k, full_anna, 0.8, 1.5, 5, causal=causal)
    part = A.check_anna_guarantee(
        q[rows], k, full_anna[rows], 0.8, 1.5, 5, causal=causal, query_positions=rows
    )
    assert torch.equal(part.queries_ok, full.queries_ok[rows])
    with pytest.raises(ValueError, match="query_positions"):
        A.softmax_weights(q[rows], k, causal=True, query_positions=rows[:2])


# ---------------------------------------------------------------------------------------------- Reformer


# ---------------------------------------------------------------------------------------------- objects

KIND_EXAMPLES = [
    A.Softmax(beta=2.0),
    A.Softmax(beta=0.5, normalize=False),
    A.Anna(n_tables=4, n_hashes=1, seed=3),
    A.Anna(n_tables=4, n_hashes=2, family="hyperplane", impl="linear_memory"),
    A.Anna(n_tables=3, n_hashes=2, seed=2, rotation="hadamard"),
    A.CollisionKernel(n_hashes=2),
    A.CollisionKernel(n_hashes=1, n_tables=3),
    A.StraightThroughAnna(n_tables=4, n_hashes=1, seed=1, finite_kernel=True),
    A.LowRank(),
]


@pytest.mark.parametrize("kind", KIND_EXAMPLES, ids=repr)
@pytest.mark.parametrize("causal", [False, True])
def test_every_kind_outputs_its_weights_times_v(kind, causal):
    """One interface: out = weights(q, k) @ v, per head on [batch, heads, N, m] inputs."""
    q, k, v = rand(2, 3, 20, 8, seed=1), rand(2, 3, 20, 8, seed=2), rand(2, 3, 20, 5, seed=3)
    weights = kind.weights(q, k, causal=causal)
    assert weights.shape == (2, 3, 20, 20)
    assert torch.allclose(kind(q, k, v, causal=causal), weights @ v, atol=1e-5)


@pytest.mark.parametrize("kind", KIND_EXAMPLES, ids=repr)
def test_every_kind_returns_an_empty_result_for_no_queries(kind):
    q, k, v = rand(2, 0, 8), rand(2, 5, 8), rand(2, 5, 3)
    assert kind(q, k, v).shape == (2, 0, 3)
    assert kind(rand(0, 8), rand(0, 8), rand(0, 3), causal=True).shape == (0, 3)


def test_hashing_kinds_give_each_head_its_own_functions():
    q, k, v = rand(2, 3, 30, 8, seed=4), rand(2, 3, 30, 8, seed=5), rand(2, 3, 30, 4, seed=6)
    for kind in (A.Anna(4, 1, seed=9), A.Anna(4, 1, seed=9, impl="dense")):
        expected = torch.stack(
            [A.anna_attention(q[:, h], k[:, h], v[:, h], 4, 1, seed=9 + h) for h in range(3)], 1
        )
        assert torch.allclose(kind(q, k, v), expected, atol=1e-6)
    # 3-D input has no head axis: one set of functions for every leading index
    shared = A.Anna(4, 1, seed=9)(q[0], k[0], v[0])
    assert torch.allclose(shared, A.anna_attention(q[0], k[0], v[0], 4, 1, seed=9))


def test_kinds_are_immutable_values_with_a_readable_repr():
    kind = A.Anna(n_tables=8, n_hashes=1)
    assert repr(kind) == (
        "Anna(n_tables=8, n_hashes=1, family='cross_polytope', seed=0, impl='tables', rotation='dense')"
    )
    assert kind == A.Anna(8, 1) and hash(kind) == hash(A.Anna(8, 1))
    with pytest.raises(AttributeError):
        kind.n_tables = 4


@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda: A.Softmax(beta=0), "beta"),
        (lambda: A.Softmax(beta=1.0, normalize="yes"), "normalize"),
        (lambda: A.Anna(n_tables=0, n_hashes=1), "n_tables"),
        (lambda: A.Anna(n_tables=2, n_hashes=1.5), "n_hashes"),
        (lambda: A.Anna(n_tables=2, n_hashes=1, family="e8"), "family"),
        (lambda: A.Anna(n_tables=2, n_hashes=1, impl="fast"), "impl"),
        (lambda: A.Anna(n_tables=2, n_hashes=1, seed=-1), "seed"),
        (lambda: A.CollisionKernel(n_hashes=1, n_tables=0), "n_tables"),
        (lambda: A.StraightThroughAnna(2, 1, finite_kernel=None), "finite_kernel"),
        (lambda: A.Anna(2, 1, rotation="fft"), "rotation"),
        (lambda: A.Anna(2, 1, family="hyperplane", rotation="hadamard"), "rotation"),
    ],
)
def test_kinds_validate_their_arguments_when_built(build, argument):
    with pytest.raises(ValueError, match=f"^{argument}"):
        build()


def test_tables_that_would_not_fit_in_memory_are_refused_up_front():
    q = rand(10, 16)
    with pytest.raises(ValueError, match="n_tables.*bytes"):
        A.anna_attention(q, q, q, n_tables=10**9, n_hashes=1)
    big = rand(1, 2**14, 16)
    with pytest.raises(ValueError, match="n_tables.*bytes"):
        A.Anna(n_tables=10**6, n_hashes=1)(big, big, big)


def test_softmax_and_low_rank_refuse_an_empty_key_set():
    for kind in (A.Softmax(), A.LowRank()):
        with pytest.raises(ValueError, match="k: .*at least one key"):
            kind(rand(3, 4), rand(0, 4), rand(0, 2))
