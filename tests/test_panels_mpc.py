"""Notebook 03's panels: stepping an MPC protocol and the hand-built k-hop transformer."""

import numpy as np
import pytest

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
