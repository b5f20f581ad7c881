"""MPC protocols against direct computations, with their round counts and the model's limits."""

import itertools
import math

import pytest

from fastattn_lib import mpc, tasks


@pytest.mark.parametrize(("n", "s"), [(1, 2), (7, 2), (100, 2), (100, 3), (64, 4), (65, 4), (1000, 10)])
def test_aggregation_tree_sums_in_ceil_log_s_n_minus_one_rounds(n, s):
    values = [(7 * i) % 13 - 5 for i in range(n)]
    run = mpc.simulate(mpc.global_sum(values, s))
    assert run.output == sum(values)
    # the leaves start with s words each, so a tree of ⌈log_s N⌉ levels needs one round fewer
    assert run.n_rounds == max(0, math.ceil(math.log(n, s) - 1e-9) - 1)
    assert all(r.max_sent <= s and r.max_received <= s for r in run.rounds)


@pytest.mark.parametrize(("n", "s"), [(1, 3), (10, 3), (50, 4), (200, 5)])
def test_prefix_sums_match_a_running_sum(n, s):
    values = [(i * i) % 11 for i in range(n)]
    protocol = mpc.prefix_sums(values, s)
    run = mpc.simulate(protocol)
    assert run.output == [0, *itertools.accumulate(values)][:n]
    assert run.n_rounds == 2 * protocol.height
    assert protocol.height == (math.ceil(math.log(math.ceil(n / (s - 1)), s - 1) - 1e-9) if n > s - 1 else 0)


def test_scan_of_records_takes_componentwise_maxima():
    records = [((i * 5) % 7, -(i % 3)) for i in range(30)]
    run = mpc.simulate(mpc.TreeAggregation(records, memory=8, op="max", scan=True))
    expected = [(-math.inf, -math.inf)] + [
        tuple(max(r[c] for r in records[:i]) for c in range(2)) for i in range(1, 30)
    ]
    assert run.output == expected


def test_the_star_sum_is_one_round_until_machine_0_cannot_receive_it():
    assert mpc.simulate(mpc.StarSum(list(range(64)), memory=8)).output == sum(range(64))  # N = s²
    with pytest.raises(mpc.MPCLimitError, match=r"machine 0 would receive 9 words in round 0.*s = 8"):
        mpc.simulate(mpc.StarSum(list(range(65)), memory=8))


@pytest.mark.parametrize("hops", [1, 2, 3, 4, 7, 8, 13])
def test_khop_protocol_matches_the_task_labels_in_o_log_k_rounds(hops):
    x, y = tasks.khop(6, seq_len=48, alphabet=4, hops=hops, seed=hops)
    for row in range(len(x)):
        protocol = mpc.KHopProtocol(x[row].tolist(), hops, alphabet=4, memory=32)
        run = mpc.simulate(protocol)
        assert run.output == y[row].tolist()
        assert run.n_rounds == protocol.scan.n_rounds + 2 * hops.bit_length() + 2
        assert all(r.max_sent <= 32 and r.max_received <= 32 for r in run.rounds)
    assert (y != 4).any()  # some chains are defined, so the check is not all "none"


def test_khop_protocol_questions_and_answers_land_in_their_named_slots():
    """After the first question round of pointer doubling, the element at find(i) holds i in its
    ASK_P slot; a round later i holds find(find(i)) in its GOT_P slot."""
    x = [0, 1, 0, 1, 0, 1, 0, 1]  # find(i) = i − 1 for i ≥ 2 (the previous copy is two back, plus one)
    protocol = mpc.KHopProtocol(x, hops=2, alphabet=2, memory=14)
    run = mpc.simulate(protocol, record=True)
    assert run.output == [2, 2, 2, 1, 0, 1, 0, 1]  # hop_2: x[i − 2] for i ≥ 3, else none (2)
    K = mpc.KHopProtocol

    def field(memories, i, slot):
        leaf, e = divmod(i, protocol.block)
        return memories[leaf][e * K.FIELDS + slot]

    asked, answered = run.history[protocol.start + 1], run.history[protocol.start + 2]
    assert field(asked, 4, K.P_SLOT) == 3 and field(asked, 3, K.ASK_P_SLOT) == 4
    assert field(answered, 4, K.GOT_P_SLOT) == 2  # find(find(4)) = find(3) = 2


def test_match2_protocol_matches_the_task_labels_in_two_rounds():
    x, y = tasks.match2(8, seq_len=32, modulus=37, seed=3)
    for row in range(len(x)):
        run = mpc.simulate(mpc.Match2Protocol(x[row].tolist(), modulus=37, memory=16))
        assert run.output == y[row].tolist() and run.n_rounds == 2
    with pytest.raises(ValueError, match="memory: Match2 on N = 32"):
        mpc.Match2Protocol(x[0].tolist(), modulus=37, memory=6)


def test_protocol_arguments_are_checked():
    with pytest.raises(ValueError, match="memory: a scan of width 1 needs s >= 3"):
        mpc.prefix_sums([1, 2, 3], 2)
    with pytest.raises(ValueError, match="op: expected one of"):
        mpc.TreeAggregation([1, 2], 4, op="min")
    with pytest.raises(ValueError, match="x: expected a non-empty sequence of symbols in 0..3"):
        mpc.KHopProtocol([0, 4], 1, 4)
    with pytest.raises(ValueError, match="hops: expected an integer >= 1"):
        mpc.KHopProtocol([0, 1], 0, 4)
    with pytest.raises(ValueError, match="memory: expected an integer >= 2"):
        mpc.KHopProtocol([0, 1], 1, 4, memory=32.0)
