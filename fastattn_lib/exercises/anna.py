"""Notebook 02's exercises (ANNA against softmax): Algorithm 1 by hand, collision counts, lonely queries,
and where hashing stops being cheaper than scoring."""

from __future__ import annotations

import torch

from .core import Exercise, close_to, computed, equals, require_function, same_output


def _tiny_query_2() -> float:
    from ..panels import anna as panels  # the panels import plotly: only when the judge runs

    return panels.tiny_output(panels.TINY, 1)


def _collision_counts_reference(query_buckets: torch.Tensor, key_buckets: torch.Tensor) -> torch.Tensor:
    return (query_buckets[:, :, None] == key_buckets[:, None, :]).sum(0)  # (ℓ, N_q, N_k) summed over tables


def _judge_collision_counts(function) -> bool:
    require_function(function)
    generator = torch.Generator().manual_seed(2)
    queries, keys = (
        torch.randint(3, (4, 9), generator=generator),
        torch.randint(3, (4, 7), generator=generator),
    )
    expected = _collision_counts_reference(queries, keys)
    same_output(function(queries, keys), expected, "query buckets [4, 9] and key buckets [4, 7] (ℓ = 4)")
    return True


def _tables_until_no_lonely(n_hashes: int = 4, n: int = 1024) -> int:
    from ..panels import anna as panels  # the panels import plotly: only when the judge runs

    data = panels.clustered_input(n, seed=0, device="cpu")
    return next(
        n_tables
        for n_tables in range(1, 65)
        if not panels.lonely_queries(data.q, data.k, n_tables, n_hashes).any()
    )


EXERCISES: dict[str, Exercise] = {
    "anna_tiny_output": Exercise(
        notebook="02",
        prompt="In Figure 1's tables, query 2 reads bucket 1 of table 1 and bucket 0 of table 2. Predict its "
        "ANNA output (within 0.01).",
        hint="Add the two buckets' sums and, separately, their counts, then divide: keys met in both "
        "tables count twice. Neither the mean of the distinct keys met nor the mean of the two bucket "
        "averages is ANNA.",
        judge=computed(close_to, _tiny_query_2, 0.01),
        solution=_tiny_query_2,
        wrong=(None, "2.8", 8 / 3, (3 + 8 / 3) / 2, 10 / 3),
    ),
    "anna_collision_counts": Exercise(
        notebook="02",
        prompt="Write collision_counts(query_buckets, key_buckets): from bucket ids of shape (ℓ, N_q) and "
        "(ℓ, N_k), the (N_q, N_k) integer matrix c_ij = the number of tables u with b_u(q_i) = b_u(k_j).",
        hint="Broadcasting can compare every query with every key in every table at once: give the query "
        "ids a new last axis and the key ids a new middle axis, so that == yields an (ℓ, N_q, N_k) "
        "boolean tensor. Then count the True entries along the axis that runs over the tables.",
        judge=_judge_collision_counts,
        solution=lambda: _collision_counts_reference,
        wrong=(
            None,
            lambda q, k: (q[:, :, None] == k[:, None, :]).any(0),
            lambda q, k: (q[:, :, None] == k[:, None, :]).float().mean(0),
            lambda q, k: (q[:, None, :] == k[:, :, None]).sum(0),
        ),
    ),
    "anna_tables_until_no_lonely": Exercise(
        notebook="02",
        prompt="On the clustered input with N = 1024 (seed 0) and z = 4 cross-polytope hashes per table, "
        "find the smallest ℓ at which no query is lonely (every query meets at least one key), with "
        "the hash functions lonely_queries draws by default (seed 0; the tables of a smaller ℓ are the "
        "first tables of a larger one).",
        hint="Loop ℓ = 1, 2, … and stop at the first ℓ where "
        "panels.lonely_queries(data.q, data.k, ℓ, 4) has no True entry; the tables of a smaller ℓ are "
        "the first tables of a larger one, so the count of lonely queries only falls.",
        judge=computed(equals, _tables_until_no_lonely),
        solution=_tables_until_no_lonely,
        wrong=(None, "6", 1, 16),
    ),
    "anna_break_even_n": Exercise(
        notebook="02",
        prompt="Predict the N at which one softmax query's scoring work, N·m multiply-adds, equals ANNA's "
        "hashing work per query, ℓ·z·m·D, at §6's setting: m = 64, ℓ = 8, z = 1, dense rotation (D = m).",
        hint="Write both works as multiply-adds per query and set them equal; the width m is on both "
        "sides. Softmax reads every one of the N keys; ANNA hashes the query ℓ·z times, m·D each.",
        judge=equals(8 * 1 * 64),
        solution=lambda: 8 * 1 * 64,
        wrong=(None, "512", 8 * 64 * 64, 8, 4096),
    ),
}
