"""Massively parallel computation (MPC), and why ANNA and MPC can simulate each other.

The model (Karloff et al. 2010; the "(γ, δ)-MPC" of Sanford, Hsu and Telgarsky 2024):
q machines, each with a local memory of s words. Computation runs in synchronous rounds. In a round every
machine applies a local function to its memory, keeps some words and sends the others as messages, each
addressed to a machine; what arrives is in memory at the start of the next round. No machine may hold,
send or receive more than s words in a round. The cost of a protocol is its number of rounds.

This module holds, top to bottom:

* the model: `Message`, `Protocol` (what a protocol writes: an initial memory, a local function, an output),
  `simulate` (the in-process simulator that enforces the limits and records every round) and `DaskBackend`
  (the same protocol on a `dask.distributed` cluster, machines as partitions, a round as a shuffle);
* protocols: `TreeAggregation` (a global sum/max in ⌈log_s N⌉ − 1 rounds, or a prefix scan in twice that),
  `KHopProtocol` (find by a prefix-max scan, then pointer doubling: O(log k) rounds) and `Match2Protocol`
  (two rounds through value directories);
* ANNA built from exact matches: `ExactMatchCodes` (a code vector per symbol and LSH tables under which no
  two different codes ever share a bucket, so ANNA computes exact-match attention for every input);
* Theorem A (ANNA simulates MPC): `MPCTransformer`, one ANNA layer per round, whose attention routes every
  message to its (machine, slot) and whose MLP is the local function;
* Theorem C constructions: `build_khop_transformer` (k-hop in ⌊log₂ k⌋ + 3 layers or fewer, exact) and
  `build_match2_transformer` (one layer);
* Theorem B (MPC simulates ANNA): `anna_layer_mpc_cost` against `softmax_layer_mpc_cost`, counted;
* the Reformer separation: `reformer_receptive_field`, measured on `attention.chunked_bucket_attention`.

Words are Python numbers. A memory is a list of exactly s slots, `None` marking an empty one. Messages are
addressed to a slot of the receiver's memory, so where every word lands is part of the protocol, as it must
be for an attention layer to route it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from .attention import anna_attention, chunked_bucket_attention
from .checks import check_count
from .device import cpu_generator
from .lsh import LSHTables

# ----------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------


class Message(NamedTuple):
    """One word sent to slot `slot` of machine `dest`'s memory."""

    dest: int
    slot: int
    word: float


class MPCLimitError(ValueError):
    """A machine would hold, send or receive more than s words in a round, or misaddressed a message."""


def empty_memory(memory: int) -> list:
    return [None] * memory


def words(memory: Sequence) -> int:
    """Words a memory holds: its slots that are not None."""
    return sum(word is not None for word in memory)


class Protocol:
    """What an MPC protocol defines. Subclasses set `n_machines`, `memory` (s) and `n_rounds` (fixed in
    advance: every protocol here is oblivious, its round count depends on sizes only) and implement:

    * `initial_memory(machine)`: the input words the machine starts with (a list of s slots);
    * `local(round, machine, memory)` → `(kept, messages)`: the local function. `kept` (s slots) stays in
      memory; each `Message(dest, slot, word)` arrives in the destination's slot `slot` for the next round;
    * `output(memories)`: the result, read from the machines' final memories.
    """

    n_machines: int
    memory: int
    n_rounds: int

    def initial_memory(self, machine: int) -> list:
        raise NotImplementedError

    def local(self, round: int, machine: int, memory: list) -> tuple[list, list[Message]]:
        raise NotImplementedError

    def output(self, memories: list[list]) -> Any:
        raise NotImplementedError


@dataclass
class RoundStats:
    """Traffic of one round: words sent and received by every machine."""

    round: int
    sent: list[int]
    received: list[int]

    @property
    def max_sent(self) -> int:
        return max(self.sent, default=0)

    @property
    def max_received(self) -> int:
        return max(self.received, default=0)

    @property
    def mean_sent(self) -> float:
        return sum(self.sent) / max(1, len(self.sent))

    @property
    def mean_received(self) -> float:
        return sum(self.received) / max(1, len(self.received))

    @property
    def active(self) -> int:
        """Machines that sent or received at least one word."""
        return sum(1 for s, r in zip(self.sent, self.received, strict=True) if s or r)


@dataclass
class MPCRun:
    """The result of running a protocol: its output, final memories, and per-round traffic.

    `history[r]` is every machine's memory at the start of round r (history[0] = the input), and
    `messages[r]` the (sender, Message) pairs of round r, both kept when the run was asked to record."""

    output: Any
    memories: list[list]
    rounds: list[RoundStats]
    history: list[list[list]] = field(default_factory=list)
    messages: list[list[tuple[int, Message]]] = field(default_factory=list)

    @property
    def n_rounds(self) -> int:
        return len(self.rounds)


def _check_protocol(protocol: Protocol) -> None:
    check_count("protocol.n_machines", protocol.n_machines)
    check_count("protocol.memory", protocol.memory, minimum=2)
    check_count("protocol.n_rounds", protocol.n_rounds, minimum=0)


def _checked_memory(round: int, machine: int, memory: list, s: int, what: str) -> list:
    """The s-slot memory a machine holds; more than s words is the model's limit, not a truncation."""
    held = words(memory)
    if held > s or len(memory) > s and any(word is not None for word in memory[s:]):
        raise MPCLimitError(
            f"machine {machine} would hold {held} words in round {round} ({what}); its memory is s = {s}"
        )
    return list(memory[:s]) + [None] * (s - len(memory))


def _check_outbox(round: int, machine: int, messages: list[Message], protocol: Protocol) -> None:
    """The sender's side of a round: at most s words, each to an existing machine and slot."""
    s = protocol.memory
    if len(messages) > s:
        raise MPCLimitError(
            f"machine {machine} would send {len(messages)} words in round {round}; its memory is s = {s}"
        )
    for message in messages:
        if not 0 <= message.dest < protocol.n_machines:
            raise MPCLimitError(
                f"machine {machine}, round {round}: message to machine {message.dest}, but machines are "
                f"0..{protocol.n_machines - 1}"
            )
        if not 0 <= message.slot < s:
            raise MPCLimitError(
                f"machine {machine}, round {round}: message to slot {message.slot} of machine "
                f"{message.dest}, but slots are 0..{s - 1}"
            )


def _receive(round: int, machine: int, kept: list, incoming: list[tuple[int, Message]], s: int) -> list:
    """The receiver's side: at most s words, each into a slot that is empty and wanted by nobody else."""
    if len(incoming) > s:
        raise MPCLimitError(
            f"machine {machine} would receive {len(incoming)} words in round {round}; its memory is s = {s}"
        )
    memory, writer = list(kept), {}
    for sender, message in sorted(incoming, key=lambda item: item[0]):
        if message.slot in writer:
            raise MPCLimitError(
                f"machine {machine}, round {round}: slot {message.slot} is written by machines "
                f"{writer[message.slot]} and {sender}"
            )
        if memory[message.slot] is not None:
            raise MPCLimitError(
                f"machine {machine}, round {round}: machine {sender} writes slot {message.slot}, which "
                f"machine {machine} still holds"
            )
        writer[message.slot] = sender
        memory[message.slot] = message.word
    return _checked_memory(round, machine, memory, s, "after receiving")


def _local_step(protocol: Protocol, round: int, machine: int, memory: list) -> tuple[list, list[Message]]:
    kept, messages = protocol.local(round, machine, memory)
    kept = _checked_memory(round, machine, kept, protocol.memory, "kept by its local function")
    messages = [Message(*message) for message in messages]
    _check_outbox(round, machine, messages, protocol)
    return kept, messages


def _initial_memories(protocol: Protocol) -> list[list]:
    return [
        _checked_memory(0, machine, protocol.initial_memory(machine), protocol.memory, "its input")
        for machine in range(protocol.n_machines)
    ]


def simulate(protocol: Protocol, record: bool = False) -> MPCRun:
    """Run `protocol` round by round in this process, enforcing the model's limits.

    Raises `MPCLimitError` naming the machine, the round and the amount as soon as a machine would hold,
    send or receive more than s words (nothing is ever truncated), or writes an occupied slot.
    """
    _check_protocol(protocol)
    memories, rounds, history, sent = _initial_memories(protocol), [], [], []
    for round in range(protocol.n_rounds):
        if record:
            history.append([list(memory) for memory in memories])
        steps = [_local_step(protocol, round, m, memory) for m, memory in enumerate(memories)]
        inboxes: list[list[tuple[int, Message]]] = [[] for _ in range(protocol.n_machines)]
        for sender, (_, messages) in enumerate(steps):
            for message in messages:
                inboxes[message.dest].append((sender, message))
        if record:
            sent.append([(sender, m) for sender, (_, messages) in enumerate(steps) for m in messages])
        memories = [
            _receive(round, m, kept, inboxes[m], protocol.memory) for m, (kept, _) in enumerate(steps)
        ]
        rounds.append(RoundStats(round, [len(msgs) for _, msgs in steps], [len(inbox) for inbox in inboxes]))
    if record:
        history.append([list(memory) for memory in memories])
    return MPCRun(protocol.output(memories), memories, rounds, history, sent)


# ----------------------------------------------------------------------------------------------------
# A real distributed backend: dask.distributed
# ----------------------------------------------------------------------------------------------------


def _dask_local(item, protocol, round):
    """Machine-side half of a round on a Dask worker: run the local function and check the outbox."""
    machine, memory = item
    kept, messages = _local_step(protocol, round, machine, memory)
    return machine, kept, messages


def _dask_deliveries(stepped):
    """Everything addressed to a machine, keyed by that machine: its own kept words and its messages."""
    machine, kept, messages = stepped
    yield machine, ("kept", kept, len(messages))
    for message in messages:
        yield message.dest, ("message", machine, message)


def _dask_receive(group, protocol, round):
    """Receiver-side half of a round, after the shuffle: one machine's new memory and its traffic."""
    machine, parcels = group
    kept, sent, incoming = None, 0, []
    for parcel in parcels:
        if parcel[0] == "kept":
            _, kept, sent = parcel
        else:
            incoming.append((parcel[1], parcel[2]))
    memory = _receive(round, machine, kept, incoming, protocol.memory)
    return machine, memory, sent, len(incoming)


class DaskBackend:
    """Run protocols on a `dask.distributed` cluster: machines are the items of a Dask bag split into
    partitions, a round is a map (the local functions, on the workers) followed by a shuffle (a groupby on
    the destination, where the receive checks run), and the round barrier is the `compute` that brings
    back the new memories and the traffic counts before the next round is scheduled.

    `address`: a scheduler address for a real cluster; without it a `LocalCluster` is started (threads in
    this process when `processes=False`). Outputs and round counts equal `simulate`'s, and the same limit
    checks run on the workers. Use as a context manager, or call `close()`.
    """

    def __init__(self, address: str | None = None, n_workers: int = 2, processes: bool = True):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as err:
            raise ImportError(
                "DaskBackend needs dask.distributed: pip install 'fastattn[mpc]' (or 'dask[distributed]')"
            ) from err
        self._cluster = None
        if address is None:
            self._cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=":0",  # any free port: never collide with a running cluster
                worker_dashboard_address=":0",
            )
            address = self._cluster.scheduler_address
        self.client = Client(address)
        self.n_partitions = max(1, n_workers)

    def run(self, protocol: Protocol, record: bool = False) -> MPCRun:
        import dask.bag as db

        _check_protocol(protocol)
        memories, rounds, history = _initial_memories(protocol), [], []
        for round in range(protocol.n_rounds):
            if record:
                history.append([list(memory) for memory in memories])
            state = db.from_sequence(list(enumerate(memories)), npartitions=self.n_partitions)
            stepped = state.map(_dask_local, protocol, round)
            shuffled = stepped.map(_dask_deliveries).flatten().groupby(lambda item: item[0], shuffle="tasks")
            received = shuffled.map(lambda group: (group[0], [parcel for _, parcel in group[1]])).map(
                _dask_receive, protocol, round
            )
            result = sorted(received.compute(), key=lambda item: item[0])
            memories = [memory for _, memory, _, _ in result]
            rounds.append(RoundStats(round, [sent for *_, sent, _ in result], [got for *_, got in result]))
        if record:
            history.append([list(memory) for memory in memories])
        return MPCRun(protocol.output(memories), memories, rounds, history)

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> DaskBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------------
# Protocols
# ----------------------------------------------------------------------------------------------------

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

    FIELDS = 7  # per element: x, p, a, question for p, question for a, answer for p, answer for a

    def __init__(self, x, hops: int, alphabet: int, memory: int = 32):
        check_count("hops", hops)
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
            x, p, a, ask_p, ask_a, got_p, got_a = kept[base : base + self.FIELDS]
            if asking == 0:
                if phase > 0:  # apply the answers of the previous step
                    if got_p is not None:
                        p = got_p
                    if got_a is not None:
                        a = got_a
                got_p = got_a = None
                if phase < len(self.bits):
                    if phase < len(self.bits) - 1 and p >= 0:  # p ← p∘p is needed by a later bit
                        dest, slot = self._owner(p)
                        messages.append(Message(dest, slot + 3, me))
                    if self.bits[phase] and a >= 0:
                        dest, slot = self._owner(a)
                        messages.append(Message(dest, slot + 4, me))
                elif a >= 0:  # the last step: ask for the symbol at a
                    dest, slot = self._owner(a)
                    messages.append(Message(dest, slot + 4, me))
            else:
                final = phase == len(self.bits)
                if ask_p is not None:
                    dest, slot = self._owner(int(ask_p))
                    messages.append(Message(dest, slot + 5, p))
                if ask_a is not None:
                    dest, slot = self._owner(int(ask_a))
                    messages.append(Message(dest, slot + 6, x if final else p))
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
            out[e * self.FIELDS : (e + 1) * self.FIELDS] = [x, p, me, None, None, None, None]
        return out

    def output(self, memories: list[list]) -> list[int]:
        labels = []
        for leaf in range(self.n_leaves):
            for e in range(self._count(leaf)):
                x, p, a, _, _, _, got = memories[leaf][e * self.FIELDS : (e + 1) * self.FIELDS]
                labels.append(int(got) if a >= 0 and got is not None else self.alphabet)
        return labels


class Match2Protocol(Protocol):
    """Match2 in two rounds: y_i = 1 iff some x_j (j = i allowed) has x_i + x_j ≡ 0 (mod M).

    Leaves hold b = s/2 elements. Directory machine D_v (one per value v) learns in round 0 whether v occurs
    (a word from each leaf holding it) and who needs to know (a question from each leaf holding −v mod M,
    carrying the slot it wants the answer in); in round 1 it answers. Each directory hears from at most
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


# ----------------------------------------------------------------------------------------------------
# Exact-match attention through ANNA
# ----------------------------------------------------------------------------------------------------

NULL = -1  # an index meaning "no code": a query that should find nothing, a key nobody should find


class ExactMatchCodes:
    """Code vectors for `n_codes` symbols, and LSH tables under which ANNA is exact-match attention.

    Symbol c is the random unit vector e_c ∈ R^dim; two extra codes stand for a null query and a null key.
    A query and a key with the same code always share a bucket in all ℓ tables (equal vectors hash equally),
    so with no false collisions ANNA returns exactly the mean value of the keys whose code equals the query's:
    exact-match attention (spec §4, construction 1), for any ℓ ≥ 1. Distinct codes may still collide by
    chance (probability about (1/2·dim)^z per table for cross-polytope), and a false collision mixes a wrong
    value into the mean. The code book is finite, so this is checked, not hoped for: `false_collision_pairs`
    counts pairs of distinct codes that share a bucket in some table. With `n_hashes=None` the smallest z
    with none is chosen, and then ANNA is exact for every input, deterministically.
    """

    def __init__(
        self,
        n_codes: int,
        n_tables: int = 1,
        n_hashes: int | None = None,
        family: str = "cross_polytope",
        seed: int = 0,
        dim: int = 32,
    ):
        check_count("n_codes", n_codes)
        check_count("n_tables", n_tables)
        check_count("dim", dim, minimum=2)
        generator = cpu_generator(seed, "exact-match-codes")
        # float64 throughout: the buckets checked here are the buckets `attend` uses, and words stay exact
        draws = torch.randn(n_codes + 2, dim, generator=generator, dtype=torch.float64)
        self.vectors = nn.functional.normalize(draws, dim=-1)
        self.n_codes, self.n_tables, self.family, self.seed = n_codes, n_tables, family, seed
        auto = n_hashes is None
        n_hashes = 1 if auto else n_hashes
        check_count("n_hashes", n_hashes)
        pairs = self._false_pairs(n_hashes)
        while auto and pairs:
            n_hashes += 1  # terminates: (2·dim)^z buckets soon exceed any code book's birthday bound
            pairs = self._false_pairs(n_hashes)
        self.n_hashes, self.false_collision_pairs = n_hashes, pairs

    def _false_pairs(self, n_hashes: int) -> int:
        """Pairs of distinct codes that share a bucket in at least one of the ℓ tables."""
        tables = LSHTables(
            self.vectors.shape[1], self.n_tables, n_hashes, self.family, self.seed, device="cpu"
        )
        ids = tables.bucket_ids(self.vectors)  # (ℓ, n_codes + 2)
        shared = (ids.unsqueeze(-1) == ids.unsqueeze(-2)).any(dim=0)
        return int(shared.triu(diagonal=1).sum())

    def encode(self, index: torch.Tensor, null: int) -> torch.Tensor:
        """Code vectors for integer indices [...] → [..., dim]; NULL (−1) becomes code `null`."""
        if index.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"index: expected an integer tensor, got {index.dtype}")
        if ((index < NULL) | (index >= self.n_codes)).any():
            raise ValueError(f"index: expected values in -1..{self.n_codes - 1}")
        vectors = self.vectors.to(index.device)
        return vectors[torch.where(index == NULL, null, index)]

    def attend(self, query: torch.Tensor, key: torch.Tensor, values: torch.Tensor, causal: bool = False):
        """ANNA with query codes `query` [..., N] and key codes `key` [..., N]: the mean of `values`
        [..., N, d] over the keys whose code equals the query's (0 where there is none), in float64."""
        q, k = self.encode(query, self.n_codes), self.encode(key, self.n_codes + 1)
        v = values.to(torch.float64)
        return anna_attention(q, k, v, self.n_tables, self.n_hashes, self.family, self.seed, causal)


# ----------------------------------------------------------------------------------------------------
# Theorem A: an ANNA-transformer that carries out an MPC protocol, one layer per round
# ----------------------------------------------------------------------------------------------------


@dataclass
class TransformerRun:
    """What `MPCTransformer.run` returns: the output, final memories, and the memories after each layer."""

    output: Any
    memories: list[list]
    n_layers: int
    history: list[list[list]] = field(default_factory=list)


class MPCTransformer:
    """Theorem A (spec §4, construction 1): an R-round protocol as an ANNA-transformer of R + 1 layers.

    Tokens are machines; a token's residual stream is its memory (s words). Layer r's MLP is the local
    function of round r (it keeps some words and writes up to s outgoing words, each with its (dest, slot));
    layer r + 1's attention delivers them. The attention has s × s heads: head (a, t) carries every
    machine's a-th outgoing word if it is addressed to slot t. In that head, receiver i queries code(i) and
    sender j offers code(dest) (or a null key), value (word, 1). Exact-match ANNA returns the one word sent
    to (i, t), or (0, 0) when there is none, so summing over a gives slot t of i's new memory. Layer 0's
    attention has nothing to route (the input is in place) and the last layer's MLP computes the output.
    The simulator checks that a protocol keeps to its limits; this runs the same local functions with
    attention, not Python lists, moving the words.
    """

    def __init__(self, protocol: Protocol, n_tables: int = 1, n_hashes: int | None = None, seed: int = 0):
        _check_protocol(protocol)
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

    def run(self, record: bool = False) -> TransformerRun:
        protocol, s = self.protocol, self.protocol.memory
        memories = _initial_memories(protocol)
        history = [[list(m) for m in memories]] if record else []
        for round in range(protocol.n_rounds):
            steps = [_local_step(protocol, round, m, memory) for m, memory in enumerate(memories)]  # MLPs
            delivered = self.route([messages for _, messages in steps])  # the next layer's attention
            memories = []
            for m, (kept, _) in enumerate(steps):
                memory = list(kept)
                for t in range(s):
                    if delivered[m, t, 1] > 0.5:
                        memory[t] = _as_word(delivered[m, t, 0].item())
                memories.append(memory)
            if record:
                history.append([list(m) for m in memories])
        return TransformerRun(protocol.output(memories), memories, self.n_layers, history)


def _as_word(value: float):
    """Words travel as float64; integers come back as ints so outputs compare equal to the simulator's."""
    return int(value) if float(value).is_integer() else value


# ----------------------------------------------------------------------------------------------------
# Theorem C: k-hop in O(log k) layers and Match2 in one, hand-built
# ----------------------------------------------------------------------------------------------------


def _check_symbols(x, seq_len: int, n_symbols: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype not in (torch.int32, torch.int64):
        raise ValueError("x: expected an integer tensor [batch, N]")
    if x.dim() != 2 or x.shape[1] != seq_len:
        raise ValueError(f"x: expected shape [batch, {seq_len}], got {tuple(x.shape)}")
    if ((x < 0) | (x >= n_symbols)).any():
        raise ValueError(f"x: expected symbols in 0..{n_symbols - 1}")


class KHopTransformer(nn.Module):
    """hop_k by exact-match ANNA layers, no training (spec §4, construction 3). The residual stream holds
    a few integer fields per token; the attention heads read them through exact-match codes, and the MLPs
    are small exact integer maps (rounding, comparisons).

    1. counting: a causal head whose queries and keys are all one code averages one-hot(x_j) over j ≤ i,
       so occ(i) = (i + 1)·mean[x_i] is how many times x_i occurred up to i; a second head reads the next
       token x_{i+1} (query code(i + 1), key code(j)).
    2. find: query code(x_i, occ(i) − 1), key code(x_j, occ(j)), value (j + 1, x_{j+1}): the previous copy
       of x_i, so p_0(i) = find(i) and the symbol there.
    3. pointer doubling: p_r = find^(2^r) by query code(p_{r−1}(i)), key code(j), value p_{r−1}(j); in the
       same layer a second head composes a ← p_{r−1}∘a when bit r − 1 of k is set (bit 0 is a copy).
    4. the top bit: a ← p_{B−1}∘a; the prediction is the symbol at a, or `alphabet` ("none").
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
        _check_symbols(x, self.seq_len, self.alphabet)
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
        code = x * (n + 1) + occ
        found = self.occurrences.attend(code - 1, code, torch.stack([position + 1, nxt, one], dim=-1))
        p = torch.where(found[..., 2] > 0.5, found[..., 0].round().long(), NULL)
        symbol = found[..., 1].round().long()
        a, a_symbol = (p, symbol) if self.bits[0] else (position, x)
        steps.append(("find", p, a))

        def hop(pointer, target, target_symbol):
            """pointer(target(i)) and the symbol there, for every i: exact-match on positions."""
            out = self.positions.attend(target, position, torch.stack([pointer, target_symbol, one], -1))
            defined = out[..., 2] > 0.5
            return torch.where(defined, out[..., 0].round().long(), NULL), out[..., 1].round().long()

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
    """Match2 in one exact-match ANNA layer (spec §4, construction 4): query code((−x_i) mod M), key
    code(x_j), value 1. The mean is 1 when a partner exists and 0 when none collides, so the threshold at ½
    is the label. A false collision can only add a 1: errors are false positives."""

    def __init__(self, seq_len=32, modulus=37, n_tables=1, n_hashes=None, seed=0):
        super().__init__()
        check_count("seq_len", seq_len)
        check_count("modulus", modulus, minimum=2)
        self.seq_len, self.modulus, self.n_layers = seq_len, modulus, 1
        self.codes = ExactMatchCodes(modulus, n_tables, n_hashes, seed=seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_symbols(x, self.seq_len, self.modulus)
        mean = self.codes.attend(
            (-x) % self.modulus, x, torch.ones_like(x, dtype=torch.float64).unsqueeze(-1)
        )
        return (mean[..., 0] > 0.5).long()


# ----------------------------------------------------------------------------------------------------
# Theorem B: what it costs MPC to run one attention layer (counted, not run)
# ----------------------------------------------------------------------------------------------------


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
    """Spec §4, construction 2. Token machines hold ⌊s/3m⌋ tokens and compute q, k, v. For each of the
    ℓ tables every key sends (v, 1), m + 1 words, to the machine that owns its bucket: N·ℓ·(m + 1) words,
    so ⌈N·ℓ·(m + 1)/s⌉ bucket machines. A bucket too big for one machine is summed by an aggregation tree
    of fan-in f = ⌊s/(m + 1)⌋ and its sum sent back down the same tree to the queries that read it:
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
    """Softmax attention needs every (query, key) score: a machine holding t = ⌊s/(2m + 1)⌋ queries and
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


# ----------------------------------------------------------------------------------------------------
# The Reformer separation, measured
# ----------------------------------------------------------------------------------------------------


def receptive_fields(n: int, bucket_size: int, n_layers: int, dim: int = 16, seed: int = 0) -> dict:
    """How many inputs the best-connected output depends on after 1..n_layers layers.

    Reformer: `attention.chunked_bucket_attention` on random shared query-keys (fresh ones per layer); its
    weight matrix is read off by attending over the identity (out = W·I), and dependence composes as the
    boolean product of the layers' patterns. Each output sees at most 2·bucket_size inputs per layer, so at
    most (2·bucket_size)^L after L. ANNA: one layer whose queries and keys are all equal already depends on
    all N (the global average). Returns {"reformer", "reformer_bound", "anna"}, lists over layers.
    """
    check_count("n", n, minimum=2)
    check_count("n_layers", n_layers)
    identity = torch.eye(n)
    generator = cpu_generator(seed, "receptive-field")
    depends, reformer = torch.eye(n), []
    for layer in range(n_layers):
        x = torch.randn(n, dim, generator=generator)
        pattern = (chunked_bucket_attention(x, identity, bucket_size, seed=seed + layer) != 0).float()
        depends = ((pattern @ depends) > 0).float()
        reformer.append(int(depends.sum(dim=1).max()))
    same = torch.ones(n, dim)
    anna_pattern = anna_attention(same, same, identity, n_tables=1, n_hashes=1) != 0
    anna = [int(anna_pattern.sum(dim=1).max())] * n_layers
    bound = [min(n, (2 * bucket_size) ** (layer + 1)) for layer in range(n_layers)]
    return {"reformer": reformer, "reformer_bound": bound, "anna": anna}
