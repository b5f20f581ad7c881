"""Notebook 03's panels: stepping an MPC protocol and the hand-built k-hop transformer."""

import numpy as np
import pytest
import torch

from fastattn_lib import exercises, mpc, tasks
from fastattn_lib.panels import mpc as mpc_panels


def test_stepping_update_shows_identical_memories_round_by_round():
    protocol, simulated, _ = mpc_panels.stepping_runs()
    last = mpc_panels.stepping_update(protocol.n_rounds)
    assert last.identical and last.n_rounds == simulated.n_rounds
    leaves, block, values = protocol.level_sizes[0], protocol.block, mpc_panels.STEPPING_VALUES
    assert np.nansum(last.simulated[:leaves, :block]) == sum(values)  # the leaves' own values
    offsets = last.simulated[1:leaves, block]  # delivered by the down-sweep: the sums before each leaf
    assert offsets.tolist() == [sum(values[: leaf * block]) for leaf in range(1, leaves)]
    with pytest.raises(ValueError, match="round"):
        mpc_panels.stepping_update(protocol.n_rounds + 1)


def test_khop_update_reports_rounds_layers_and_false_collisions():
    exact = mpc_panels.khop_update(hops=6, seq_len=60, memory=32, n_tables=2, n_hashes=0, device="cpu")
    assert exact.error == 0 and exact.false_pairs == 0 and exact.n_layers == 5
    assert all(r.max_sent <= 32 and r.max_received <= 32 for r in exact.run.rounds)
    coarse = mpc_panels.khop_update(hops=6, seq_len=60, memory=32, n_tables=2, n_hashes=1, device="cpu")
    assert coarse.n_hashes == 1 and coarse.false_pairs > 0 and coarse.error > 0


def test_mpc_panels_redraw():
    stepping = mpc_panels.stepping_panel()
    before = np.array(stepping.figures[0].data[0].z, dtype=float)
    stepping.controls["round"].value = 2
    assert stepping.last_error is None
    assert not np.array_equal(before, np.array(stepping.figures[0].data[0].z, dtype=float), equal_nan=True)
    khop = mpc_panels.khop_panel(device="cpu", seq_len=40)
    bars = list(khop.figures[1].data[0].y)
    khop.controls["hops"].value = 20
    assert khop.last_error is None and list(khop.figures[1].data[0].y) != bars


def test_khop_window_figure_draws_one_line_per_window_and_annas_depth():
    figure = mpc_panels.khop_window_figure([1, 2, 4], {4: [3, 5, 9], 8: [2, 3, 5]}, [2, 4, 5])
    assert [list(trace.y) for trace in figure.data] == [[3, 5, 9], [2, 3, 5], [2, 4, 5]]
    assert figure.layout.xaxis.title.text == "hops k"


# ---- the checks the notebook used to make by moving its own panels ---------------------------------------


def test_stepping_panel_at_the_last_round_shows_identical_memories_and_redraws():
    stepping = mpc_panels.stepping_panel()
    protocol = mpc_panels.stepping_runs()[0]
    before = np.array(stepping.figures[0].data[0].z, dtype=float)
    stepping.controls["round"].value = protocol.n_rounds
    assert stepping.last_error is None and stepping.data.identical
    assert not np.array_equal(before, np.array(stepping.figures[0].data[0].z, dtype=float), equal_nan=True)
    assert "identical" in stepping.figures[0].layout.title.text


def test_khop_panel_tables_and_hashes_change_the_answers_drawn():
    khop = mpc_panels.khop_panel(device="cpu", seq_len=60)
    answers = khop.figures[2]
    assert khop.data.error == 0 and not np.any(answers.data[0].z)  # z = 0: the smallest exact z
    bars = list(khop.figures[1].data[0].y)
    khop.controls["hops"].value = 9
    assert khop.last_error is None and khop.data.error == 0 and list(khop.figures[1].data[0].y) != bars
    khop.controls["n_hashes"].value = 1  # z = 1: false collisions, wrong answers drawn in the strip
    coarse = np.array(answers.data[0].z)
    assert khop.data.n_hashes == 1 and coarse.sum() > 0 and "z = 1" in answers.layout.title.text
    khop.controls["n_tables"].value = 4  # more tables, more false pairs: other answers go wrong
    assert khop.data.false_pairs > 0 and not np.array_equal(coarse, np.array(answers.data[0].z))
    assert "ℓ = 4" in answers.layout.title.text


def test_khop_update_at_coarse_hashes_answers_with_errors_instead_of_crashing():
    coarse = mpc_panels.khop_update(hops=5, seq_len=100, memory=32, n_tables=8, n_hashes=2, device="cpu")
    assert coarse.false_pairs > 0 and 0 < coarse.error < 1


# ---- what the notebook's cells call -------------------------------------------------------------------


def test_a_round_written_from_scratch_runs_on_the_library_simulator():
    def shift(r, i, memory):  # every machine passes its word on to the next (the last to machine 0)
        return [None, i], [((i + 1) % 3, 0, memory[0] + r)]

    start = [[10, None], [20, None], [30, None]]
    run = mpc.simulate(mpc_panels.ScratchProtocol(shift, start, n_rounds=2))
    assert run.output == [[21, 0], [31, 1], [11, 2]] and run.n_rounds == 2
    with pytest.raises(mpc.MPCLimitError, match="would receive 3 words"):  # the library's limits apply to it
        mpc.simulate(mpc_panels.ScratchProtocol(lambda r, i, m: ([None, None], [(0, i % 2, 1)]), start, 1))


def test_khop_transformer_pointers_are_find_composed_with_itself():
    x, _ = tasks.khop(1, seq_len=40, alphabet=4, seed=3)
    find = tasks.find_pointers(x, 4)[0].tolist()
    for r in range(4):
        position = list(range(40))
        for _ in range(2**r):  # find applied 2^r times, one hop at a time
            position = [find[j] if j >= 0 else -1 for j in position]
        assert mpc_panels.khop_transformer_pointers(x, doublings=r) == position


def test_tree_and_khop_rounds():
    rows = mpc_panels.tree_rounds(10_000, memories=(10, 100))
    assert [(r.rounds, r.expected, r.total) for r in rows] == [(3, 3, 10_000), (1, 1, 10_000)]
    assert all(r.max_received <= r.memory for r in rows)
    x, _ = tasks.khop(1, seq_len=60, alphabet=4, seed=0)
    khop = mpc_panels.khop_doubling_rounds(x, 5)
    assert all(r.right for r in khop) and [r.after_find for r in khop] == [4, 6, 6, 8, 8]
    assert len({r.scan for r in khop}) == 1
    assert "find" in mpc_panels.khop_example_text(x, tasks.khop_labels(x, 4, 2))


def test_exercise_answers_agree_with_the_library():
    rounds = mpc.simulate(mpc.global_sum([1] * 50_000, 12)).n_rounds
    assert exercises.EXERCISES["mpc_tree_rounds"].solution() == rounds
    assert exercises.EXERCISES["mpc_khop_depth"].solution() == mpc.build_khop_transformer(100, 8, 4).n_layers
    z = exercises.EXERCISES["mpc_smallest_exact_z"].solution()
    exact = mpc.build_khop_transformer(5, 100, 4, n_tables=1, n_hashes=z)
    coarser = mpc.build_khop_transformer(5, 100, 4, n_tables=1, n_hashes=z - 1)
    assert exact.false_collision_pairs == 0 < coarser.false_collision_pairs


def test_khop_transformer_checks_traces_and_hashing_rows():
    checks = mpc_panels.check_khop_transformers(4, n_check=4, seq_len=30)
    assert [c.exact for c in checks] == [True] * 4 and [c.n_layers for c in checks] == [2, 4, 4, 5]
    x, y = tasks.khop(1, seq_len=20, alphabet=4, hops=5, seed=0)
    text, predictions = mpc_panels.trace_text(x, mpc.build_khop_transformer(5, 20, 4))
    assert torch.equal(predictions, y) and "double: find^2" in text and "prediction" in text
    x, y = tasks.khop(8, seq_len=40, alphabet=4, hops=3, seed=0)
    rows = mpc_panels.khop_hashing_rows(x, y, hops=3, tables=(1,), hashes=(1, None))
    assert rows[0].false_pairs > 0 and rows[0].error > 0 and rows[1].false_pairs == 0 == rows[1].error


def test_match2_costs_low_rank_and_correspondence():
    x, y = tasks.match2(16, seed=0)
    coarse, exact = mpc_panels.match2_rows(x, y, hashes=(1, None))
    assert coarse.error > 0 and coarse.missed == 0 and exact.error == 0
    table = mpc_panels.cost_text(mpc.layer_cost_table([1000, 10_000], width=64, n_tables=8, delta=0.25))
    assert len(table.splitlines()) == 3 and "softmax machines" in table
    rows = [
        {"N": 10, "ANNA machines": 3.0, "softmax machines": 5.0},
        {"N": 1000, "ANNA machines": 30.0, "softmax machines": 5e3},
    ]
    assert mpc_panels.growth_exponents(rows) == pytest.approx({"ANNA machines": 0.5, "softmax machines": 1.5})
    checks = [mpc.check_low_rank(16, fan_in=4)]
    assert len(mpc_panels.low_rank_text(checks, checks).splitlines()) == 2
    figure = mpc_panels.correspondence_figure()
    texts = " ".join(annotation.text for annotation in figure.layout.annotations)
    for word in ("machine i", "token i", "residual stream", "the MLP", "local function", "slot t", "heads"):
        assert word in texts
