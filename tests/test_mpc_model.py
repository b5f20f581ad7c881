"""The MPC model: the limits every round is held to, and the one round loop every executor runs."""

import pytest

from fastattn_lib import mpc
from fastattn_lib.mpc import model


class Chatty(mpc.Protocol):
    """A one-round protocol whose machine 0 sends `words` words to machine 1, one per slot of `slots`."""

    def __init__(self, memory, words, slots=None, dest=1, start=0):
        self.n_machines, self.memory, self.n_rounds = 3, memory, 1
        self.words, self.slots, self.dest, self.start = words, slots, dest, start

    def initial_memory(self, machine):
        memory = mpc.empty_memory(self.memory)
        if machine == 1:
            memory[0] = self.start
        return memory

    def local(self, round, machine, memory):
        if machine != 0:
            return memory, []
        slots = self.slots or range(1, self.words + 1)
        return [None] * self.memory, [mpc.Message(self.dest, t, 7) for t in slots]

    def output(self, memories):
        return memories[1]


class Greedy(Chatty):
    """Machines 0 and 2 both send `words` words to machine 1: each within s, together not."""

    def local(self, round, machine, memory):
        if machine == 1:
            return memory, []
        offset = 0 if machine == 0 else self.words
        messages = [mpc.Message(1, (offset + t) % self.memory, machine) for t in range(self.words)]
        return [None] * self.memory, messages


class Collide(Greedy):
    """Machines 0 and 2 both write slot 1 of machine 1."""

    def local(self, round, machine, memory):
        if machine == 1:
            return memory, []
        return [None] * self.memory, [mpc.Message(1, 1, machine)]


class Relay(mpc.Protocol):
    """Three rounds in which machine r passes the word it holds to machine r + 1."""

    n_machines, memory, n_rounds = 4, 2, 3

    def initial_memory(self, machine):
        return [10, None] if machine == 0 else [None, None]

    def local(self, round, machine, memory):
        if machine == round:
            return [None, None], [mpc.Message(machine + 1, 0, memory[0] + 1)]
        return memory, []

    def output(self, memories):
        return memories[-1][0]


# ---- the model's limits ----------------------------------------------------------------------------------


def test_a_valid_round_delivers_every_word_into_its_slot():
    run = mpc.simulate(Chatty(memory=4, words=3))
    assert run.output == [0, 7, 7, 7]
    assert run.rounds[0].sent == [3, 0, 0] and run.rounds[0].received == [0, 3, 0]
    assert run.rounds[0].max_sent == 3 and run.rounds[0].active == 2


def test_sending_more_than_s_words_raises_naming_machine_round_and_amount():
    with pytest.raises(mpc.MPCLimitError, match=r"machine 0 would send 5 words in round 0.*s = 4"):
        mpc.simulate(Chatty(memory=4, words=5, slots=[0, 1, 2, 3, 0]))


def test_receiving_more_than_s_words_raises():
    with pytest.raises(mpc.MPCLimitError, match=r"machine 1 would receive 6 words in round 0.*s = 4"):
        mpc.simulate(Greedy(memory=4, words=3))


def test_holding_more_than_s_words_raises():
    class Hoarder(Chatty):
        def initial_memory(self, machine):
            return [1] * (self.memory + 2)

    with pytest.raises(mpc.MPCLimitError, match=r"machine 0 would hold 6 words in round 0"):
        mpc.simulate(Hoarder(memory=4, words=1))


def test_misaddressed_words_raise_instead_of_vanishing():
    with pytest.raises(mpc.MPCLimitError, match="machine 0 writes slot 0, which machine 1 still holds"):
        mpc.simulate(Chatty(memory=4, words=1, slots=[0]))  # machine 1 keeps slot 0
    with pytest.raises(mpc.MPCLimitError, match="slots are 0..3"):
        mpc.simulate(Chatty(memory=4, words=1, slots=[4]))
    with pytest.raises(mpc.MPCLimitError, match="machines are 0..2"):
        mpc.simulate(Chatty(memory=4, words=1, dest=3))
    with pytest.raises(mpc.MPCLimitError, match="slot 1 is written by machines 0 and 2"):
        mpc.simulate(Collide(memory=8, words=1))


def test_a_protocol_with_impossible_sizes_is_refused_before_any_round():
    protocol = Relay()
    protocol.memory = 1
    with pytest.raises(ValueError, match="protocol.memory: expected an integer >= 2"):
        mpc.simulate(protocol)


# ---- the round loop --------------------------------------------------------------------------------------


def test_the_round_loop_plays_each_round_once_in_order_and_keeps_the_books():
    """`run_rounds` with a stand-in executor: rounds 0..R−1 each played once on the previous round's
    memories, RoundStats taken from what the executor reports, history of R + 1 memories."""
    played = []

    def play(protocol, round, memories):
        played.append(round)
        new = [[round + 1, None] for _ in memories]  # every machine now holds the round count
        return mpc.RoundResult(new, sent=[round] * 4, received=[2 * round] * 4)

    run = mpc.run_rounds(Relay(), play, record=True)
    assert played == [0, 1, 2]
    expected = [(r, [r] * 4, [2 * r] * 4) for r in range(3)]
    assert [(r.round, r.sent, r.received) for r in run.rounds] == expected
    assert [h[0] for h in run.history] == [[10, None], [1, None], [2, None], [3, None]]
    assert run.output == 3 and run.memories == run.history[-1]
    assert run.messages == []  # this executor reported none


def test_simulate_is_the_round_loop_with_the_in_process_executor(monkeypatch):
    calls, play = [], model.play_round_in_process

    def spy(protocol, round, memories):
        calls.append(round)
        result = play(protocol, round, memories)
        return result._replace(sent=[s + 100 for s in result.sent])  # a mark only the loop can carry over

    monkeypatch.setattr(model, "play_round_in_process", spy)
    run = mpc.simulate(Relay(), record=True)
    assert calls == [0, 1, 2]
    assert run.rounds[0].sent == [101, 100, 100, 100]
    assert run.output == 13
    assert run.messages == [[(r, mpc.Message(r + 1, 0, 11 + r))] for r in range(3)]
    assert [h[r][0] for r, h in enumerate(run.history)] == [10, 11, 12, 13]


def test_every_public_name_of_the_former_module_still_resolves():
    names = """Message MPCLimitError Protocol RoundStats MPCRun empty_memory words simulate DaskBackend OPS
    TreeAggregation global_sum prefix_sums StarSum KHopProtocol Match2Protocol NULL ExactMatchCodes
    TransformerRun MPCTransformer KHopTransformer build_khop_transformer Match2Transformer LayerCost
    anna_layer_mpc_cost softmax_layer_mpc_cost layer_cost_table receptive_fields""".split()
    assert [name for name in names if not hasattr(mpc, name)] == []
    assert set(names) <= set(mpc.__all__) and all(hasattr(mpc, name) for name in mpc.__all__)
