"""The compiled CPU kernels, each beside the plain-torch oracle its tests compare it with.

ANNA spends its time in places that torch does slowly on a CPU:

* the cross-polytope hash, an arg-max of |y| over D = m coordinates for every token, table and hash
  (`signed_axis_columns`; oracle `signed_axis_reference`): torch's arg-max over a short last dimension is
  not vectorised, so a numba kernel takes it down columns instead, contiguous rows of coordinates at a
  time, each entry reduced to one integer key;
* Algorithm 1's bucket sums, S[b] += v_j for every key j in bucket b (`scatter_add_rows`; oracle
  `scatter_add_rows_reference`, torch's `index_add_`), which torch runs as a slow generic scatter, and
  each query's reads of its ℓ buckets (`read_bucket_sums`; oracle: torch's `embedding_bag`, after a
  transposed copy of the indices);
  causal, as running sums along the positions (`causal_bucket_sums`; oracle: by sorting);
* the rotation of FALCONN's pseudo-random cross-polytope hash (`hadamard_codes`; oracle: the butterflies
  in torch), and the collision-count matrix c_ij of dense ANNA (`collision_count_matrix`), which torch
  builds as a T-fold boolean tensor.

No kernel has a gradient; callers use them only where none is needed. On a GPU torch's own
reductions are fast and the oracles are what runs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit, prange, types
from numba.extending import overload

from .device import match_numba_threads

# Rows are projected and reduced in chunks of about this many floats (2 MiB of float32), which stay in a
# CPU core's cache between the matmul and the arg-max; a GPU prefers few large launches.
CHUNK_FLOATS = {"cpu": 2**19, "cuda": 2**26}
COLUMN_BLOCK = 512  # columns per thread in the compiled arg-max: its two work arrays stay in L1
HADAMARD_BLOCK = 64  # columns per thread in the compiled Hadamard rotation: a (D, 64) slab stays in L1


def chunk_rows(device: torch.device, width: int) -> int:
    """Rows of `width` floats per chunk on `device` (see `CHUNK_FLOATS`)."""
    return max(1, CHUNK_FLOATS.get(device.type, CHUNK_FLOATS["cuda"]) // width)


# ---- the cross-polytope arg-max --------------------------------------------------------------------------


def signed_axis_reference(y: torch.Tensor) -> torch.Tensor:
    """The cross-polytope hash of y's direction: the index in 0 .. 2D−1 of the vertex ±e_a closest to
    y/‖y‖, over the last dimension D: a if the largest-magnitude entry y_a is positive, D + a if negative.
    Ties go to the smaller index: +t beats −t, and the first of equal entries wins (probability 0 for
    continuous inputs, but defined). The plain definition, kept as the oracle of `signed_axis`."""
    top, top_axis = y.max(dim=-1)
    bottom, bottom_axis = y.min(dim=-1)
    return torch.where(top >= -bottom, top_axis, bottom_axis + y.shape[-1])


def _bits(values):  # pragma: no cover - a stand-in: numba compiles the overload below
    """The bit patterns of a float array, as unsigned integers of the same width (inside numba only)."""
    raise NotImplementedError("_bits runs only inside compiled kernels")


@overload(_bits)
def _bits_of(values):  # pragma: no cover - run by numba while it compiles a kernel
    unsigned = np.uint32 if values.dtype == types.float32 else np.uint64
    return lambda values: values.view(unsigned)


@njit(inline="always")
def _key(bits, value, unsigned):  # pragma: no cover - compiled by numba, inlined into _write_codes
    """An entry's key: its magnitude's bits (the sign bit shifted out), then 1 bit for value > 0."""
    return unsigned(bits << unsigned(1)) | unsigned(value > 0)


@njit(inline="always")
def _later_wins(key, axis, later_key, later_axis):  # pragma: no cover - compiled by numba, inlined
    """Of two (key, axis) candidates, the later axis only when its key is strictly larger: first wins ties."""
    return (later_key, later_axis) if later_key > key else (key, axis)


@njit(fastmath=True, cache=True, boundscheck=False)
def _write_codes(rows, start, width, out):  # pragma: no cover - compiled by numba; tested through signed_axis
    """The reference's rule for `width` columns of rows (D, R) from `start`: out[r] = the code of the column
    rows[:, start + r].

    The rule as one number per entry y: its key is the bit pattern of |y| shifted left by one, plus 1 when
    y > 0 (the bits of non-negative floats are ordered like the floats), so a larger magnitude has a larger
    key and, at equal magnitude, + beats −. The code is the first axis with the largest key, plus D when
    that entry is negative (a zero column gets code 0, as in the reference). Rows are taken four at a time:
    their keys are reduced in registers, and only then merged into the running best of each column, so the
    running best is loaded and stored once per four axes. Each row is a contiguous slice, which the compiler
    turns into vector instructions (a column of only D numbers it would not); rows must be C-contiguous.
    """
    dim = rows.shape[0]
    bits = _bits(rows)
    unsigned = bits.dtype.type
    best = np.zeros(width, dtype=bits.dtype)
    axis = np.zeros(width, dtype=np.int32)
    cols = slice(start, start + width)
    quads = dim - dim % 4
    for a in range(0, quads, 4):
        y0, y1, y2, y3 = rows[a, cols], rows[a + 1, cols], rows[a + 2, cols], rows[a + 3, cols]
        b0, b1, b2, b3 = bits[a, cols], bits[a + 1, cols], bits[a + 2, cols], bits[a + 3, cols]
        a0 = np.int32(a)
        for r in range(width):
            k0, k1 = _key(b0[r], y0[r], unsigned), _key(b1[r], y1[r], unsigned)
            k2, k3 = _key(b2[r], y2[r], unsigned), _key(b3[r], y3[r], unsigned)
            k01, a01 = _later_wins(k0, a0, k1, a0 + 1)
            k23, a23 = _later_wins(k2, a0 + 2, k3, a0 + 3)
            key, winner = _later_wins(k01, a01, k23, a23)
            best[r], axis[r] = _later_wins(best[r], axis[r], key, winner)
    for a in range(quads, dim):
        y, b = rows[a, cols], bits[a, cols]
        for r in range(width):
            best[r], axis[r] = _later_wins(best[r], axis[r], _key(b[r], y[r], unsigned), np.int32(a))
    for r in range(width):
        negative = best[r] != 0 and (best[r] & unsigned(1)) == 0
        out[r] = axis[r] + np.int32(dim) if negative else axis[r]


@njit(parallel=True, cache=True, boundscheck=False)
def _signed_axis_columns(y, out):  # pragma: no cover - compiled by numba; tested through signed_axis
    """`_write_codes` for every hash function t of y (T, D, R): out[t, r] = code of y[t, :, r]. Threads take
    blocks of columns of one function each, so that a single function (one table, z = 1) uses every core."""
    n_functions, _, n_rows = y.shape
    n_blocks = (n_rows + COLUMN_BLOCK - 1) // COLUMN_BLOCK
    for job in prange(n_functions * n_blocks):
        t, start = job // n_blocks, (job % n_blocks) * COLUMN_BLOCK
        width = min(COLUMN_BLOCK, n_rows - start)
        _write_codes(y[t], start, width, out[t, start : start + width])


def signed_axis_columns(y: torch.Tensor, out: torch.Tensor) -> None:
    """Write `signed_axis_reference` of every column y[t, :, r] of y (T, D, R) into out (T, R), exactly.

    y must be contiguous, float32 or float64 on a CPU; on a GPU the oracle runs.
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
    block = chunk_rows(y.device, y.shape[-1])
    for start in range(0, len(rows), block):  # blocks whose transposed copy stays in cache
        columns = rows[start : start + block].T.contiguous().unsqueeze(0)  # (1, D, block)
        signed_axis_columns(columns, codes[start : start + block].unsqueeze(0))
    return codes.view(y.shape[:-1])


# ---- the structured (Hadamard) rotation -------------------------------------------------------------------


def hadamard_codes_reference(x_rows: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Cross-polytope codes after the pseudo-random rotation y = H·S₃·H·S₂·H·S₁·x (FALCONN's construction):
    S_k diagonal random signs, H the (unnormalised) Walsh-Hadamard matrix of size D, a power of two ≥ m,
    with x zero-padded to D. x_rows (G, R, m): G groups (heads) of R points; signs (G, F, rounds, D) of ±1,
    F hash functions per group. Returns the codes (G, F, R): `signed_axis_reference` of each rotated point.

    The transform is written as butterflies (a, b) → (a + b, a − b) for h = 1, 2, 4, …: the same float
    operations in the same order as the compiled kernel, so the two agree exactly.
    """
    groups, n_rows, dim = x_rows.shape
    _, n_functions, rounds, size = signs.shape
    y = x_rows.new_zeros(groups, n_functions, size, n_rows)  # points as columns
    y[:, :, :dim] = x_rows.transpose(1, 2)[:, None]
    for k in range(rounds):
        y = y * signs[:, :, k, :, None]
        h = 1
        while h < size:
            pairs = y.view(groups, n_functions, size // (2 * h), 2, h, n_rows)
            a, b = pairs[:, :, :, 0], pairs[:, :, :, 1]
            y = torch.stack([a + b, a - b], dim=3).view(groups, n_functions, size, n_rows)
            h *= 2
    return signed_axis_reference(y.transpose(-1, -2))


@njit(cache=True, boundscheck=False)
def _butterflies(y):  # pragma: no cover - compiled by numba; tested through hadamard_codes
    """The Walsh-Hadamard transform of every column of y (D, w) in place: stages h = 1, 2, 4, … of
    butterflies (a, b) → (a + b, a − b) between rows a and a + h. Three stages at a time while they fit
    (rows a, a+h, …, a+7h stay in registers through stages h, 2h and 4h), then two, then one: the same
    additions in the same order as one stage at a time, so the result is exact, in fewer passes over y."""
    size, width = y.shape
    h = 1
    while 8 * h <= size:
        for i in range(0, size, 8 * h):
            for a in range(i, i + h):
                r0, r1, r2, r3 = y[a], y[a + h], y[a + 2 * h], y[a + 3 * h]
                r4, r5, r6, r7 = y[a + 4 * h], y[a + 5 * h], y[a + 6 * h], y[a + 7 * h]
                for r in range(width):
                    s0, d0, s2, d2 = r0[r] + r1[r], r0[r] - r1[r], r2[r] + r3[r], r2[r] - r3[r]
                    s4, d4, s6, d6 = r4[r] + r5[r], r4[r] - r5[r], r6[r] + r7[r], r6[r] - r7[r]
                    t0, t2, t1, t3 = s0 + s2, s0 - s2, d0 + d2, d0 - d2
                    t4, t6, t5, t7 = s4 + s6, s4 - s6, d4 + d6, d4 - d6
                    r0[r], r4[r], r1[r], r5[r] = t0 + t4, t0 - t4, t1 + t5, t1 - t5
                    r2[r], r6[r], r3[r], r7[r] = t2 + t6, t2 - t6, t3 + t7, t3 - t7
        h *= 8
    if 4 * h <= size:
        for i in range(0, size, 4 * h):
            for a in range(i, i + h):
                r0, r1, r2, r3 = y[a], y[a + h], y[a + 2 * h], y[a + 3 * h]
                for r in range(width):
                    s0, d0, s2, d2 = r0[r] + r1[r], r0[r] - r1[r], r2[r] + r3[r], r2[r] - r3[r]
                    r0[r], r1[r], r2[r], r3[r] = s0 + s2, d0 + d2, s0 - s2, d0 - d2
        h *= 4
    if 2 * h <= size:
        for i in range(0, size, 2 * h):
            for a in range(i, i + h):
                left, right = y[a], y[a + h]
                for r in range(width):
                    left[r], right[r] = left[r] + right[r], left[r] - right[r]


@njit(parallel=True, cache=True, boundscheck=False)
def _hadamard_codes(x_rows, signs, out):  # pragma: no cover - compiled by numba; tested vs the reference
    """`hadamard_codes_reference` by blocks of points: each thread takes a block of HADAMARD_BLOCK points,
    turns it into columns once (a (D, block) slab, zero-padded, in L1), and hashes it under every function
    in turn, rotating a copy of the slab in place and taking its codes: the points are read from memory
    once, and neither their transpose nor the rotated vectors are ever written there."""
    groups, n_rows, dim = x_rows.shape
    _, n_functions, rounds, size = signs.shape
    n_blocks = (n_rows + HADAMARD_BLOCK - 1) // HADAMARD_BLOCK
    for job in prange(groups * n_blocks):
        g, start = job // n_blocks, (job % n_blocks) * HADAMARD_BLOCK
        width = min(HADAMARD_BLOCK, n_rows - start)
        points = np.zeros((size, width), dtype=x_rows.dtype)  # rows ≥ m stay 0: the padding
        block = x_rows[g, start : start + width]
        for a in range(dim):
            column = points[a]
            for r in range(width):
                column[r] = block[r, a]
        y = np.empty((size, width), dtype=x_rows.dtype)
        for t in range(n_functions):
            for a in range(size):  # round 1's signs, applied while copying the block
                sign, source, row = signs[g, t, 0, a], points[a], y[a]
                for r in range(width):
                    row[r] = source[r] * sign
            _butterflies(y)
            for k in range(1, rounds):
                for a in range(size):
                    sign, row = signs[g, t, k, a], y[a]
                    for r in range(width):
                        row[r] *= sign
                _butterflies(y)
            _write_codes(y, 0, width, out[g, t, start : start + width])


def hadamard_codes(x_rows: torch.Tensor, signs: torch.Tensor, out: torch.Tensor) -> None:
    """Write `hadamard_codes_reference(x_rows, signs)` into out (G, F, R), exactly: compiled on a CPU for
    float32/64 (rotation and arg-max in one pass), the reference elsewhere."""
    signs = signs.to(x_rows.dtype)
    if x_rows.device.type == "cpu" and x_rows.dtype in (torch.float32, torch.float64):
        match_numba_threads()
        _hadamard_codes(x_rows.detach().contiguous().numpy(), signs.contiguous().numpy(), out.numpy())
    else:
        out.copy_(hadamard_codes_reference(x_rows, signs))


# ---- the collision counts c_ij (dense ANNA) ---------------------------------------------------------------


def collision_count_matrix_reference(query_ids: torch.Tensor, key_ids: torch.Tensor) -> torch.Tensor:
    """c[b, i, j] = #{tables u : query_ids[u, b, i] = key_ids[u, b, j]} for ids (T, B, N) and (T, B, M):
    every pair compared in every table at once. The oracle of `collision_count_matrix`."""
    return (query_ids[..., :, None] == key_ids[..., None, :]).sum(dim=0)


@njit(parallel=True, cache=True, boundscheck=False)
def _collision_count_matrix(query_ids, key_ids, counts):  # pragma: no cover - compiled by numba
    """counts[b, i, j] += [query_ids[u, b, i] = key_ids[u, b, j]] table by table, one batch entry per thread;
    the inner loop runs along a row of keys, which vectorises."""
    n_tables, batch, n_queries = query_ids.shape
    for b in prange(batch):
        for u in range(n_tables):
            keys = key_ids[u, b]
            for i in range(n_queries):
                target, row = query_ids[u, b, i], counts[b, i]
                for j in range(len(keys)):
                    row[j] += keys[j] == target


def collision_count_matrix(query_ids: torch.Tensor, key_ids: torch.Tensor) -> torch.Tensor:
    """`collision_count_matrix_reference`, exactly: compiled on a CPU (the reference's T-fold boolean tensor
    is most of the time of a training step through dense ANNA), the reference elsewhere. (B, N, M) int64."""
    if query_ids.device.type != "cpu":
        return collision_count_matrix_reference(query_ids, key_ids)
    counts = torch.zeros(query_ids.shape[1], query_ids.shape[2], key_ids.shape[2], dtype=torch.long)
    match_numba_threads()
    _collision_count_matrix(query_ids.contiguous().numpy(), key_ids.contiguous().numpy(), counts.numpy())
    return counts


# ---- Algorithm 1's bucket sums ---------------------------------------------------------------------------


@njit(parallel=True, cache=True, boundscheck=False)
def _scatter_add_rows(
    index, values, sums
):  # pragma: no cover - compiled by numba; tested via scatter_add_rows
    """sums[index[u, j]] += values[j] for every table u and key j, one table per thread.

    Tables own disjoint ranges of `sums` (ANNA numbers buckets per table): no two threads write one row.
    """
    n_tables, n_keys = index.shape
    for u in prange(n_tables):
        for j in range(n_keys):
            row = index[u, j]
            for c in range(values.shape[1]):
                sums[row, c] += values[j, c]


def scatter_add_rows_reference(index: torch.Tensor, values: torch.Tensor, sums: torch.Tensor) -> None:
    """sums[index[u, j]] += values[j] for every row u of index (T, K) and key j: one `index_add_` per
    table (which spares a T-fold copy of the values). Differentiable; the oracle of `scatter_add_rows`."""
    for u in range(index.shape[0]):
        sums.index_add_(0, index[u], values)


def scatter_add_rows(index: torch.Tensor, values: torch.Tensor, sums: torch.Tensor) -> None:
    """`scatter_add_rows_reference`, compiled on a CPU for float32/64 when no gradient is being recorded.

    Each table u must own its own rows of `sums` (the caller's bucket numbering guarantees it)."""
    compiled = values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64)
    if compiled and not (values.requires_grad and torch.is_grad_enabled()):
        match_numba_threads()
        _scatter_add_rows(index.numpy(), values.contiguous().numpy(), sums.numpy())
    else:
        scatter_add_rows_reference(index, values, sums)


@njit(parallel=True, cache=True, boundscheck=False)
def _read_bucket_sums(
    query_index, sums, counts, num, den
):  # pragma: no cover - compiled; tested vs reference
    """num[b, i] = Σ_t sums[query_index[t, b, i]] and den[b, i] = Σ_t counts[…], tables added in order.
    Threads take blocks of COLUMN_BLOCK queries; each query's ℓ rows of d_v numbers are added a row at a
    time, which vectorises, into its own output row (written by the first table, so nothing is zeroed)."""
    n_tables, batch, n = query_index.shape
    n_blocks = (n + COLUMN_BLOCK - 1) // COLUMN_BLOCK
    for job in prange(batch * n_blocks):
        b, start = job // n_blocks, (job % n_blocks) * COLUMN_BLOCK
        for i in range(start, min(start + COLUMN_BLOCK, n)):
            total, bucket = num[b, i], query_index[0, b, i]
            total[:] = sums[bucket]
            count = counts[bucket]
            for t in range(1, n_tables):
                bucket = query_index[t, b, i]
                read = sums[bucket]
                for c in range(len(total)):
                    total[c] += read[c]
                count += counts[bucket]
            den[b, i] = count


def read_bucket_sums_reference(query_index: torch.Tensor, sums: torch.Tensor, counts: torch.Tensor):
    """Each query adds up the sum S and count C of its bucket in every table: query_index (T, B, N),
    sums (size, d_v), counts (size,) → num (B, N, d_v), den (B, N). One fused gather-and-sum
    (`embedding_bag`); differentiable in `sums`; the oracle of `read_bucket_sums`."""
    n_tables, batch, _ = query_index.shape
    reads = query_index.permute(1, 2, 0).reshape(-1, n_tables)  # (B·N, ℓ): the buckets each query reads
    num = F.embedding_bag(reads, sums, mode="sum").view(batch, -1, sums.shape[-1])
    return num, counts[query_index].sum(dim=0)


def read_bucket_sums(query_index: torch.Tensor, sums: torch.Tensor, counts: torch.Tensor):
    """`read_bucket_sums_reference`, by one compiled pass over the queries on a CPU (float32/64, no
    gradient), which reads the indices where they lie instead of transposing them first."""
    compiled = sums.device.type == "cpu" and sums.dtype in (torch.float32, torch.float64)
    if not compiled or (sums.requires_grad and torch.is_grad_enabled()):
        return read_bucket_sums_reference(query_index, sums, counts)
    n_tables, batch, n = query_index.shape
    num, den = sums.new_empty(batch, n, sums.shape[-1]), torch.empty(batch, n, dtype=torch.long)
    match_numba_threads()
    _read_bucket_sums(
        query_index.contiguous().numpy(), sums.numpy(), counts.numpy(), num.numpy(), den.numpy()
    )
    return num, den


# ---- causal ANNA: running bucket sums ------------------------------------------------------------------


@njit(parallel=True, cache=True, boundscheck=False)
def _causal_bucket_sums(key_index, query_index, values, sums, num, counts, den):  # pragma: no cover
    """Walk the positions in order, adding key i to its bucket before query i reads its own bucket.

    key_index, query_index (T, B, N); values (B, N, d_v); sums (size, d_v) and counts (size,) start at 0 and
    every (table, batch) owns its own rows of them; num (B, N, d_v) and den (B, N) receive the reads (the
    first table writes them, so they need no zeroing). One thread per batch entry (head): whole rows of d_v
    numbers are added at a time, which vectorises, and each entry adds its tables in the same order, so the
    result does not depend on the thread count.
    """
    n_tables, batch, n = key_index.shape
    d_v = values.shape[2]
    for b in prange(batch):
        for t in range(n_tables):
            for i in range(n):
                key, query = key_index[t, b, i], query_index[t, b, i]
                bucket, value = sums[key], values[b, i]
                for c in range(d_v):
                    bucket[c] += value[c]
                read, total = sums[query], num[b, i]
                if t == 0:  # num and den are written by the first table, not zeroed beforehand
                    total[:] = read
                else:
                    for c in range(d_v):
                        total[c] += read[c]
                counts[key] += 1
                den[b, i] = counts[query] if t == 0 else den[b, i] + counts[query]


def causal_bucket_sums_reference(key_index, query_index, values, size: int):
    """Causal Algorithm 1 by sorting: num[b, i] = Σ_t Σ_{j ≤ i, key j in query i's bucket of table t} v_j and
    den[b, i] the number of those keys. Keys are sorted by (bucket, position), prefix sums taken in float64
    (they are differenced), and each query reads its bucket's prefix up to its own position. Differentiable
    in `values` and device-agnostic: the oracle of `causal_bucket_sums`, and what runs with a gradient or
    on a GPU."""
    n_tables, batch, n = key_index.shape
    d_v = values.shape[-1]
    positions = torch.arange(n, device=values.device)
    sorted_key, order = (key_index * n + positions).flatten().sort()
    source = (torch.arange(batch, device=values.device).view(1, batch, 1) * n + positions).expand_as(
        key_index
    )
    sorted_values = values.reshape(-1, d_v)[source.flatten()[order]].double()
    prefix = torch.cat([sorted_values.new_zeros(1, d_v), sorted_values.cumsum(dim=0)])  # (T·B·N + 1, d_v)
    first = torch.searchsorted(sorted_key, (query_index * n).flatten())
    last = torch.searchsorted(sorted_key, (query_index * n + positions).flatten(), right=True)
    num = (prefix[last] - prefix[first]).to(values.dtype).view(n_tables, batch, n, d_v)
    return num.sum(dim=0), (last - first).view(n_tables, batch, n).sum(dim=0)


def causal_bucket_sums(key_index, query_index, values, size: int):
    """`causal_bucket_sums_reference`, by one compiled pass over the positions on a CPU (float32/64, no
    gradient): O(ℓ·B·N·d_v) with no sort. Returns (num (B, N, d_v), den (B, N))."""
    compiled = values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64)
    if not compiled or (values.requires_grad and torch.is_grad_enabled()):
        return causal_bucket_sums_reference(key_index, query_index, values, size)
    batch, n, d_v = values.shape
    sums, counts = values.new_zeros(size, d_v), torch.zeros(size, dtype=torch.long)
    num, den = values.new_empty(batch, n, d_v), torch.empty(batch, n, dtype=torch.long)
    match_numba_threads()
    _causal_bucket_sums(
        key_index.contiguous().numpy(),
        query_index.contiguous().numpy(),
        values.detach().contiguous().numpy(),
        sums.numpy(),
        num.numpy(),
        counts.numpy(),
        den.numpy(),
    )
    return num, den
