"""Low-rank attention as an MPC protocol: the simulator and the ANNA-transformer against the formula."""

import math

import pytest
import torch

from fastattn_lib import attention, mpc
from fastattn_lib.mpc.low_rank import LowRankProtocol, memory_for_fan_in, tree_height


def qkv(n, m=2, d=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, width, generator=generator, dtype=torch.float64) for width in (m, m, d))


@pytest.mark.parametrize(("n", "fan_in"), [(1, 2), (2, 2), (7, 2), (7, 3), (16, 4), (17, 4), (100, 10)])
def test_simulated_protocol_equals_low_rank_attention_in_two_tree_heights(n, fan_in):
    q, k, v = qkv(n, seed=n)
    protocol = LowRankProtocol(q, k, v, memory_for_fan_in(fan_in, 2, 2))
    run = mpc.simulate(protocol)
    assert protocol.fan_in == fan_in
    assert torch.allclose(run.output, attention.low_rank_attention(q, k, v), rtol=1e-12, atol=1e-12)
    assert run.n_rounds == 2 * tree_height(n, fan_in) == 2 * max(0, math.ceil(math.log(n, fan_in) - 1e-9))
    assert all(r.max_sent <= protocol.memory and r.max_received <= protocol.memory for r in run.rounds)


def test_rounds_stay_constant_when_the_fan_in_grows_like_sqrt_n_and_grow_with_a_fixed_fan_in():
    sqrt_rounds, fixed_rounds = [], []
    for n in (16, 64, 256, 1024):
        q, k, v = qkv(n, m=1, d=1, seed=n)
        wide = LowRankProtocol(q, k, v, memory_for_fan_in(math.ceil(math.sqrt(n)), 1, 1))
        narrow = LowRankProtocol(q, k, v, memory_for_fan_in(2, 1, 1))
        sqrt_rounds.append(wide.n_rounds)
        fixed_rounds.append(narrow.n_rounds)
    assert sqrt_rounds == [4, 4, 4, 4]
    assert fixed_rounds == [2 * int(math.log2(n)) for n in (16, 64, 256, 1024)]


def test_anna_layers_compute_the_same_output_one_layer_per_round():
    q, k, v = qkv(9, m=2, d=1, seed=3)
    protocol = LowRankProtocol(q, k, v, memory_for_fan_in(3, 2, 1))
    simulated = mpc.simulate(protocol, record=True)
    run = mpc.MPCTransformer(protocol).run(record=True)
    assert run.n_layers == protocol.n_rounds + 1 == 5
    assert torch.allclose(run.output, attention.low_rank_attention(q, k, v), rtol=1e-12, atol=1e-12)
    assert torch.allclose(run.output, simulated.output, rtol=1e-12, atol=1e-12)


def test_the_root_really_holds_s_and_z_after_the_up_sweep():
    q, k, v = qkv(8, m=2, d=2, seed=5)
    protocol = LowRankProtocol(q, k, v, memory_for_fan_in(2, 2, 2))
    run = mpc.simulate(protocol, record=True)
    root = run.history[protocol.height][protocol.n_machines - 1]
    held = torch.tensor(root[: 2 * protocol.width], dtype=torch.float64).view(2, -1).sum(0)
    phi_k = torch.nn.functional.elu(k) + 1
    expected = torch.cat([(phi_k.T @ v).flatten(), phi_k.sum(0)])
    assert torch.allclose(held, expected, rtol=1e-12)


def test_bad_arguments_name_themselves():
    q, k, v = qkv(4)
    with pytest.raises(ValueError, match="memory"):
        LowRankProtocol(q, k, v, memory=17)  # w = 6 needs s >= 18
    with pytest.raises(ValueError, match="q"):
        LowRankProtocol(q[None], k[None], v[None], memory=18)
    with pytest.raises(ValueError, match="fan_in"):
        memory_for_fan_in(1, 2, 2)


def test_check_low_rank_reports_rounds_layers_and_a_float_sized_error():
    simulated = mpc.check_low_rank(30, fan_in=6, seed=1)
    assert simulated.rounds == 2 * tree_height(30, 6) == 4 and simulated.layers is None
    assert simulated.memory == memory_for_fan_in(6, 2, 2) and simulated.error < 1e-12
    by_anna = mpc.check_low_rank(8, fan_in=3, d_v=1, seed=1, by_anna=True)
    assert by_anna.layers == by_anna.rounds + 1 == 5 and by_anna.error < 1e-12
