"""Notebook 03's exercises (MPC): aggregation-tree rounds, k hops by pointer doubling, the depth of the
hand-built k-hop ANNA-transformer, and the smallest z that makes it exact."""

from __future__ import annotations

import math

import torch

from .. import tasks
from ..mpc import KHopTransformer, build_khop_transformer
from .core import Exercise, computed, equals, require_function, same_output

TREE_N, TREE_MEMORY = 50_000, 12
DEPTH_HOPS = 100
EXACT_HOPS, EXACT_LEN, EXACT_TABLES = 5, 100, 1


def _hop_by_doubling(find: list[int], k: int) -> list[int]:
    """find^k(i) for every i (−1 where a step is undefined): doubled pointers composed along k's bits."""
    p, answer = list(find), list(range(len(find)))
    while k:
        if k & 1:  # this bit of k is set: follow p = find^(2^d) once more
            answer = [p[a] if a >= 0 else -1 for a in answer]
        p = [p[j] if j >= 0 else -1 for j in p]  # p ← p∘p: find^(2^(d+1))
        k >>= 1
    return answer


def _hop_one_at_a_time(find: list[int], k: int) -> list[int]:
    position = list(range(len(find)))
    for _ in range(k):
        position = [find[j] if j >= 0 else -1 for j in position]
    return position


def _judge_hop(function) -> bool:
    require_function(function)
    x, _ = tasks.khop(3, seq_len=64, alphabet=4, seed=11)
    for find in tasks.find_pointers(x, 4).tolist():
        for k in (1, 2, 3, 5, 8, 13, 37):
            expected = torch.tensor(_hop_one_at_a_time(find, k))
            same_output(function(list(find), k), expected, f"a find list of {len(find)} pointers and k = {k}")
    return True


def _smallest_exact_z() -> int:
    """The smallest z at which the hand-built k-hop ANNA-transformer has no false collision pair (so it is
    exact on every input), searched with the library; computed once, when first judged."""
    for n_hashes in range(1, 13):
        model = build_khop_transformer(EXACT_HOPS, EXACT_LEN, 4, n_tables=EXACT_TABLES, n_hashes=n_hashes)
        if model.false_collision_pairs == 0:
            return n_hashes
    raise AssertionError("no z up to 12 is free of false collisions")


EXERCISES: dict[str, Exercise] = {
    "mpc_tree_rounds": Exercise(
        notebook="03",
        prompt=f"Predict the rounds the aggregation tree needs to sum N = {TREE_N:,} numbers on machines of "
        f"s = {TREE_MEMORY} words.",
        hint="A tree of fan-in s over N numbers has ⌈log_s N⌉ levels, but the leaves start with their s "
        "numbers in memory: only the levels above them cost a round, so ⌈log_s N⌉ − 1.",
        judge=equals(math.ceil(math.log(TREE_N, TREE_MEMORY)) - 1),
        solution=lambda: math.ceil(math.log(TREE_N, TREE_MEMORY)) - 1,
        wrong=(None, math.ceil(math.log(TREE_N, TREE_MEMORY)), math.log(TREE_N, TREE_MEMORY), 3.0),
    ),
    "mpc_hop_by_doubling": Exercise(
        notebook="03",
        prompt="Write hop(find, k): the list of find^k(i) for every position i (−1 where a step is "
        "undefined), with pointer doubling: about log₂ k compositions, not k (the check compares your "
        "lists with k single hops; how you got them is up to you).",
        hint="Keep p = find^(2^d) and an answer pointer a that starts at i. For each bit of k from the "
        "lowest: if the bit is 1, a ← p∘a (a[i] = p[a[i]]); then p ← p∘p. Keep −1 as −1.",
        judge=_judge_hop,
        solution=lambda: _hop_by_doubling,
        wrong=(
            None,
            lambda find, k: list(find),  # one hop, whatever k
            lambda find, k: _hop_by_doubling(find, 2 ** (k.bit_length() - 1)),  # the top bit only
            lambda find, k: _hop_by_doubling(find, k + 1),  # one hop too many
        ),
    ),
    "mpc_khop_depth": Exercise(
        notebook="03",
        prompt="Predict the number of layers L of the hand-built k-hop ANNA-transformer for "
        f"k = {DEPTH_HOPS}.",
        hint="One layer counts occurrences; one computes find (and applies bit 0 of k); each of the other "
        "bit_length(k) − 1 bits costs one doubling layer, and applying the top bit one more: "
        "bit_length(k) + 2 for k ≥ 2.",
        judge=equals(KHopTransformer.depth(DEPTH_HOPS)),
        solution=lambda: DEPTH_HOPS.bit_length() + 2,
        wrong=(None, DEPTH_HOPS + 1, math.ceil(math.log2(DEPTH_HOPS)) + 3, DEPTH_HOPS.bit_length(), "9"),
    ),
    "mpc_smallest_exact_z": Exercise(
        notebook="03",
        prompt=f"Find the smallest z at which the hand-built k-hop ANNA-transformer (k = {EXACT_HOPS}, "
        f"N = {EXACT_LEN}, ℓ = {EXACT_TABLES}) has no false collision pairs, so that it is exact on every "
        "input; estimate it first from 64^(−z) and the number of pairs of distinct codes.",
        hint="Build mpc.build_khop_transformer(5, seq_len=100, alphabet=4, n_tables=1, n_hashes=z) for "
        "z = 1, 2, … and stop at the first whose .false_collision_pairs is 0. A z whose few false pairs "
        "happen to spare your test sequences is not enough. The estimate (about 87,000 code pairs times "
        "64^(−z) below 1) says z = 3, but the chance varies from pair to pair: random codes that happen to "
        "lie closer together collide far more often, so count the pairs, don't estimate them.",
        judge=computed(equals, _smallest_exact_z),
        solution=_smallest_exact_z,
        wrong=(None, 1, 3, 4, 6, "5", "auto"),
    ),
}
