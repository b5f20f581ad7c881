"""The compiled kernels against their plain-torch oracles, exactly."""

import pytest
import torch

from fastattn_lib import anna, kernels


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("dim", [1, 2, 5, 64, 65])
def test_signed_axis_equals_its_reference_on_random_and_tied_inputs(dtype, dim):
    generator = torch.Generator().manual_seed(dim)
    random = torch.randn(3, 200, dim, generator=generator)
    # Small integers: exact ties between +t and −t and between equal entries, and all-zero rows.
    tied = torch.randint(-2, 3, (600, dim), generator=generator).float()
    # Magnitudes equal to the last few bits, which the packed keys cannot tell apart.
    near = torch.randn(600, dim, dtype=torch.float64, generator=generator)
    largest = near.abs().max(dim=-1).values
    near[:, -1] = largest * (1 - 1e-12)
    near[:300, 0] = -largest[:300] * (1 - 2e-7)
    for y in (random.to(dtype), tied.to(dtype), near.to(dtype)):
        expected = kernels.signed_axis_reference(y if dtype in (torch.float32, torch.float64) else y.float())
        assert torch.equal(kernels.signed_axis(y), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dim", [1, 3, 64])
def test_signed_axis_columns_writes_every_function_into_a_strided_output(dtype, dim):
    """The layout ANNA hashes in: T functions × D axes × R rows, written into a slice of a wider table."""
    generator = torch.Generator().manual_seed(dim)
    y = torch.randint(-2, 3, (5, dim, 300), generator=generator).to(dtype)  # ties and all-zero columns
    y[:, :, :150] = torch.randn(5, dim, 150, generator=generator, dtype=dtype)
    table = torch.full((5, 310), -1, dtype=torch.long)
    kernels.signed_axis_columns(y, table[:, 4:304])
    assert torch.equal(table[:, 4:304], kernels.signed_axis_reference(y.transpose(1, 2)))
    assert (table[:, :4] == -1).all() and (table[:, 304:] == -1).all()  # nothing written outside


def test_signed_axis_reference_follows_its_tie_rule():
    y = torch.tensor([[1.0, -2.0, 2.0], [0.0, -3.0, -3.0], [0.0, 0.0, 0.0], [5.0, 5.0, -1.0]])
    assert kernels.signed_axis_reference(y).tolist() == [2, 4, 0, 0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_bucket_sums_equal_torch_scatter(dtype):
    """Algorithm 1's bucket sums: the compiled CPU scatter (no gradient) against torch's index_add_."""
    generator = torch.Generator().manual_seed(4)
    key_ids = torch.randint(0, 6, (3, 2, 50), generator=generator)  # (ℓ, B, M) with few buckets
    query_ids = torch.randint(0, 6, (3, 2, 20), generator=generator)
    v = torch.randn(2, 50, 5, generator=generator, dtype=dtype)
    key_index, _, size = anna.number_buckets(key_ids, query_ids, 6)
    compiled_sums, compiled_counts = anna.build_buckets(key_index, v, size)
    torch_sums, torch_counts = anna.build_buckets(key_index, v.clone().requires_grad_(), size)
    assert torch.allclose(compiled_sums, torch_sums.detach(), atol=1e-6)
    assert torch.equal(compiled_counts, torch_counts)
    assert compiled_sums.abs().sum() > 0 and torch_sums.requires_grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scatter_add_rows_equals_its_reference(dtype):
    generator = torch.Generator().manual_seed(1)
    index = torch.stack([torch.randint(0, 10, (60,), generator=generator) + 10 * u for u in range(3)])
    values = torch.randn(60, 4, generator=generator, dtype=dtype)
    compiled, reference = torch.zeros(30, 4, dtype=dtype), torch.zeros(30, 4, dtype=dtype)
    kernels.scatter_add_rows(index, values, compiled)
    kernels.scatter_add_rows_reference(index, values, reference)
    assert torch.allclose(compiled, reference, atol=1e-6) and reference.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("n_tables", "d_v", "n"), [(1, 1, 50), (3, 16, 700), (8, 37, 1100)])
def test_read_bucket_sums_equal_the_embedding_bag_reference(dtype, n_tables, d_v, n):
    """Every query's ℓ bucket reads, summed: a compiled pass (blocks of 512 queries, so 700 and 1100 end
    in partial blocks) against torch's embedding_bag; with a gradient the reference runs."""
    generator = torch.Generator().manual_seed(n)
    query_index = torch.randint(0, 40, (n_tables, 2, n), generator=generator)
    sums = torch.randn(40, d_v, generator=generator, dtype=dtype)
    counts = torch.randint(0, 9, (40,), generator=generator)
    num, den = kernels.read_bucket_sums(query_index, sums, counts)
    ref_num, ref_den = kernels.read_bucket_sums_reference(query_index, sums, counts)
    assert num.shape == (2, n, d_v) and torch.equal(den, ref_den) and den.sum() > 0
    assert torch.allclose(num, ref_num, atol=1e-5 if dtype == torch.float32 else 1e-12)
    loop = torch.stack([sums[query_index[:, 1, i]].sum(0) for i in range(n)])  # query by query
    assert torch.allclose(num[1], loop, atol=1e-5 if dtype == torch.float32 else 1e-12)
    with torch.enable_grad():
        graded = kernels.read_bucket_sums(query_index, sums.clone().requires_grad_(), counts)
    assert graded[0].requires_grad and torch.allclose(graded[0], ref_num)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d_v", [1, 16, 37])
def test_causal_bucket_sums_equal_the_sorting_reference(dtype, d_v):
    """Causal Algorithm 1: one running pass over the positions against sort-and-prefix-sum."""
    generator = torch.Generator().manual_seed(d_v)
    key_ids = torch.randint(0, 5, (3, 2, 200), generator=generator)  # (ℓ, B, N): few buckets, big ones
    query_ids = torch.randint(0, 5, (3, 2, 200), generator=generator)
    values = torch.randn(2, 200, d_v, generator=generator, dtype=dtype)
    key_index, query_index, size = anna.number_buckets(key_ids, query_ids, 5)
    num, den = kernels.causal_bucket_sums(key_index, query_index, values, size)
    ref_num, ref_den = kernels.causal_bucket_sums_reference(key_index, query_index, values, size)
    assert torch.equal(den, ref_den) and den.sum() > 0
    assert torch.allclose(num, ref_num, atol=1e-4 if dtype == torch.float32 else 1e-10)
    with torch.enable_grad():  # a gradient is asked for: the differentiable reference runs
        graded = kernels.causal_bucket_sums(key_index, query_index, values.clone().requires_grad_(), size)
    assert graded[0].requires_grad and torch.allclose(graded[0], ref_num)


@pytest.mark.parametrize("d_v", [1, 70])
def test_causal_bucket_sums_do_not_depend_on_the_thread_count(d_v):
    """Each head adds its tables and positions in one fixed order whoever runs it, so one thread and two
    give identical sums; num and den are written by the first table, with nothing left from before."""
    generator = torch.Generator().manual_seed(3)
    key_ids, query_ids = torch.randint(0, 7, (2, 4, 2, 300), generator=generator)
    values = torch.randn(2, 300, d_v, generator=generator)
    key_index, query_index, size = anna.number_buckets(key_ids, query_ids, 7)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = kernels.causal_bucket_sums(key_index, query_index, values, size)
        torch.set_num_threads(2)
        two = kernels.causal_bucket_sums(key_index, query_index, values, size)
    finally:
        torch.set_num_threads(before)
    reference = kernels.causal_bucket_sums_reference(key_index, query_index, values, size)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    assert torch.equal(one[1], reference[1]) and one[1].sum() > 0
    assert torch.allclose(one[0], reference[0], atol=1e-4)


@pytest.mark.parametrize(("n_tables", "n_values"), [(1, 2), (7, 3), (96, 50)])
def test_collision_count_matrix_equals_its_reference(n_tables, n_values):
    generator = torch.Generator().manual_seed(n_tables)
    query_ids = torch.randint(0, n_values, (n_tables, 3, 40), generator=generator)  # (T, B, N)
    key_ids = torch.randint(0, n_values, (n_tables, 3, 33), generator=generator)  # (T, B, M)
    counts = kernels.collision_count_matrix(query_ids, key_ids)
    assert counts.shape == (3, 40, 33) and counts.dtype == torch.long and counts.sum() > 0
    assert torch.equal(counts, kernels.collision_count_matrix_reference(query_ids, key_ids))


@pytest.mark.parametrize(("dim", "size"), [(64, 64), (100, 128), (5, 8), (3, 4), (2, 2), (1, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hadamard_codes_equal_the_butterfly_reference(dim, size, dtype):
    """The rotation and arg-max in one compiled pass against torch, exactly (the same butterflies)."""
    generator = torch.Generator().manual_seed(dim)
    x = torch.randn(2, 700, dim, generator=generator, dtype=dtype)  # (G, R, m)
    x[:, :50] = torch.randint(-1, 2, (2, 50, dim), generator=generator).to(dtype)  # ties, zero points
    signs = torch.randint(0, 2, (2, 5, 3, size), generator=generator) * 2 - 1  # (G, F, rounds, D)
    codes = torch.empty(2, 5, 700, dtype=torch.long)
    kernels.hadamard_codes(x, signs, codes)
    assert torch.equal(codes, kernels.hadamard_codes_reference(x, signs.to(dtype)))
    assert codes.min() >= 0 and codes.max() < 2 * size


def test_hadamard_reference_is_a_scaled_rotation():
    """H·S₃·H·S₂·H·S₁ with H the unnormalised Walsh-Hadamard matrix is D^{3/2} times an orthogonal map."""
    size = 16
    signs = torch.randint(0, 2, (1, 1, 3, size), generator=torch.Generator().manual_seed(0)) * 2 - 1
    hadamard = torch.ones(1, 1)
    while len(hadamard) < size:  # Sylvester's construction
        hadamard = torch.cat([torch.cat([hadamard, hadamard], 1), torch.cat([hadamard, -hadamard], 1)])
    rotation = torch.eye(size, dtype=torch.float64)
    for k in range(3):
        rotation = hadamard.double() @ torch.diag(signs[0, 0, k].double()) @ rotation
    assert torch.allclose(rotation @ rotation.T, size**3 * torch.eye(size, dtype=torch.float64))
    x = torch.randn(1, 30, size, dtype=torch.float64)
    expected = kernels.signed_axis_reference(x[0] @ rotation.T)
    assert torch.equal(kernels.hadamard_codes_reference(x, signs.double())[0, 0], expected)
