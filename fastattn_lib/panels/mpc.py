"""Notebook 03 (MPC): pictures of protocols and of the ANNA-transformers built from them, and two panels.

* `stepping_update(round)`: one protocol (prefix sums) run by the simulator and by its ANNA-transformer;
  the memories at the start of MPC round r next to the residual streams after transformer layer r.
* `khop_update(hops, seq_len, memory, n_tables, n_hashes)`: the k-hop MPC protocol's traffic per round
  against the memory s, and the hand-built k-hop ANNA-transformer at (ℓ, z): depth, errors and false
  collisions on random sequences (z = 0 picks the smallest z without false collisions).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import mpc, tasks
from ..device import resolve_device
from .common import Panel, device_options, dropdown, slider

# ----------------------------------------------------------------------------------------------------
# Static pictures
# ----------------------------------------------------------------------------------------------------


def traffic_figure(run: mpc.MPCRun, memory: int, title: str) -> go.Figure:
    """Per round: the most words any machine sent and received, against the limit s."""
    figure = go.Figure()
    _add_traffic(figure, run, memory)
    figure.update_layout(title=title, width=620, height=340, barmode="group")
    figure.update_xaxes(title="round")
    figure.update_yaxes(title="words per machine")
    return figure


def _add_traffic(figure: go.Figure, run: mpc.MPCRun, memory: int, **where) -> None:
    rounds = [r.round for r in run.rounds]
    figure.add_bar(x=rounds, y=[r.max_sent for r in run.rounds], name="most sent", **where)
    figure.add_bar(x=rounds, y=[r.max_received for r in run.rounds], name="most received", **where)
    figure.add_scatter(
        x=[-0.5, max(rounds, default=0) + 0.5],
        y=[memory, memory],
        mode="lines",
        line={"dash": "dash", "color": "black"},
        name="memory s",
        **where,
    )


def flow_figure(run: mpc.MPCRun, title: str) -> go.Figure:
    """Every message of a recorded run as a line from (round r, sender) to (round r + 1, receiver); a
    machine's dot is sized by the words it holds at the start of that round."""
    if not run.history:
        raise ValueError("run: record it with simulate(protocol, record=True) to draw its messages")
    xs, ys = [], []
    for r, messages in enumerate(run.messages):
        for sender, message in messages:
            xs += [r, r + 1, None]
            ys += [sender, message.dest, None]
    figure = go.Figure()
    figure.add_scatter(x=xs, y=ys, mode="lines", line={"width": 1, "color": "#1f77b4"}, name="message")
    held = [
        (r, m, mpc.words(memory))
        for r, memories in enumerate(run.history)
        for m, memory in enumerate(memories)
    ]
    figure.add_scatter(
        x=[r for r, _, _ in held],
        y=[m for _, m, _ in held],
        mode="markers",
        marker={"size": [4 + 2 * w for _, _, w in held], "color": "#ff7f0e"},
        text=[f"machine {m}: {w} words" for _, m, w in held],
        name="machine (size = words held)",
    )
    figure.update_layout(title=title, width=620, height=420)
    figure.update_xaxes(title="round", dtick=1)
    figure.update_yaxes(title="machine", autorange="reversed")
    return figure


def depth_figure(max_hops: int = 64) -> go.Figure:
    """Layers of the hand-built k-hop ANNA-transformer against k, next to one hop per layer."""
    ks = list(range(1, max_hops + 1))
    depth = [mpc.KHopTransformer.depth(k) for k in ks]
    figure = go.Figure()
    figure.add_scatter(x=ks, y=depth, mode="lines+markers", name="ANNA, pointer doubling")
    figure.add_scatter(x=ks, y=[k + 1 for k in ks], mode="lines", name="one hop per layer (k + 1)")
    figure.add_scatter(
        x=ks, y=[np.ceil(np.log2(k)) + 3 for k in ks], mode="lines", line={"dash": "dot"}, name="⌈log₂ k⌉ + 3"
    )
    figure.update_layout(title="depth needed for k-hop", width=620, height=380)
    figure.update_xaxes(title="hops k")
    figure.update_yaxes(title="layers")
    return figure


def khop_window_figure(hops: list[int], window_depths: dict, anna_depths: list[int]) -> go.Figure:
    """Depth needed for k-hop against k: sliding windows (measured reach, one line per window W) next to
    the layers of the hand-built ANNA-transformer."""
    figure = go.Figure()
    for window, depths in window_depths.items():
        figure.add_scatter(x=hops, y=depths, mode="lines+markers", name=f"sliding window, W = {window}")
    figure.add_scatter(
        x=hops, y=anna_depths, mode="lines+markers", line={"color": "black", "width": 3}, name="ANNA (built)"
    )
    figure.update_layout(title="k-hop: depth before every answer is within reach", width=620, height=380)
    figure.update_xaxes(title="hops k")
    figure.update_yaxes(title="layers", rangemode="tozero")
    return figure


def cost_figure(rows: list[dict]) -> go.Figure:
    """Machines MPC needs for one attention layer, ANNA against softmax (log-log)."""
    ns = [row["N"] for row in rows]
    figure = go.Figure()
    figure.add_scatter(x=ns, y=[row["ANNA machines"] for row in rows], mode="lines+markers", name="ANNA")
    figure.add_scatter(
        x=ns, y=[row["softmax machines"] for row in rows], mode="lines+markers", name="softmax"
    )
    figure.update_layout(title="MPC machines to run one attention layer", width=620, height=380)
    figure.update_xaxes(title="tokens N", type="log")
    figure.update_yaxes(title="machines", type="log")
    return figure


def receptive_figure(fields: dict, n: int, bucket_size: int) -> go.Figure:
    """Inputs an output depends on after L layers: Reformer (measured, and its bound) against ANNA."""
    layers = list(range(1, len(fields["reformer"]) + 1))
    figure = go.Figure()
    figure.add_scatter(
        x=layers, y=fields["reformer"], mode="lines+markers", name=f"Reformer, B = {bucket_size}"
    )
    figure.add_scatter(
        x=layers, y=fields["reformer_bound"], mode="lines", line={"dash": "dot"}, name="bound (2B)^L"
    )
    figure.add_scatter(x=layers, y=fields["anna"], mode="lines+markers", name="ANNA, all queries = keys")
    figure.update_layout(title=f"receptive field, N = {n}", width=620, height=380)
    figure.update_xaxes(title="layers L", dtick=1)
    figure.update_yaxes(title="inputs seen by one output", type="log")
    return figure


# ----------------------------------------------------------------------------------------------------
# Panel 1: MPC rounds next to transformer layers
# ----------------------------------------------------------------------------------------------------

STEPPING_VALUES = tuple(range(1, 25))
STEPPING_MEMORY = 4


@lru_cache(maxsize=1)
def stepping_runs():
    """The prefix sums of 1..24 with s = 4, by the simulator and by its ANNA-transformer, recorded."""
    protocol = mpc.prefix_sums(list(STEPPING_VALUES), STEPPING_MEMORY)
    return protocol, mpc.simulate(protocol, record=True), mpc.MPCTransformer(protocol).run(record=True)


@dataclass
class SteppingData:
    round: int
    n_rounds: int
    simulated: np.ndarray  # (machines, s), NaN where a slot is empty
    transformer: np.ndarray
    identical: bool


def _grid(memories: list[list]) -> np.ndarray:
    return np.array([[np.nan if w is None else float(w) for w in memory] for memory in memories])


def stepping_update(round: int) -> SteppingData:
    protocol, simulated, transformer = stepping_runs()
    if not 0 <= round <= protocol.n_rounds:
        raise ValueError(f"round: expected 0..{protocol.n_rounds}, got {round}")
    left, right = simulated.history[round], transformer.history[round]
    return SteppingData(round, protocol.n_rounds, _grid(left), _grid(right), left == right)


def stepping_figures() -> list[go.Figure]:
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.12)
    for col in (1, 2):
        figure.add_heatmap(
            z=[[0]], colorscale="Viridis", showscale=col == 2, texttemplate="%{z}", row=1, col=col
        )
        figure.update_xaxes(title="memory slot", row=1, col=col)
        figure.update_yaxes(title="machine = token", autorange="reversed", row=1, col=col)
    figure.update_layout(width=900, height=460)
    return [figure]


def draw_stepping(figures, data: SteppingData) -> None:
    (figure,) = figures
    for trace, grid in zip(figure.data, (data.simulated, data.transformer), strict=True):
        trace.z = [[None if np.isnan(v) else v for v in row] for row in grid]  # plain lists for plotly.js
    verdict = "identical" if data.identical else "DIFFERENT"
    figure.layout.title = (
        f"start of MPC round {data.round} (left) | after transformer layer {data.round} (right): {verdict}"
    )


def stepping_panel(round: int = 0) -> Panel:
    """Slider over rounds: the simulator's memories next to the ANNA-transformer's residual streams."""
    protocol = stepping_runs()[0]
    controls = {"round": slider("round r", round, 0, protocol.n_rounds)}
    figures = [go.FigureWidget(figure) for figure in stepping_figures()]
    return Panel(controls, figures, stepping_update, draw_stepping)


# ----------------------------------------------------------------------------------------------------
# Panel 2: k-hop, MPC rounds and ANNA layers, live
# ----------------------------------------------------------------------------------------------------

ALPHABET = 4
PANEL_BATCH = 32


@lru_cache(maxsize=32)
def khop_model(hops, seq_len, n_tables, n_hashes):
    return mpc.build_khop_transformer(hops, seq_len, ALPHABET, n_tables, n_hashes or None)


@dataclass
class KHopData:
    hops: int
    seq_len: int
    memory: int
    run: mpc.MPCRun
    n_layers: int
    n_hashes: int  # the z used (chosen when asked for 0)
    false_pairs: int
    error: float


def khop_update(hops, seq_len, memory, n_tables, n_hashes, device="auto") -> KHopData:
    """One random sequence through the MPC protocol, 32 through the ANNA-transformer at (ℓ, z)."""
    x, y = tasks.khop(PANEL_BATCH, seq_len, ALPHABET, hops, seed=hops)
    run = mpc.simulate(mpc.KHopProtocol(x[0].tolist(), hops, ALPHABET, memory))
    if run.output != y[0].tolist():
        raise AssertionError("the MPC protocol disagrees with the task's labels")
    model = khop_model(hops, seq_len, n_tables, n_hashes)
    predictions = model(x.to(resolve_device(device))).cpu()
    chosen = max(codes.n_hashes for codes in model.code_books)  # with z = 0, each code book's own
    return KHopData(
        hops,
        seq_len,
        memory,
        run,
        model.n_layers,
        chosen,
        model.false_collision_pairs,
        float((predictions != y).float().mean()),
    )


def khop_figures() -> list[go.Figure]:
    traffic = go.Figure()
    traffic.update_layout(
        title="k-hop in MPC: words per machine and round", width=620, height=360, barmode="group"
    )
    traffic.update_xaxes(title="round")
    traffic.update_yaxes(title="words per machine")
    depth = go.Figure()
    depth.add_bar(x=["MPC rounds", "ANNA layers", "one hop per layer"], y=[0, 0, 0])
    depth.update_layout(width=480, height=360)
    depth.update_yaxes(title="rounds / layers")
    return [traffic, depth]


def draw_khop(figures, data: KHopData) -> None:
    traffic, depth = figures
    traffic.data = []
    _add_traffic(traffic, data.run, data.memory)
    depth.data[0].y = [data.run.n_rounds, data.n_layers, data.hops + 1]
    depth.layout.title = (
        f"k = {data.hops}, N = {data.seq_len}: error {data.error:.1%} at z = {data.n_hashes} "
        f"({data.false_pairs} false pairs)"
    )


def khop_panel(device="auto", **overrides) -> Panel:
    """Live panel: hops k, length N, memory s, tables ℓ and hashes z (0 = the smallest exact z)."""
    values = {"hops": 5, "seq_len": 100, "memory": 32, "n_tables": 1, "n_hashes": 0, "device": device}
    values.update(overrides)
    controls = {
        "hops": slider("k (hops)", values["hops"], 1, 32),
        "seq_len": slider("N", values["seq_len"], 20, 200, 10),
        "memory": slider("s (words)", values["memory"], 16, 64, 4),
        "n_tables": slider("ℓ (tables)", values["n_tables"], 1, 16),
        "n_hashes": slider("z (0 = auto)", values["n_hashes"], 0, 8),
        "device": dropdown("device", values["device"], device_options()),
    }
    figures = [go.FigureWidget(figure) for figure in khop_figures()]
    return Panel(controls, figures, khop_update, draw_khop)
