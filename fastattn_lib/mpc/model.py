"""The MPC model: machines with s words of memory that compute in synchronous rounds, and the one round
loop every executor of this package shares.

A round: every machine applies its local function to its memory, keeps some words and sends the others
as messages, each addressed to a (machine, slot); what arrives is in the receiver's memory at the start
of the next round. No machine may hold, send or receive more than s words in a round, and a message must
land in a slot that is empty and that no other message wants. The cost of a protocol is its number of
rounds.

A protocol only writes its local function (`Protocol`). Running it is the business of `run_rounds`, the
round loop: it lays out the input, asks an executor to play each round, records the traffic
(`RoundStats`) and, on request, every memory, and reads the output (`MPCRun`). Executors differ only in
how a round is played, that is in how the messages travel:

* `play_round_in_process`: Python lists in this process; `simulate` is the loop with this executor;
* `dask_backend.DaskBackend.play_round`: a map and a shuffle on a `dask.distributed` cluster;
* `transformers.MPCTransformer.play_round`: one exact-match ANNA attention layer.

Whatever moves the words, every executor enforces the model's limits with the same checks (`local_step`
on the sender's side, `check_inbox` and `receive` on the receiver's), which raise `MPCLimitError` naming
the machine, the round and the amount: nothing is ever truncated.

Words are Python numbers. A memory is a list of exactly s slots, `None` marking an empty one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..checks import check_protocol

# ---- machines, messages and protocols ------------------------------------------------------------------


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


# ---- what a run reports --------------------------------------------------------------------------------


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
    `messages[r]` the (sender, Message) pairs of round r, both kept when the run was asked to record
    (`messages` only by executors that see the messages in this process: not `DaskBackend`)."""

    output: Any
    memories: list[list]
    rounds: list[RoundStats]
    history: list[list[list]] = field(default_factory=list)
    messages: list[list[tuple[int, Message]]] = field(default_factory=list)

    @property
    def n_rounds(self) -> int:
        return len(self.rounds)


# ---- the model's limits --------------------------------------------------------------------------------


def checked_memory(round: int, machine: int, memory: list, s: int, what: str) -> list:
    """The s-slot memory a machine holds; more than s words is the model's limit, not a truncation."""
    held = words(memory)
    if held > s or len(memory) > s and any(word is not None for word in memory[s:]):
        raise MPCLimitError(
            f"machine {machine} would hold {held} words in round {round} ({what}); its memory is s = {s}"
        )
    return list(memory[:s]) + [None] * (s - len(memory))


def initial_memories(protocol: Protocol) -> list[list]:
    """Every machine's input, checked against s."""
    return [
        checked_memory(0, machine, protocol.initial_memory(machine), protocol.memory, "its input")
        for machine in range(protocol.n_machines)
    ]


def check_outbox(round: int, machine: int, messages: list[Message], protocol: Protocol) -> None:
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


def local_step(protocol: Protocol, round: int, machine: int, memory: list) -> tuple[list, list[Message]]:
    """One machine's local function, with the sender's limits checked: (kept memory, outgoing messages)."""
    kept, messages = protocol.local(round, machine, memory)
    kept = checked_memory(round, machine, kept, protocol.memory, "kept by its local function")
    messages = [Message(*message) for message in messages]
    check_outbox(round, machine, messages, protocol)
    return kept, messages


def inboxes(n_machines: int, outboxes: list[list[Message]]) -> list[list[tuple[int, Message]]]:
    """The messages of a round sorted by receiver: (sender, Message) pairs, senders in order."""
    boxes: list[list[tuple[int, Message]]] = [[] for _ in range(n_machines)]
    for sender, messages in enumerate(outboxes):
        for message in messages:
            boxes[message.dest].append((sender, message))
    return boxes


def check_inbox(round: int, machine: int, kept: list, incoming: list[tuple[int, Message]], s: int) -> None:
    """The receiver's side of a round: at most s words, each into a slot that is empty and wanted by
    nobody else."""
    if len(incoming) > s:
        raise MPCLimitError(
            f"machine {machine} would receive {len(incoming)} words in round {round}; its memory is s = {s}"
        )
    writer = {}
    for sender, message in sorted(incoming, key=lambda item: item[0]):
        if message.slot in writer:
            raise MPCLimitError(
                f"machine {machine}, round {round}: slot {message.slot} is written by machines "
                f"{writer[message.slot]} and {sender}"
            )
        if kept[message.slot] is not None:
            raise MPCLimitError(
                f"machine {machine}, round {round}: machine {sender} writes slot {message.slot}, which "
                f"machine {machine} still holds"
            )
        writer[message.slot] = sender


def receive(round: int, machine: int, kept: list, incoming: list[tuple[int, Message]], s: int) -> list:
    """A machine's memory for the next round: what it kept, with every incoming word in its slot."""
    check_inbox(round, machine, kept, incoming, s)
    memory = list(kept)
    for _, message in incoming:
        memory[message.slot] = message.word
    return checked_memory(round, machine, memory, s, "after receiving")


# ---- the round loop ------------------------------------------------------------------------------------


class RoundResult(NamedTuple):
    """What an executor reports for one round: every machine's memory for the next round, the words each
    sent and received, and the (sender, Message) pairs, or None when the messages never came back to this
    process."""

    memories: list[list]
    sent: list[int]
    received: list[int]
    messages: list[tuple[int, Message]] | None = None


# play_round(protocol, round, memories) -> RoundResult: one round, however the messages travel
PlayRound = Callable[[Protocol, int, list[list]], RoundResult]


def run_rounds(protocol: Protocol, play_round: PlayRound, record: bool = False) -> MPCRun:
    """The round loop: lay out the input, play `protocol.n_rounds` rounds with `play_round`, and read the
    output. With `record`, keep every machine's memory at the start of each round and after the last one
    (`MPCRun.history`), and the messages of each round where the executor reports them."""
    check_protocol(protocol)
    memories, rounds, history, messages = initial_memories(protocol), [], [], []
    for round in range(protocol.n_rounds):
        if record:
            history.append([list(memory) for memory in memories])
        result = play_round(protocol, round, memories)
        memories = result.memories
        rounds.append(RoundStats(round, list(result.sent), list(result.received)))
        if record and result.messages is not None:
            messages.append(result.messages)
    if record:
        history.append([list(memory) for memory in memories])
    return MPCRun(protocol.output(memories), memories, rounds, history, messages)


def play_round_in_process(protocol: Protocol, round: int, memories: list[list]) -> RoundResult:
    """The plain executor: every local function here, the messages handed over as Python lists."""
    steps = [local_step(protocol, round, m, memory) for m, memory in enumerate(memories)]
    outboxes = [messages for _, messages in steps]
    boxes = inboxes(protocol.n_machines, outboxes)
    new = [receive(round, m, kept, boxes[m], protocol.memory) for m, (kept, _) in enumerate(steps)]
    sent = [(sender, message) for sender, messages in enumerate(outboxes) for message in messages]
    return RoundResult(new, [len(o) for o in outboxes], [len(box) for box in boxes], sent)


def simulate(protocol: Protocol, record: bool = False) -> MPCRun:
    """Run `protocol` round by round in this process, enforcing the model's limits.

    Raises `MPCLimitError` naming the machine, the round and the amount as soon as a machine would hold,
    send or receive more than s words (nothing is ever truncated), or writes an occupied slot.
    """
    return run_rounds(protocol, play_round_in_process, record)
