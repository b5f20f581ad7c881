"""ANNA-transformers that compute exactly, built by hand from exact-match attention (`exact_match`).

The ANNA paper reports that ANNA-transformers simulate MPC; `MPCTransformer` is our construction of that
result: it runs any protocol as an ANNA-transformer, one layer per round. Tokens are machines and a token's
residual stream is its memory; the MLP is the local function and the attention delivers the messages. It
plays the rounds of the same loop as the simulator (`model.run_rounds`), with the same limit checks, so
memories and traffic can be compared round by round.

The paper also reports that ANNA-transformers solve k-hop induction heads in depth O(log k) and Match2 in
constant depth. Our constructions for those need no protocol in between: `KHopTransformer`
(`build_khop_transformer`) follows k hops of induction heads in bit_length(k) + 2 ≤ ⌈log₂ k⌉ + 3 layers
by pointer doubling, and
`Match2Transformer` decides Match2 in one layer. Both are exact for every input once their code books have
no false collisions, which the codes check when they are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..checks import check_count, check_protocol, check_token_ids
from .exact_match import NULL, ExactMatchCodes
from .model import (
    Message,
    Protocol,
    RoundResult,
    RoundStats,
    check_inbox,
    inboxes,
    local_step,
    run_rounds,
)


@dataclass
class TransformerRun:
    """What `MPCTransformer.run` returns: the output, the final memories, the number of layers, with
    `record` the memories before the first round and after each (as `MPCRun.history`), and the traffic the
    attention layers delivered in each round (as `MPCRun.rounds`)."""

    output: Any
    memories: list[list]
    n_layers: int
    history: list[list[list]] = field(default_factory=list)
    rounds: list[RoundStats] = field(default_factory=list)


class MPCTransformer:
    """ANNA simulates MPC: an R-round protocol as an ANNA-transformer of R + 1 layers.

    Tokens are machines; a token's residual stream is its memory (s words). Layer r's MLP is the local
    function of round r (it keeps some words and writes up to s outgoing words, each with its (dest, slot));
    layer r + 1's attention delivers them. The attention has s × s heads: head (a, t) carries every
    machine's a-th outgoing word if it is addressed to slot t. In that head, receiver i queries code(i) and
    sender j offers code(dest) (or a null key), value (word, 1). Exact-match ANNA returns the one word sent
    to (i, t), or (0, 0) when there is none, so summing over a gives slot t of i's new memory. Layer 0's
    attention has nothing to route (the input is in place) and the last layer's MLP computes the output.
    The rounds are those of the simulator's loop, with the same limit checks; only the words travel by
    attention, not by Python lists.
    """

    def __init__(self, protocol: Protocol, n_tables: int = 1, n_hashes: int | None = None, seed: int = 0):
        check_protocol(protocol)
        self.protocol = protocol
        self.codes = ExactMatchCodes(protocol.n_machines, n_tables, n_hashes, seed=seed)
        self.n_layers = protocol.n_rounds + 1

    def route(self, outboxes: list[list[Message]]) -> torch.Tensor:
        """One attention layer: outgoing words → [n_machines, s, 2], (word, 1) per filled slot."""
        s, n = self.protocol.memory, self.protocol.n_machines
        dest = torch.full((s, n), NULL, dtype=torch.long)
        slot = torch.full((s, n), -1, dtype=torch.long)
        word = torch.zeros(s, n, dtype=torch.float64)
        for j, messages in enumerate(outboxes):
            for a, message in enumerate(messages):
                dest[a, j], slot[a, j], word[a, j] = message.dest, message.slot, message.word
        head_slot = torch.arange(s).view(1, s, 1)  # head (a, t) carries words addressed to slot t
        key = torch.where(slot.unsqueeze(1) == head_slot, dest.unsqueeze(1), NULL)  # (a, t, n)
        query = torch.arange(n).expand(s, s, n)
        values = torch.stack([word, torch.ones_like(word)], dim=-1).unsqueeze(1).expand(s, s, n, 2)
        out = self.codes.attend(query, key, values).sum(dim=0)  # (t, n, 2): at most one a per (i, t)
        return out.transpose(0, 1)

    def play_round(self, protocol: Protocol, round: int, memories: list[list]) -> RoundResult:
        """Round r: layer r's MLPs (the local functions) write the outgoing words, layer r + 1's attention
        (`route`) delivers them. `received` counts the slots the attention filled."""
        if protocol is not self.protocol:
            raise ValueError("protocol: an MPCTransformer plays the rounds of the protocol it was built for")
        s = protocol.memory
        steps = [local_step(protocol, round, m, memory) for m, memory in enumerate(memories)]  # the MLPs
        outboxes = [messages for _, messages in steps]
        boxes = inboxes(protocol.n_machines, outboxes)
        for m, (kept, _) in enumerate(steps):  # the receive limits, as the simulator checks them
            check_inbox(round, m, kept, boxes[m], s)
        delivered = self.route(outboxes)  # the next layer's attention
        new, received = [], []
        for m, (kept, _) in enumerate(steps):
            memory, filled = list(kept), 0
            for t in range(s):
                if delivered[m, t, 1] > 0.5:
                    memory[t], filled = _as_word(delivered[m, t, 0].item()), filled + 1
            new.append(memory)
            received.append(filled)
        sent = [(sender, message) for sender, messages in enumerate(outboxes) for message in messages]
        return RoundResult(new, [len(o) for o in outboxes], received, sent)

    def run(self, record: bool = False) -> TransformerRun:
        """All layers, through the simulator's round loop (`model.run_rounds`)."""
        run = run_rounds(self.protocol, self.play_round, record)
        return TransformerRun(run.output, run.memories, self.n_layers, run.history, run.rounds)


def _as_word(value: float):
    """Words travel as float64; integers come back as ints so outputs compare equal to the simulator's."""
    return int(value) if float(value).is_integer() else value


class KHopTransformer(nn.Module):
    """hop_k by exact-match ANNA layers, no training (k-hop in logarithmic depth). The residual stream holds
    a few integer fields per token; the attention heads read them through exact-match codes, and the MLPs
    are small exact integer maps (rounding, comparisons).

    1. counting: a causal head whose queries and keys are all one code averages one-hot(x_j) over j ≤ i,
       so occ(i) = (i + 1)·mean[x_i] is how many times x_i occurred up to i; a second head reads the next
       token x_{i+1} (query code(i + 1), key code(j)).
    2. find: query code(x_i, occ(i) − 1), key code(x_j, occ(j)), value (j + 1, x_{j+1}): the previous copy
       of x_i, so p_0(i) = find(i) and the symbol there.
    3. pointer doubling: p_r = find^(2^r) by query code(p_{r−1}(i)), key code(j), value p_{r−1}(j); in the
       same layer a second head composes a ← p_{r−1}∘a when bit r − 1 of k is set (bit 0 is a copy).
    4. the top bit: a ← p_{n−1}∘a with n = bit_length(k); the prediction is the symbol at a, or
       `alphabet` ("none").
    Layers: 2 for k = 1, else bit_length(k) + 2 ≤ ⌈log₂ k⌉ + 3.
    """

    def __init__(self, hops, seq_len, alphabet, n_tables=1, n_hashes=None, seed=0):
        super().__init__()
        check_count("hops", hops)
        check_count("seq_len", seq_len)
        check_count("alphabet", alphabet, minimum=2)
        self.hops, self.seq_len, self.alphabet = hops, seq_len, alphabet
        self.bits = [int(b) for b in reversed(bin(hops)[2:])]
        codes = {"n_tables": n_tables, "n_hashes": n_hashes, "seed": seed}
        self.everyone = ExactMatchCodes(1, **codes)
        self.positions = ExactMatchCodes(seq_len, **codes)
        self.occurrences = ExactMatchCodes(alphabet * (seq_len + 1), **codes)
        self.code_books = (self.everyone, self.positions, self.occurrences)
        self.n_layers = self.depth(hops)

    @staticmethod
    def depth(hops: int) -> int:
        """Layers for k hops: 2 for k = 1 (count, find), else bit_length(k) + 2."""
        return 2 if hops == 1 else hops.bit_length() + 2

    @property
    def false_collision_pairs(self) -> int:
        return sum(codes.false_collision_pairs for codes in self.code_books)

    def forward(self, x: torch.Tensor, trace: bool = False):
        """Predictions [batch, N] in `tasks.khop`'s convention; with `trace`, also a list of the pointer
        fields (p, a) after each layer, for the notebook's layer-by-layer view."""
        check_token_ids("x", x, self.alphabet, self.seq_len, exact_len=True)
        x = x.long()  # one_hot and the code indices want int64
        n, A = self.seq_len, self.alphabet
        position = torch.arange(n, device=x.device).expand_as(x)
        one = torch.ones_like(x, dtype=torch.float64)
        steps = []

        # Layer 1: occurrence counts (causal mean over the prefix) and the next token.
        mean = self.everyone.attend(
            torch.zeros_like(x), torch.zeros_like(x), nn.functional.one_hot(x, A), True
        )
        occ = (mean.gather(-1, x.unsqueeze(-1)).squeeze(-1) * (position + 1)).round().long()
        following = torch.where(position + 1 < n, position + 1, NULL)
        nxt = self.positions.attend(following, position, x.unsqueeze(-1))[..., 0].round().long()
        steps.append(("occurrences and next token", None, None))

        # Layer 2: find(i) = 1 + the previous copy of x_i, i.e. the copy whose count is one less.
        def as_pointer(out):
            """The averaged position as a pointer: NULL where no key matched, or where false collisions
            averaged it out of the sequence: with too few hashes the answer is then wrong, not a crash."""
            value = out[..., 0].round().long()
            return torch.where((out[..., 2] > 0.5) & (value >= 0) & (value < n), value, NULL)

        code = x * (n + 1) + occ
        found = self.occurrences.attend(code - 1, code, torch.stack([position + 1, nxt, one], dim=-1))
        p, symbol = as_pointer(found), found[..., 1].round().long()
        a, a_symbol = (p, symbol) if self.bits[0] else (position, x)
        steps.append(("find", p, a))

        def hop(pointer, target, target_symbol):
            """pointer(target(i)) and the symbol there, for every i: exact-match on positions."""
            out = self.positions.attend(target, position, torch.stack([pointer, target_symbol, one], -1))
            return as_pointer(out), out[..., 1].round().long()

        for r in range(1, len(self.bits)):  # layer 2 + r: p_r = p_{r−1}∘p_{r−1}; apply bit r − 1 ≥ 1
            if r >= 2 and self.bits[r - 1]:
                a, a_symbol = hop(p, a, symbol)
            p, symbol = hop(p, p, symbol)
            steps.append((f"double: find^{2**r}", p, a))
        if len(self.bits) > 1:  # the top bit
            a, a_symbol = hop(p, a, symbol)
            steps.append((f"apply find^{2 ** (len(self.bits) - 1)}", p, a))
        predictions = torch.where(a >= 0, a_symbol, A)
        return (predictions, steps) if trace else predictions


def build_khop_transformer(hops: int, seq_len: int, alphabet: int, n_tables=1, n_hashes=None, seed=0):
    """The hand-built k-hop ANNA-transformer (see `KHopTransformer`): exact for every input when
    `n_hashes` is None (the smallest z without false collisions is chosen), with `.n_layers` =
    bit_length(hops) + 2 (2 for hops = 1)."""
    return KHopTransformer(hops, seq_len, alphabet, n_tables, n_hashes, seed)


class Match2Transformer(nn.Module):
    """Match2 in one exact-match ANNA layer (constant depth suffices): query code((−x_i) mod |Σ|), key
    code(x_j), value 1. The mean is 1 when a partner exists and 0 when none collides, so the threshold at ½
    is the label. A false collision can only add a 1: errors are false positives."""

    def __init__(self, seq_len=32, modulus=37, n_tables=1, n_hashes=None, seed=0):
        super().__init__()
        check_count("seq_len", seq_len)
        check_count("modulus", modulus, minimum=2)
        self.seq_len, self.modulus, self.n_layers = seq_len, modulus, 1
        self.codes = ExactMatchCodes(modulus, n_tables, n_hashes, seed=seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_token_ids("x", x, self.modulus, self.seq_len, exact_len=True)
        x = x.long()
        mean = self.codes.attend(
            (-x) % self.modulus, x, torch.ones_like(x, dtype=torch.float64).unsqueeze(-1)
        )
        return (mean[..., 0] > 0.5).long()
