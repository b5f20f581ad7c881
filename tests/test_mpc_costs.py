"""MPC simulating ANNA, counted: MPC machines and rounds for one ANNA layer against one softmax layer."""

import math

import pytest

from fastattn_lib import mpc


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


def test_machines_too_small_for_one_token_are_refused():
    with pytest.raises(ValueError, match=r"memory: expected s >= 3·width = 192 words"):
        mpc.anna_layer_mpc_cost(100, 64, 8, memory=100)
    with pytest.raises(ValueError, match=r"memory: expected s >= 2·width \+ 1 = 129 words"):
        mpc.softmax_layer_mpc_cost(100, 64, memory=100)
