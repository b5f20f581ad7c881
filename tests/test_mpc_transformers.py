"""ANNA-transformers built by hand: a protocol run by attention layers (ANNA simulates MPC), k-hop in
O(log k) layers and Match2 in one."""

import math

import pytest
import torch

from fastattn_lib import mpc, tasks

PROTOCOLS = {
    "global_sum": lambda: mpc.global_sum(list(range(40)), 3),
    "prefix_sums": lambda: mpc.prefix_sums([i % 5 for i in range(40)], 4),
    "khop": lambda: mpc.KHopProtocol(
        tasks.khop(1, seq_len=30, alphabet=3, hops=5, seed=2)[0][0].tolist(), 5, 3, 24
    ),
    "match2": lambda: mpc.Match2Protocol(tasks.match2(1, seed=5)[0][0].tolist(), 37, 16),
}


def traffic(run):
    return [(r.round, r.sent, r.received) for r in run.rounds]


# ---- ANNA simulates MPC ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROTOCOLS)
def test_anna_transformer_runs_a_protocol_round_for_round(name):
    protocol = PROTOCOLS[name]()
    simulated = mpc.simulate(protocol, record=True)
    for n_tables in (1, 3):
        transformer = mpc.MPCTransformer(protocol, n_tables=n_tables)
        assert transformer.codes.false_collision_pairs == 0
        run = transformer.run(record=True)
        assert run.output == simulated.output
        assert run.n_layers == simulated.n_rounds + 1
        assert run.history == simulated.history  # memory after every layer = memory after every round
        # the same loop keeps the same books: what attention delivered is what the simulator handed over
        assert traffic(run) == traffic(simulated)


def test_the_transformer_plays_its_rounds_through_the_shared_loop(monkeypatch):
    protocol = PROTOCOLS["prefix_sums"]()
    transformer = mpc.MPCTransformer(protocol)
    calls, play = [], transformer.play_round

    def spy(protocol, round, memories):
        calls.append(round)
        result = play(protocol, round, memories)
        return result._replace(received=[r + 100 for r in result.received])  # carried over by the loop only

    monkeypatch.setattr(transformer, "play_round", spy)
    run = transformer.run()
    assert calls == list(range(protocol.n_rounds))
    expected = [[r + 100 for r in stats.received] for stats in mpc.simulate(protocol).rounds]
    assert [stats.received for stats in run.rounds] == expected


def test_the_transformer_enforces_the_receive_limit_like_the_simulator():
    star = mpc.StarSum(list(range(100)), memory=8)  # machine 0 would receive 13 words
    with pytest.raises(mpc.MPCLimitError, match=r"machine 0 would receive 13 words in round 0.*s = 8"):
        mpc.MPCTransformer(star).run()
    with pytest.raises(ValueError, match="the protocol it was built for"):
        mpc.MPCTransformer(star).play_round(mpc.StarSum(list(range(10)), 8), 0, [])


# ---- k-hop and Match2 --------------------------------------------------------------------------------------


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


def test_khop_transformer_reads_a_pointer_averaged_past_the_end_as_pointing_nowhere():
    # ℓ = 8 tables of z = 2 hashes: false collisions in the find head average positions up to N
    x, y = tasks.khop(32, 100, 4, 5, seed=5)
    model = mpc.build_khop_transformer(5, seq_len=100, alphabet=4, n_tables=8, n_hashes=2)
    predictions, steps = model(x, trace=True)
    pointers = torch.stack([p for _, p, _ in steps if p is not None])
    assert ((pointers >= -1) & (pointers < 100)).all(), "every pointer is a position or NULL"
    assert ((predictions >= 0) & (predictions <= 4)).all() and (predictions != y).any()


def test_khop_transformer_checks_its_input_and_takes_any_integer_ids():
    model = mpc.build_khop_transformer(2, seq_len=10, alphabet=3)
    with pytest.raises(ValueError, match=r"x: expected token ids \[batch, N = 10\], got shape \(2, 9\)"):
        model(torch.zeros(2, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x: expected token ids in 0..2"):
        model(torch.full((1, 10), 3))
    with pytest.raises(ValueError, match="hops: expected an integer >= 1"):
        mpc.build_khop_transformer(0, seq_len=10, alphabet=3)
    x, y = tasks.khop(4, seq_len=10, alphabet=3, hops=2, seed=1)
    assert torch.equal(model(x.to(torch.int32)), y) and torch.equal(model(x.to(torch.int8)), y)


def test_match2_in_one_layer_and_false_collisions_only_add_positives():
    x, y = tasks.match2(64, seed=9)
    exact = mpc.Match2Transformer()
    assert exact.n_layers == 1 and torch.equal(exact(x), y)
    assert torch.equal(exact(x.to(torch.int32)), y)
    sloppy = mpc.Match2Transformer(n_tables=8, n_hashes=1)
    predicted = sloppy(x)
    assert sloppy.codes.false_collision_pairs > 0 and (predicted != y).any()
    assert ((predicted == 0) & (y == 1)).sum() == 0  # a true partner is never missed
    with pytest.raises(ValueError, match=r"x: expected token ids in 0..36"):
        exact(torch.full((1, 32), 37))


@pytest.mark.gpu
def test_khop_transformer_on_cuda_matches_cpu():
    x, y = tasks.khop(16, seq_len=100, alphabet=4, hops=9)
    model = mpc.build_khop_transformer(9, seq_len=100, alphabet=4)
    assert torch.equal(model(x.to("cuda")).cpu(), y)
