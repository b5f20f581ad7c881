"""MPC protocols: each is a local function and a memory layout, checked against direct computations.

* `TreeAggregation`: reduce N records with a sum or a max up a tree of fan-in f, one round per level
  (⌈log_s N⌉ − 1 rounds for a sum of N numbers), or, with `scan=True`, also hand every element the
  exclusive prefix back down (twice the rounds); `global_sum` and `prefix_sums` are the everyday cases;
* `StarSum`: the one-round sum that does not scale, for contrast: it breaks the receive limit once N > s²;
* `KHopProtocol`: k-hop induction heads, find by a prefix-max scan and then pointer doubling, O(log k)
  rounds once find is known;
* `Match2Protocol`: does any x_j complete x_i to 0 mod |Σ|? Two rounds through value directories.

Run any of them with `model.simulate`, `dask_backend.DaskBackend` or `transformers.MPCTransformer`.
"""

from __future__ import annotations

import math

from ..checks import check_count
from .model import Message, Protocol, empty_memory

OPS = {"sum": (lambda a, b: a + b, 0), "max": (max, -math.inf)}


def _combine(op: str, records: list[tuple]) -> tuple:
    """Component-wise op over a non-empty list of records of one width."""
    fn, identity = OPS[op]
    out = None
    for record in records:
        out = record if out is None else tuple(fn(a, b) for a, b in zip(out, record, strict=True))
    return out


class TreeAggregation(Protocol):
    """Reduce N records of `width` words with `op` ("sum" or "max") up a tree of fan-in f, or, with
    `scan=True`, also hand every element the exclusive prefix op(records before it) back down.

    Leaves (machines 0..L−1) hold `block` records each; every tree level is a fresh set of machines.
    Up-sweep round t: each level-t node sends the op of what it holds to slot (child index · width) of its
    parent. A reduce ends at the root after H = ⌈log_f L⌉ rounds; with width 1 and full leaves
    (block = f = s) that is ⌈log_s N⌉ − 1 rounds: the leaves already hold s words each. A scan adds H
    down-sweep rounds: a node sends child c the op of its own offset and of the totals of children 0..c−1,
    which leaves room for one more record per node, so f = block = s/width − 1 there.
    """

    def __init__(self, values, memory: int, op: str = "sum", scan: bool = False, block: int | None = None):
        check_count("memory", memory, minimum=2)
        if op not in OPS:
            raise ValueError(f"op: expected one of {sorted(OPS)}, got {op!r}")
        records = [tuple(v) if isinstance(v, (tuple, list)) else (v,) for v in values]
        if not records or len({len(r) for r in records}) != 1:
            raise ValueError("values: expected a non-empty list of numbers or of equal-length tuples")
        self.records, self.width, self.op, self.scan, self.memory = records, len(records[0]), op, scan, memory
        per_node = memory // self.width - (1 if scan else 0)  # records a node holds (one left for the offset)
        if per_node < 2:
            need = (3 if scan else 2) * self.width
            raise ValueError(
                f"memory: a {'scan' if scan else 'reduce'} of width {self.width} needs s >= {need}"
            )
        self.fan_in = per_node
        self.block = per_node if block is None else block
        if not 1 <= self.block <= per_node:
            raise ValueError(f"block: expected 1..{per_node} records per leaf, got {block!r}")
        self.level_sizes = [math.ceil(len(records) / self.block)]
        while self.level_sizes[-1] > 1:
            self.level_sizes.append(math.ceil(self.level_sizes[-1] / self.fan_in))
        self.level_starts = [sum(self.level_sizes[:t]) for t in range(len(self.level_sizes))]
        self.height = len(self.level_sizes) - 1
        self.n_machines = sum(self.level_sizes)
        self.n_rounds = self.height * (2 if scan else 1)

    def _where(self, machine: int) -> tuple[int, int]:
        """(level, index within the level) of a machine."""
        for level in reversed(range(len(self.level_sizes))):
            if machine >= self.level_starts[level]:
                return level, machine - self.level_starts[level]
        raise AssertionError(machine)

    def _offset_slot(self, level: int) -> int:
        return (self.block if level == 0 else self.fan_in) * self.width

    def _held_records(self, level: int, memory: list) -> list[tuple]:
        count = self.block if level == 0 else self.fan_in
        w = self.width
        return [tuple(memory[i * w : (i + 1) * w]) for i in range(count) if memory[i * w] is not None]

    def initial_memory(self, machine: int) -> list:
        level, index = self._where(machine)
        memory = empty_memory(self.memory)
        if level == 0:
            for e, record in enumerate(self.records[index * self.block : (index + 1) * self.block]):
                memory[e * self.width : (e + 1) * self.width] = record
        return memory

    def local(self, round: int, machine: int, memory: list) -> tuple[list, list[Message]]:
        level, index = self._where(machine)
        w, messages = self.width, []
        if round < self.height and level == round:  # up-sweep: send my total to my parent
            parent = self.level_starts[level + 1] + index // self.fan_in
            total = _combine(self.op, self._held_records(level, memory))
            first = (index % self.fan_in) * w
            messages = [Message(parent, first + c, total[c]) for c in range(w)]
        elif round >= self.height and level == 2 * self.height - round:  # down-sweep: offsets to children
            before = self._offset(level, memory)
            start = self._offset_slot(level - 1)
            for c, child_total in enumerate(self._held_records(level, memory)):
                child = self.level_starts[level - 1] + index * self.fan_in + c
                if before:  # nothing comes before the very first child: it keeps an empty offset
                    prefix = _combine(self.op, before)
                    messages += [Message(child, start + i, prefix[i]) for i in range(w)]
                before = [*before, child_total]
        return memory, messages

    def _offset(self, level: int, memory: list) -> list[tuple]:
        """[the op of everything before this node's records], or [] when nothing is (an empty slot)."""
        start = self._offset_slot(level)
        if level == self.height or memory[start] is None:
            return []
        return [tuple(memory[start : start + self.width])]

    def leaf_prefixes(self, leaf: int, memory: list) -> list[tuple]:
        """Exclusive prefixes of a leaf's records, once the down-sweep has delivered the leaf's offset;
        the op's identity (0 for a sum, −inf for a max) where nothing comes before."""
        records, before = self._held_records(0, memory), self._offset(0, memory)
        identity = (OPS[self.op][1],) * self.width
        return [_combine(self.op, [*before, *records[:e]]) or identity for e in range(len(records))]

    def output(self, memories: list[list]):
        """The reduction (a number for width 1, else a tuple), or with `scan` the list of exclusive
        prefixes of every element."""
        if self.scan:
            prefixes = [
                p for leaf in range(self.level_sizes[0]) for p in self.leaf_prefixes(leaf, memories[leaf])
            ]
            return [p[0] if self.width == 1 else p for p in prefixes]
        root = self.level_starts[-1]
        total = _combine(self.op, self._held_records(self.height, memories[root]))
        return total[0] if self.width == 1 else total


def global_sum(values, memory: int) -> TreeAggregation:
    """The aggregation tree: Σ values on machine `n_machines − 1` after ⌈log_s N⌉ − 1 rounds."""
    return TreeAggregation(values, memory, "sum")


def prefix_sums(values, memory: int) -> TreeAggregation:
    """Exclusive prefix sums by an up-sweep and a down-sweep of the aggregation tree."""
    return TreeAggregation(values, memory, "sum", scan=True)


class StarSum(Protocol):
    """The one-round sum that does not scale: every leaf sends its total straight to machine 0.

    Machine 0 then receives ⌈N/s⌉ words in one round, so this is legal only while N ≤ s²; beyond that the
    simulator stops it (receive limit) and `global_sum`'s tree is the way."""

    def __init__(self, values, memory: int):
        check_count("memory", memory, minimum=2)
        self.values, self.memory, self.n_rounds = list(values), memory, 1
        self.n_machines = math.ceil(len(self.values) / memory)

    def initial_memory(self, machine: int) -> list:
        memory = empty_memory(self.memory)
        block = self.values[machine * self.memory : (machine + 1) * self.memory]
        memory[: len(block)] = block
        return memory

    def local(self, round: int, machine: int, memory: list) -> tuple[list, list[Message]]:
        total = sum(word for word in memory if word is not None)
        return empty_memory(self.memory), [Message(0, machine % self.memory, total)]

    def output(self, memories: list[list]):
        return sum(word for word in memories[0] if word is not None)


class KHopProtocol(Protocol):
    """k-hop induction heads in MPC: hop_k(x)_i = x[find^k(i)], or `alphabet` ("none").

    1. find by a scan: element j contributes the record r_j with r_j[a] = j if x_j = a, else −1; the
       exclusive prefix max at i, read at a = x_i, is the last earlier copy of x_i, so find(i) = that + 1.
       (2·⌈log_f L⌉ rounds, `TreeAggregation` with `scan=True`, f = s/alphabet − 1.)
    2. pointer doubling, 2 rounds per bit of k: every element holds p = find^(2^r) and a = find^(bits so
       far)(i). It asks the element at p for its p, and, when bit r of k is set, the element at a for its
       p; the answers give p ← p∘p and a ← p∘a. find is injective where defined (two positions cannot
       share the same latest earlier copy), so every element gets at most one question of each kind.
    3. one request and reply for x at a.
    Rounds: 2·⌈log_f L⌉ + 2·bit_length(k) + 2, that is O(log k) once find is known.
    """

    # Element i owns FIELDS consecutive slots of its leaf's memory, from its base slot (`_owner`) on, in
    # this order (the local function unpacks them as x, p, a, ask_p, ask_a, got_p, got_a):
    X_SLOT = 0  # x_i, the element's symbol
    P_SLOT = 1  # p = find^(2^r)(i), the pointer being doubled; −1 where undefined
    A_SLOT = 2  # a = find^(the bits of k applied so far)(i), the answer's position; −1 where undefined
    ASK_P_SLOT = 3  # a question: the position j of an element with p_j = i, which wants p_i (p ← p∘p)
    ASK_A_SLOT = 4  # a question: the position j of an element with a_j = i, which wants p_i (x_i at the end)
    GOT_P_SLOT = 5  # the answer to i's own question for p: the p of the element at p_i
    GOT_A_SLOT = 6  # the answer to i's own question for a: the p of the element at a_i (its x at the end)
    FIELDS = 7

    def __init__(self, x, hops: int, alphabet: int, memory: int = 32):
        check_count("hops", hops)
        check_count("memory", memory, minimum=2)
        check_count("alphabet", alphabet, minimum=2)
        self.x = [int(v) for v in x]
        if not self.x or not all(0 <= v < alphabet for v in self.x):
            raise ValueError(f"x: expected a non-empty sequence of symbols in 0..{alphabet - 1}")
        self.hops, self.alphabet, self.memory = hops, alphabet, memory
        self.block = min(memory // self.FIELDS, memory // alphabet - 1)
        if self.block < 1:
            raise ValueError(
                f"memory: k-hop with alphabet {alphabet} needs s >= {max(self.FIELDS, 2 * alphabet)}"
            )
        records = [tuple(j if v == a else -1 for a in range(alphabet)) for j, v in enumerate(self.x)]
        self.scan = TreeAggregation(records, memory, "max", scan=True, block=self.block)
        self.n_machines = self.scan.n_machines
        self.n_leaves = self.scan.level_sizes[0]
        self.bits = [int(b) for b in reversed(bin(hops)[2:])]  # b_0 (lowest) first
        self.start = self.scan.n_rounds  # first round of pointer doubling
        self.n_rounds = self.start + 2 * len(self.bits) + 2

    def initial_memory(self, machine: int) -> list:
        return self.scan.initial_memory(machine)

    def _owner(self, position: int) -> tuple[int, int]:
        """(leaf machine, base slot) of an element."""
        return position // self.block, (position % self.block) * self.FIELDS

    def local(self, round: int, machine: int, memory: list) -> tuple[list, list[Message]]:
        if round < self.start:
            return self.scan.local(round, machine, memory)
        if machine >= self.n_leaves:  # tree nodes are done once find is known
            return empty_memory(self.memory), []
        if round == self.start:
            memory = self._find_layout(machine, memory)
        phase, asking = divmod(round - self.start, 2)
        kept, messages = list(memory), []
        for e in range(self._count(machine)):
            base, me = e * self.FIELDS, machine * self.block + e
            x, p, a, ask_p, ask_a, got_p, got_a = kept[base : base + self.FIELDS]  # in slot order
            if asking == 0:
                if phase > 0:  # apply the answers of the previous step
                    if got_p is not None:
                        p = got_p
                    if got_a is not None:
                        a = got_a
                got_p = got_a = None
                if phase < len(self.bits):
                    if phase < len(self.bits) - 1 and p >= 0:  # p ← p∘p is needed by a later bit
                        dest, their_base = self._owner(p)
                        messages.append(Message(dest, their_base + self.ASK_P_SLOT, me))
                    if self.bits[phase] and a >= 0:
                        dest, their_base = self._owner(a)
                        messages.append(Message(dest, their_base + self.ASK_A_SLOT, me))
                elif a >= 0:  # the last step: ask for the symbol at a
                    dest, their_base = self._owner(a)
                    messages.append(Message(dest, their_base + self.ASK_A_SLOT, me))
            else:
                final = phase == len(self.bits)
                if ask_p is not None:
                    dest, their_base = self._owner(int(ask_p))
                    messages.append(Message(dest, their_base + self.GOT_P_SLOT, p))
                if ask_a is not None:
                    dest, their_base = self._owner(int(ask_a))
                    messages.append(Message(dest, their_base + self.GOT_A_SLOT, x if final else p))
                ask_p = ask_a = None
            kept[base : base + self.FIELDS] = [x, p, a, ask_p, ask_a, got_p, got_a]
        return kept, messages

    def _count(self, leaf: int) -> int:
        return len(self.x[leaf * self.block : (leaf + 1) * self.block])

    def _find_layout(self, leaf: int, memory: list) -> list:
        """Local step after the scan: turn the prefix maxima into find and lay out the doubling fields."""
        prefixes = self.scan.leaf_prefixes(leaf, memory)
        out = empty_memory(self.memory)
        for e, prefix in enumerate(prefixes):
            me = leaf * self.block + e
            x = self.x[me]
            before = prefix[x]
            p = int(before) + 1 if before >= 0 else -1
            # bit 0 is applied by the first question; a starts at the element itself
            out[e * self.FIELDS : (e + 1) * self.FIELDS] = [x, p, me, None, None, None, None]  # slot order
        return out

    def output(self, memories: list[list]) -> list[int]:
        labels = []
        for leaf in range(self.n_leaves):
            for e in range(self._count(leaf)):
                base = e * self.FIELDS
                a, got = memories[leaf][base + self.A_SLOT], memories[leaf][base + self.GOT_A_SLOT]
                labels.append(int(got) if a >= 0 and got is not None else self.alphabet)
        return labels


class Match2Protocol(Protocol):
    """Match2 in two rounds: y_i = 1 iff some x_j (j = i allowed) has x_i + x_j ≡ 0 (mod |Σ|).

    Leaves hold b = s/2 elements. Directory machine dir(v) (one per value v) learns in round 0 whether v
    occurs (a word from each leaf holding it) and who needs to know (a question from each leaf holding −v mod
    |Σ|, carrying the slot it wants the answer in); in round 1 it answers. Each directory hears from at most
    every leaf twice, so this needs 2·⌈N/b⌉ ≤ s; a larger N would put a tree under each directory.
    """

    def __init__(self, x, modulus: int, memory: int):
        check_count("modulus", modulus, minimum=2)
        check_count("memory", memory, minimum=2)
        self.x = [int(v) for v in x]
        if not self.x or not all(0 <= v < modulus for v in self.x):
            raise ValueError(f"x: expected a non-empty sequence of values in 0..{modulus - 1}")
        self.modulus, self.memory, self.block = modulus, memory, memory // 2
        self.n_leaves = math.ceil(len(self.x) / self.block)
        if 2 * self.n_leaves > memory:
            raise ValueError(
                f"memory: Match2 on N = {len(self.x)} in two rounds needs 2·⌈N/(s/2)⌉ <= s, "
                f"that is s >= {math.ceil(2 * math.sqrt(len(self.x)))} or so; got s = {memory}"
            )
        self.n_machines = self.n_leaves + modulus
        self.n_rounds = 2

    def _elements(self, leaf: int) -> list[int]:
        return self.x[leaf * self.block : (leaf + 1) * self.block]

    def _wanted(self, leaf: int) -> list[int]:
        return sorted({(-v) % self.modulus for v in self._elements(leaf)})

    def initial_memory(self, machine: int) -> list:
        memory = empty_memory(self.memory)
        if machine < self.n_leaves:
            values = self._elements(machine)
            memory[: len(values)] = values
        return memory

    def local(self, round: int, machine: int, memory: list) -> tuple[list, list[Message]]:
        messages = []
        if machine < self.n_leaves and round == 0:
            directory = self.n_leaves
            for v in sorted(set(self._elements(machine))):
                messages.append(Message(directory + v, machine, 1))
            for i, w in enumerate(self._wanted(machine)):
                messages.append(Message(directory + w, self.n_leaves + machine, self.block + i))
        elif machine >= self.n_leaves and round == 1:
            present = int(any(word is not None for word in memory[: self.n_leaves]))
            for leaf in range(self.n_leaves):
                answer_slot = memory[self.n_leaves + leaf]
                if answer_slot is not None:
                    messages.append(Message(leaf, int(answer_slot), present))
            memory = empty_memory(self.memory)
        return memory, messages

    def output(self, memories: list[list]) -> list[int]:
        labels = []
        for leaf in range(self.n_leaves):
            slot = {w: self.block + i for i, w in enumerate(self._wanted(leaf))}
            labels += [int(memories[leaf][slot[(-v) % self.modulus]]) for v in self._elements(leaf)]
        return labels
