"""MPC simulating ANNA, counted: what it costs an MPC cluster to compute one attention layer over N tokens.

MPC can simulate ANNA cheaply: every key sends (v, 1) to the machine that owns its bucket, bucket sums go up
and down aggregation trees, and each query reads its ℓ buckets. That takes O(1/δ) rounds and about
N·ℓ·(m + 1)/s machines, near-linear in N, for machines of s words holding N^δ tokens. The straightforward
simulation of softmax attention computes every (query, key) score, so it uses about (N·2m/s)² machines:
quadratic (the cost of that construction, not a lower bound). These are counts from our constructions
(`LayerCost`), not runs; `layer_cost_table` sets them side by side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..checks import check_count


@dataclass
class LayerCost:
    """Rounds, machines and words per machine for MPC to compute one attention layer over N tokens."""

    n: int
    memory: int
    rounds: int
    machines: int

    @property
    def total_words(self) -> int:
        return self.machines * self.memory


def _tree_rounds(items: int, fan_in: int) -> int:
    return math.ceil(math.log(items) / math.log(fan_in) - 1e-12) if items > 1 else 0


def anna_layer_mpc_cost(n: int, width: int, n_tables: int, memory: int) -> LayerCost:
    """Our construction for MPC simulating ANNA. Token machines hold ⌊s/3m⌋ tokens and compute q, k, v.
    For each of the ℓ tables every key sends (v, 1), m + 1 words, to the machine that owns its bucket:
    N·ℓ·(m + 1) words, so ⌈N·ℓ·(m + 1)/s⌉ bucket machines. A bucket too big for one machine is summed by an
    aggregation tree of fan-in f = ⌊s/(m + 1)⌋ and its sum sent back down the same tree to the queries that
    read it:
    rounds = 1 (keys to buckets) + 2·⌈log_f N⌉ (up and down) + 1 (the queries' answers)."""
    check_count("n", n)
    check_count("width", width)
    check_count("n_tables", n_tables)
    fan_in = memory // (width + 1)
    if memory < 3 * width or fan_in < 2:
        raise ValueError(f"memory: expected s >= 3·width = {3 * width} words, got {memory!r}")
    token_machines = math.ceil(n / (memory // (3 * width)))
    bucket_machines = math.ceil(n * n_tables * (width + 1) / memory)
    # the trees above the bucket machines add at most a 1/(f − 1) fraction more
    tree_machines = math.ceil(bucket_machines / (fan_in - 1))
    rounds = 2 + 2 * _tree_rounds(n, fan_in)
    return LayerCost(n, memory, rounds, token_machines + bucket_machines + tree_machines)


def softmax_layer_mpc_cost(n: int, width: int, memory: int) -> LayerCost:
    """The straightforward simulation of softmax attention (a construction, not a lower bound) computes
    every (query, key) score: a machine holding t = ⌊s/(2m + 1)⌋ queries and
    t keys covers t² pairs, so ⌈N/t⌉² machines, about N²·(2m)²/s². Each row's normaliser and weighted sum
    are then reduced over its ⌈N/t⌉ tiles: rounds = 1 + 2·⌈log_f ⌈N/t⌉⌉ with f = ⌊s/(m + 1)⌋."""
    check_count("n", n)
    check_count("width", width)
    tile = memory // (2 * width + 1)
    fan_in = memory // (width + 1)
    if tile < 1 or fan_in < 2:
        raise ValueError(f"memory: expected s >= 2·width + 1 = {2 * width + 1} words, got {memory!r}")
    tiles = math.ceil(n / tile)
    return LayerCost(n, memory, 1 + 2 * _tree_rounds(tiles, fan_in), tiles**2)


def layer_cost_table(ns: Sequence[int], width: int = 64, n_tables: int = 8, delta: float = 0.5) -> list[dict]:
    """ANNA against softmax for each N, with machines that hold ⌈N^δ⌉ tokens (s = 3m·⌈N^δ⌉ words)."""
    rows = []
    for n in ns:
        memory = 3 * width * max(2, math.ceil(n**delta))
        anna, soft = anna_layer_mpc_cost(n, width, n_tables, memory), softmax_layer_mpc_cost(n, width, memory)
        rows.append(
            {
                "N": n,
                "s (words)": memory,
                "ANNA rounds": anna.rounds,
                "ANNA machines": anna.machines,
                "softmax rounds": soft.rounds,
                "softmax machines": soft.machines,
                "machine ratio": soft.machines / anna.machines,
            }
        )
    return rows
