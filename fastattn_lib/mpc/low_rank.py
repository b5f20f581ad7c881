"""One low-rank attention layer as an MPC protocol, in a number of rounds that does not grow with N.

Low-rank attention (`attention.low_rank_attention`) with the feature map φ(x) = elu(x) + 1 computes

    out_i = φ(q_i)ᵀ·S / φ(q_i)ᵀ·Z,     S = Σ_j φ(k_j)·v_jᵀ  (m × d_v),     Z = Σ_j φ(k_j)  (m),

so every output needs only two global sums. An MPC cluster gets them with one aggregation tree:

1. token j's machine turns (k_j, v_j) into its record (φ(k_j)·v_jᵀ, φ(k_j)): w = m·(d_v + 1) words;
2. up: every tree node adds the records of its f children and sends the sum to its parent, one level per
   round, so the root holds (S, Z) after H = ⌈log_f N⌉ rounds;
3. down: the root sends (S, Z) to its children, and every node passes it on, another H rounds;
4. token i's last local step (the output) is φ(q_i)ᵀ·S / φ(q_i)ᵀ·Z.

With machines of s = w·(f + 1) words the fan-in is f, and 2·⌈log_f N⌉ rounds is a constant 2·⌈1/δ⌉ when
f grows like N^δ. The ANNA paper's result that constant-depth ANNA-transformers simulate constant-depth
low-rank transformers goes through MPC; this aggregation tree is our construction of that step, and
`transformers.MPCTransformer` then runs the protocol
with one ANNA layer per round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..attention import low_rank_attention
from ..checks import check_count, check_qkv
from ..device import cpu_generator
from .model import Message, Protocol, empty_memory, simulate
from .transformers import MPCTransformer


def _phi(word: float) -> float:
    """The feature map of `attention.low_rank_attention`, on one word: elu(x) + 1."""
    return word + 1 if word > 0 else math.exp(word)


def tree_height(n: int, fan_in: int) -> int:
    """Levels above the N leaves of a tree of fan-in f: ⌈log_f N⌉ (0 for a single leaf)."""
    check_count("n", n)
    check_count("fan_in", fan_in, minimum=2)
    height, nodes = 0, n
    while nodes > 1:  # integer arithmetic: no rounding trouble at exact powers of f
        nodes, height = math.ceil(nodes / fan_in), height + 1
    return height


class LowRankProtocol(Protocol):
    """Low-rank attention over N tokens in 2·⌈log_f N⌉ rounds (see the module docstring).

    q, k [N, m] and v [N, d_v] (no batch dimension: token i is machine i, holding q_i, k_i and v_i).
    `memory` s ≥ 3·w words, w = m·(d_v + 1); the fan-in is f = ⌊s/w⌋ − 1, because a node holds its f
    children's records and one more record's room for (S, Z) coming down. Machines 0..N−1 are the
    tokens, the tree's internal levels follow. `output` returns the layer's output [N, d_v] in float64.

    Memory layout: a token keeps k and v in slots 0..m + d_v − 1 until it sends its record, (S, Z) arrives
    in slots w..2w − 1 and q_i sits in slots 2w..2w + m − 1; an internal node holds child c's record in
    slots c·w..(c + 1)·w − 1 and (S, Z) in slots f·w..(f + 1)·w − 1.
    """

    def __init__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, memory: int):
        check_qkv(q, k, v)
        if q.dim() != 2 or q.shape[0] != k.shape[0] or q.shape[0] == 0:
            raise ValueError(f"q: expected shape [N, m] with N ≥ 1 and as many keys, got {tuple(q.shape)}")
        check_count("memory", memory, minimum=2)
        self.n, self.m, self.d = q.shape[0], q.shape[1], v.shape[1]
        self.width = self.m * (self.d + 1)
        if memory < 3 * self.width:
            raise ValueError(
                f"memory: a tree of records of w = m·(d_v + 1) = {self.width} words needs s >= 3·w = "
                f"{3 * self.width}, got {memory}"
            )
        self.memory, self.fan_in = memory, memory // self.width - 1
        self.q, self.k, self.v = (t.detach().double().cpu().tolist() for t in (q, k, v))
        self.level_sizes = [self.n]
        while self.level_sizes[-1] > 1:
            self.level_sizes.append(math.ceil(self.level_sizes[-1] / self.fan_in))
        self.level_starts = [sum(self.level_sizes[:t]) for t in range(len(self.level_sizes))]
        self.height = len(self.level_sizes) - 1
        self.n_machines = sum(self.level_sizes)
        self.n_rounds = 2 * self.height

    def _where(self, machine: int) -> tuple[int, int]:
        """(level, index within the level) of a machine."""
        level = max(t for t, start in enumerate(self.level_starts) if machine >= start)
        return level, machine - self.level_starts[level]

    def _sum_slot(self, level: int) -> int:
        """First slot of (S, Z) on its way down."""
        return self.width if level == 0 else self.fan_in * self.width

    def initial_memory(self, machine: int) -> list:
        memory = empty_memory(self.memory)
        level, index = self._where(machine)
        if level == 0:
            memory[: self.m + self.d] = self.k[index] + self.v[index]
            memory[2 * self.width : 2 * self.width + self.m] = self.q[index]
        return memory

    def record(self, memory: list) -> list[float]:
        """A token's record from its k and v: φ(k)·vᵀ row by row (m·d_v words), then φ(k) (m words)."""
        phi_k = [_phi(word) for word in memory[: self.m]]
        v = memory[self.m : self.m + self.d]
        return [f * value for f in phi_k for value in v] + phi_k

    def _held_sum(self, level: int, memory: list) -> list[float]:
        """The sum of the records a node holds (a token: its own record)."""
        if level == 0:
            return self.record(memory)
        w = self.width
        held = [memory[c * w : (c + 1) * w] for c in range(self.fan_in) if memory[c * w] is not None]
        return [sum(column) for column in zip(*held, strict=True)]

    def local(self, round: int, machine: int, memory: list) -> tuple[list, list[Message]]:
        level, index = self._where(machine)
        w, kept, messages = self.width, list(memory), []
        if round < self.height and level == round:  # up: my sum to my parent
            parent = self.level_starts[level + 1] + index // self.fan_in
            first = (index % self.fan_in) * w
            messages = [
                Message(parent, first + c, word) for c, word in enumerate(self._held_sum(level, memory))
            ]
            if level == 0:  # a token needs only q from now on
                kept[: self.m + self.d] = [None] * (self.m + self.d)
        elif round >= self.height and level == 2 * self.height - round:  # down: (S, Z) to my children
            start = self._sum_slot(level)
            totals = self._held_sum(level, memory) if level == self.height else memory[start : start + w]
            below = self.level_starts[level - 1]
            children = range(index * self.fan_in, min((index + 1) * self.fan_in, self.level_sizes[level - 1]))
            target = self._sum_slot(level - 1)
            messages = [
                Message(below + c, target + t, word) for c in children for t, word in enumerate(totals)
            ]
        return kept, messages

    def output(self, memories: list[list]) -> torch.Tensor:
        """out_i = φ(q_i)ᵀ·S / φ(q_i)ᵀ·Z for every token, from (S, Z) in its memory."""
        w, m, d = self.width, self.m, self.d
        rows = []
        for token in range(self.n):
            memory = memories[token]
            totals = self.record(memory) if self.height == 0 else memory[w : 2 * w]
            phi_q = [_phi(word) for word in memory[2 * w : 2 * w + m]]
            normaliser = sum(f * z for f, z in zip(phi_q, totals[m * d :], strict=True))
            rows.append([sum(phi_q[a] * totals[a * d + b] for a in range(m)) / normaliser for b in range(d)])
        return torch.tensor(rows, dtype=torch.float64)


def memory_for_fan_in(fan_in: int, width: int, d_v: int) -> int:
    """Words s a machine needs for a low-rank tree of fan-in f over queries and keys of width m:
    w·(f + 1) with w = m·(d_v + 1)."""
    check_count("fan_in", fan_in, minimum=2)
    check_count("width", width)
    check_count("d_v", d_v)
    return width * (d_v + 1) * (fan_in + 1)


@dataclass
class LowRankCheck:
    """One low-rank layer on random q, k, v, run by MPC: its size, its cost and its largest deviation from
    `attention.low_rank_attention`."""

    n: int
    fan_in: int
    memory: int
    rounds: int
    layers: int | None  # ANNA layers, when run by `MPCTransformer`
    error: float


def check_low_rank(
    n: int, fan_in: int, width: int = 2, d_v: int = 2, seed: int = 0, by_anna: bool = False
) -> LowRankCheck:
    """Run `LowRankProtocol` on N random tokens (float64) with machines of fan-in f, on the simulator or,
    with `by_anna`, as an ANNA-transformer (one layer per round, s × s heads: keep N small), and compare
    with `attention.low_rank_attention`."""
    check_count("n", n)
    generator = cpu_generator(seed, "low-rank-protocol")
    q, k = (torch.randn(n, width, generator=generator, dtype=torch.float64) for _ in range(2))
    v = torch.randn(n, d_v, generator=generator, dtype=torch.float64)
    protocol = LowRankProtocol(q, k, v, memory_for_fan_in(fan_in, width, d_v))
    if by_anna:
        run = MPCTransformer(protocol).run()
        output, rounds, layers = run.output, len(run.rounds), run.n_layers
    else:
        run = simulate(protocol)
        output, rounds, layers = run.output, run.n_rounds, None
    error = float((output - low_rank_attention(q, k, v)).abs().max())
    return LowRankCheck(n, fan_in, protocol.memory, rounds, layers, error)
