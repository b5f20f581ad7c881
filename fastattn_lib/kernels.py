"""The compiled CPU kernels, each beside the plain-torch oracle its tests compare it with.

ANNA spends its time in two places that torch does slowly on a CPU:

* the cross-polytope hash, an arg-max of |y| over D = m coordinates for every token, table and hash
  (`signed_axis_columns`; oracle `signed_axis_reference`): torch's arg-max over a short last dimension is
  not vectorised, so a numba kernel takes it down columns instead, one contiguous pass per coordinate;
* Algorithm 1's bucket sums, S[b] += v_j for every key j in bucket b (`scatter_add_rows`; oracle
  `scatter_add_rows_reference`, torch's `index_add_`), which torch runs as a slow generic scatter.

Neither kernel has a gradient; callers use them only where none is needed. On a GPU torch's own
reductions are fast and the oracles are what runs.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from .device import match_numba_threads

# Rows are projected and reduced in chunks of about this many floats (2 MiB of float32), which stay in a
# CPU core's cache between the matmul and the arg-max; a GPU prefers few large launches.
CHUNK_FLOATS = {"cpu": 2**19, "cuda": 2**26}
COLUMN_BLOCK = 512  # columns per thread in the compiled arg-max: its five work arrays stay in L1


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


@njit(fastmath=True, cache=True, boundscheck=False)
def _write_codes(block, out):  # pragma: no cover - compiled by numba; tested through signed_axis
    """The reference's rule down every column of block (D, c): out[r] = code of the vector block[:, r].

    Axis-major, so that each step is one pass over contiguous numbers, which the compiler turns into
    vector instructions (a row of only D numbers it does not): the max and the min over the axes, then
    the winner and its offset (0 for +, D for −; the max on a tie), then the first axis holding the
    winner, found by scanning the axes from last to first.
    """
    dim, width = block.shape
    top, bottom = block[0].copy(), block[0].copy()
    for a in range(1, dim):
        column = block[a]
        for r in range(width):
            value = column[r]
            top[r] = value if value > top[r] else top[r]
            bottom[r] = value if value < bottom[r] else bottom[r]
    target = np.empty_like(top)
    offset = np.empty(width, dtype=np.int64)
    for r in range(width):
        positive = top[r] >= -bottom[r]
        target[r] = top[r] if positive else bottom[r]
        offset[r] = 0 if positive else dim
    first = np.zeros(width, dtype=np.int64)
    for a in range(dim - 1, -1, -1):
        column = block[a]
        for r in range(width):
            first[r] = a if column[r] == target[r] else first[r]
    for r in range(width):
        out[r] = first[r] + offset[r]


@njit(parallel=True, cache=True, boundscheck=False)
def _signed_axis_columns(y, out):  # pragma: no cover - compiled by numba; tested through signed_axis
    """`_write_codes` for every hash function t of y (T, D, R): out[t, r] = code of y[t, :, r]. Threads take
    blocks of columns of one function each, so that a single function (one table, z = 1) uses every core."""
    n_functions, _, n_rows = y.shape
    n_blocks = (n_rows + COLUMN_BLOCK - 1) // COLUMN_BLOCK
    for job in prange(n_functions * n_blocks):
        t, start = job // n_blocks, (job % n_blocks) * COLUMN_BLOCK
        stop = min(start + COLUMN_BLOCK, n_rows)
        _write_codes(y[t, :, start:stop], out[t, start:stop])


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


def hadamard_codes_reference(x_columns: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Cross-polytope codes after the pseudo-random rotation y = H·S₃·H·S₂·H·S₁·x (FALCONN's construction):
    S_k diagonal random signs, H the (unnormalised) Walsh-Hadamard matrix of size D, a power of two ≥ m,
    with x zero-padded to D. x_columns (G, m, R): G groups (heads) of R points as columns; signs
    (G, F, rounds, D) of ±1, F hash functions per group. Returns the codes (G, F, R): `signed_axis_reference`
    of each rotated column.

    The transform is written as butterflies (a, b) → (a + b, a − b) for h = 1, 2, 4, …: the same float
    operations in the same order as the compiled kernel, so the two agree exactly.
    """
    groups, dim, n_rows = x_columns.shape
    _, n_functions, rounds, size = signs.shape
    y = x_columns.new_zeros(groups, n_functions, size, n_rows)
    y[:, :, :dim] = x_columns[:, None]
    for k in range(rounds):
        y = y * signs[:, :, k, :, None]
        h = 1
        while h < size:
            pairs = y.view(groups, n_functions, size // (2 * h), 2, h, n_rows)
            a, b = pairs[:, :, :, 0], pairs[:, :, :, 1]
            y = torch.stack([a + b, a - b], dim=3).view(groups, n_functions, size, n_rows)
            h *= 2
    return signed_axis_reference(y.transpose(-1, -2))


@njit(parallel=True, cache=True, boundscheck=False)
def _hadamard_codes(x_columns, signs, out):  # pragma: no cover - compiled by numba; tested vs the reference
    """`hadamard_codes_reference` by column blocks: each thread rotates a (D, block) slab in place (it stays
    in cache) and takes its codes, so the rotated vectors are never written to memory."""
    groups, dim, n_rows = x_columns.shape
    _, n_functions, rounds, size = signs.shape
    n_blocks = (n_rows + COLUMN_BLOCK - 1) // COLUMN_BLOCK
    for job in prange(groups * n_functions * n_blocks):
        g, rest = job // (n_functions * n_blocks), job % (n_functions * n_blocks)
        t, start = rest // n_blocks, (rest % n_blocks) * COLUMN_BLOCK
        stop = min(start + COLUMN_BLOCK, n_rows)
        width = stop - start
        y = np.zeros((size, width), dtype=x_columns.dtype)
        y[:dim] = x_columns[g, :, start:stop]
        for k in range(rounds):
            for a in range(size):
                sign = signs[g, t, k, a]
                for r in range(width):
                    y[a, r] *= sign
            h = 1
            while h < size:
                for i in range(0, size, 2 * h):
                    for a in range(i, i + h):
                        for r in range(width):
                            left, right = y[a, r], y[a + h, r]
                            y[a, r] = left + right
                            y[a + h, r] = left - right
                h *= 2
        _write_codes(y, out[g, t, start:stop])


def hadamard_codes(x_columns: torch.Tensor, signs: torch.Tensor, out: torch.Tensor) -> None:
    """Write `hadamard_codes_reference(x_columns, signs)` into out (G, F, R), exactly: compiled on a CPU for
    float32/64 (rotation and arg-max in one pass), the reference elsewhere."""
    signs = signs.to(x_columns.dtype)
    if x_columns.device.type == "cpu" and x_columns.dtype in (torch.float32, torch.float64):
        match_numba_threads()
        _hadamard_codes(x_columns.detach().contiguous().numpy(), signs.contiguous().numpy(), out.numpy())
    else:
        out.copy_(hadamard_codes_reference(x_columns, signs))


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


# ---- causal ANNA: running bucket sums ------------------------------------------------------------------


@njit(parallel=True, cache=True, boundscheck=False)
def _causal_bucket_sums(key_index, query_index, values, sums, num, counts, den):  # pragma: no cover
    """Walk the positions in order, adding key i to its bucket before query i reads its own bucket.

    key_index, query_index (T, B, N); values (B, N, d_v); sums (size, d_v) and counts (size,) start at 0 and
    every (table, batch) owns its own rows of them; num (B, N, d_v) and den (B, N) receive the reads. Threads
    take (batch, block of value columns): they never write the same number, and each adds its tables in
    the same order, so the result does not depend on the thread count.
    """
    n_tables, batch, n = key_index.shape
    d_v = values.shape[2]
    n_blocks = (d_v + 15) // 16
    for job in prange(batch * n_blocks):
        b, start = job // n_blocks, (job % n_blocks) * 16
        stop = min(start + 16, d_v)
        for t in range(n_tables):
            for i in range(n):
                key, query = key_index[t, b, i], query_index[t, b, i]
                for c in range(start, stop):
                    sums[key, c] += values[b, i, c]
                for c in range(start, stop):
                    num[b, i, c] += sums[query, c]
                if start == 0:  # one thread per batch element counts
                    counts[key] += 1
                    den[b, i] += counts[query]


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
    num, den = values.new_zeros(batch, n, d_v), torch.zeros(batch, n, dtype=torch.long)
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
