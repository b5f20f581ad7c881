"""The MPC model, its protocols against direct computations, and the ANNA-transformers built from them."""

import itertools
import math
import os

import pytest
import torch

from fastattn_lib import attention, mpc, tasks


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


# ------------------------------------------------------------------------------------------------
# The model's limits
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# Protocols against direct computations
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# Exact-match codes and Theorem A
# ------------------------------------------------------------------------------------------------


def test_exact_match_codes_give_exact_match_attention():
    codes = mpc.ExactMatchCodes(40, n_tables=3)
    assert codes.false_collision_pairs == 0
    generator = torch.Generator().manual_seed(0)
    query = torch.randint(-1, 40, (2, 50), generator=generator)
    key = torch.randint(-1, 40, (2, 50), generator=generator)
    values = torch.randn(2, 50, 3, generator=generator, dtype=torch.float64)
    out = codes.attend(query, key, values)
    match = ((query.unsqueeze(-1) == key.unsqueeze(-2)) & (query.unsqueeze(-1) >= 0)).double()
    expected = match @ values / match.sum(-1, keepdim=True).clamp(min=1)
    assert torch.allclose(out, expected, atol=1e-6)
    assert match.sum() > 0 and (match.sum(-1) == 0).any()  # both cases occur


def test_too_few_hashes_leave_false_collisions_and_they_are_counted():
    assert mpc.ExactMatchCodes(200, n_tables=4, n_hashes=1).false_collision_pairs > 0
    assert mpc.ExactMatchCodes(200, n_tables=4).false_collision_pairs == 0


@pytest.mark.parametrize(
    "protocol",
    [
        mpc.global_sum(list(range(40)), 3),
        mpc.prefix_sums([i % 5 for i in range(40)], 4),
        mpc.KHopProtocol(tasks.khop(1, seq_len=30, alphabet=3, hops=5, seed=2)[0][0].tolist(), 5, 3, 24),
        mpc.Match2Protocol(tasks.match2(1, seed=5)[0][0].tolist(), 37, 16),
    ],
    ids=["global_sum", "prefix_sums", "khop", "match2"],
)
def test_anna_transformer_runs_a_protocol_round_for_round(protocol):
    simulated = mpc.simulate(protocol, record=True)
    for n_tables in (1, 3):
        transformer = mpc.MPCTransformer(protocol, n_tables=n_tables)
        assert transformer.codes.false_collision_pairs == 0
        run = transformer.run(record=True)
        assert run.output == simulated.output
        assert run.n_layers == simulated.n_rounds + 1
        assert run.history == simulated.history  # memory after every layer = memory after every round


# ------------------------------------------------------------------------------------------------
# Theorem C constructions
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hops", range(1, 33))
def test_khop_transformer_is_exact_with_logarithmic_depth(hops):
    x, y = tasks.khop(32, seq_len=100, alphabet=4, hops=hops, seed=100 + hops)
    model = mpc.build_khop_transformer(hops, seq_len=100, alphabet=4)
    assert torch.equal(model(x), y)
    assert model.n_layers <= math.ceil(math.log2(hops)) + 3
    assert model.n_layers == (2 if hops == 1 else hops.bit_length() + 2)
    assert (y != 4).float().mean() > 0.05  # defined chains are tested, not only "none"


@pytest.mark.parametrize("n_tables", [1, 2, 8])
def test_khop_transformer_stays_exact_for_any_number_of_tables(n_tables):
    x, y = tasks.khop(16, seq_len=60, alphabet=3, hops=6, seed=n_tables)
    model = mpc.build_khop_transformer(6, seq_len=60, alphabet=3, n_tables=n_tables, seed=11)
    assert model.false_collision_pairs == 0
    assert torch.equal(model(x), y)


def test_khop_transformer_with_too_few_hashes_makes_errors():
    x, y = tasks.khop(32, seq_len=100, alphabet=4, hops=3, seed=0)
    model = mpc.build_khop_transformer(3, seq_len=100, alphabet=4, n_hashes=1)
    assert model.false_collision_pairs > 0
    assert (model(x) != y).float().mean() > 0.1


def test_khop_transformer_checks_its_input():
    model = mpc.build_khop_transformer(2, seq_len=10, alphabet=3)
    with pytest.raises(ValueError, match=r"x: expected shape \[batch, 10\]"):
        model(torch.zeros(2, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="x: expected symbols in 0..2"):
        model(torch.full((1, 10), 3))
    with pytest.raises(ValueError, match="hops: expected an integer >= 1"):
        mpc.build_khop_transformer(0, seq_len=10, alphabet=3)


def test_match2_in_one_layer_and_false_collisions_only_add_positives():
    x, y = tasks.match2(64, seed=9)
    exact = mpc.Match2Transformer()
    assert exact.n_layers == 1 and torch.equal(exact(x), y)
    sloppy = mpc.Match2Transformer(n_tables=8, n_hashes=1)
    predicted = sloppy(x)
    assert sloppy.codes.false_collision_pairs > 0 and (predicted != y).any()
    assert ((predicted == 0) & (y == 1)).sum() == 0  # a true partner is never missed


@pytest.mark.gpu
def test_khop_transformer_on_cuda_matches_cpu():
    x, y = tasks.khop(16, seq_len=100, alphabet=4, hops=9)
    model = mpc.build_khop_transformer(9, seq_len=100, alphabet=4)
    assert torch.equal(model(x.to("cuda")).cpu(), y)


# ------------------------------------------------------------------------------------------------
# Theorem B counts and the Reformer separation
# ------------------------------------------------------------------------------------------------


def test_anna_needs_near_linear_machines_and_softmax_near_quadratic():
    ns = [10**3, 10**4, 10**5, 10**6]
    rows = mpc.layer_cost_table(ns, width=64, n_tables=8, delta=0.25)
    anna = [row["ANNA machines"] for row in rows]
    soft = [row["softmax machines"] for row in rows]
    slope = lambda ys: math.log(ys[-1] / ys[0]) / math.log(ns[-1] / ns[0])  # noqa: E731
    # machines hold N^δ tokens: ANNA's count grows like N^(1−δ), softmax's like N^(2(1−δ))
    assert slope(anna) == pytest.approx(0.75, abs=0.1)
    assert slope(soft) == pytest.approx(1.5, abs=0.1)
    assert all(row["ANNA rounds"] <= 2 + 2 * 4 for row in rows)  # O(1/δ) rounds: trees of fan-in > N^δ
    cost = mpc.anna_layer_mpc_cost(10**4, 64, 8, memory=65 * 100)
    assert cost.total_words >= 10**4 * 8 * 65  # room for every (v, 1) message of every table


def test_reformer_receptive_field_grows_by_at_most_2b_per_layer_and_anna_sees_everything_at_once():
    n, bucket = 256, 4
    fields = mpc.receptive_fields(n, bucket, n_layers=5)
    assert fields["anna"][0] == n
    assert all(r <= b for r, b in zip(fields["reformer"], fields["reformer_bound"], strict=True))
    assert fields["reformer"][0] < n
    first_full = next(i + 1 for i, r in enumerate(fields["reformer"]) if r == n)
    assert first_full >= attention.layers_for_global_average(n, 2 * bucket) > 1


# ------------------------------------------------------------------------------------------------
# Dask backend
# ------------------------------------------------------------------------------------------------


def _require_dask():
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("dask.distributed is missing; the Makefile installs the 'mpc' extra")
        pytest.skip("dask.distributed is not installed (pip install 'fastattn[mpc]')")


@pytest.fixture(scope="module")
def dask_backend():
    _require_dask()
    with mpc.DaskBackend(processes=False) as backend:
        yield backend


@pytest.mark.parametrize(
    "protocol",
    [
        mpc.prefix_sums(list(range(30)), 4),
        mpc.KHopProtocol(tasks.khop(1, seq_len=40, alphabet=4, hops=3, seed=4)[0][0].tolist(), 3, 4, 32),
    ],
    ids=["prefix_sums", "khop"],
)
def test_dask_backend_equals_the_simulator(dask_backend, protocol):
    simulated = mpc.simulate(protocol, record=True)
    distributed = dask_backend.run(protocol, record=True)
    assert distributed.output == simulated.output
    assert distributed.n_rounds == simulated.n_rounds
    assert [(r.sent, r.received) for r in distributed.rounds] == [
        (r.sent, r.received) for r in simulated.rounds
    ]
    assert distributed.history == simulated.history


def test_dask_backend_enforces_the_limits_on_the_workers(dask_backend):
    with pytest.raises(mpc.MPCLimitError, match="machine 1 would receive 6 words in round 0"):
        dask_backend.run(Greedy(memory=4, words=3))


def test_dask_backend_with_worker_processes():
    _require_dask()
    protocol = mpc.global_sum(list(range(50)), 3)
    with mpc.DaskBackend(n_workers=2, processes=True) as backend:
        assert backend.run(protocol).output == sum(range(50))
