"""Notebook 03 (MPC): pictures of protocols and of the ANNA-transformers built from them, the checks and
tables the notebook prints (so its cells stay short), and two panels.

* `ScratchProtocol`: a reader's own local function run by the library's simulator, to check a round
  written from scratch against `mpc.simulate`;
* `correspondence_figure()`: the diagram of "ANNA simulates MPC": machine ↔ token, memory ↔ residual
  stream, slot ↔ head, local function ↔ MLP, round ↔ layer;
* `stepping_update(round)`: one protocol (prefix sums) run by the simulator and by its ANNA-transformer;
  the memories at the start of MPC round r next to the residual streams after transformer layer r.
* `khop_update(hops, seq_len, memory, n_tables, n_hashes)`: the k-hop MPC protocol's traffic per round
  against the memory s, and the hand-built k-hop ANNA-transformer at (ℓ, z): its depth, and which of its
  answers on 32 random sequences are wrong, with the false collisions behind them (z = 0 picks the
  smallest z without false collisions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .. import mpc, tasks
from ..device import resolve_device
from .common import Panel, device_options, dropdown, setup_plotly, slider
from .static import combined_views, precomputed_figure

ALPHABET = 4  # the k-hop examples' alphabet


def setup(device: str = "auto") -> torch.device:
    """The notebook's first steps: plotly for live and exported figures, the device, said aloud."""
    setup_plotly()
    resolved = resolve_device(device)
    print(f"computing on {resolved}")
    return resolved


# ----------------------------------------------------------------------------------------------------
# Section 1: aggregation trees
# ----------------------------------------------------------------------------------------------------


@dataclass
class TreeRounds:
    memory: int
    rounds: int  # measured by the simulator
    expected: int  # ⌈log_s N⌉ − 1
    max_received: int
    total: float  # the sum the root computed


def tree_rounds(n: int, memories=(10, 100, 1000)) -> list[TreeRounds]:
    """A global sum of N ones by the aggregation tree for each memory s: measured rounds next to
    ⌈log_s N⌉ − 1 (the leaves start with s words each, so one level needs no round)."""
    rows = []
    for s in memories:
        run = mpc.simulate(mpc.global_sum([1] * n, memory=s))
        expected = math.ceil(math.log(n, s) - 1e-9) - 1
        most = max((r.max_received for r in run.rounds), default=0)
        rows.append(TreeRounds(s, run.n_rounds, expected, most, run.output))
    return rows


# ----------------------------------------------------------------------------------------------------
# Section 2: a round and pointer doubling from scratch, checked by the library
# ----------------------------------------------------------------------------------------------------


class ScratchProtocol(mpc.Protocol):
    """A local function written from scratch, `local(r, i, memory) -> (kept, [(dest, slot, word), ...])`,
    run by the library's simulator from the given memories (all of one length s), for `n_rounds` rounds.
    The output is the final memories, so a hand-written round loop can be compared with `mpc.simulate`,
    whose limit checks (at most s words held, sent and received) then also apply."""

    def __init__(self, local: Callable, memories: list[list], n_rounds: int):
        self.reader_local, self.start = local, [list(memory) for memory in memories]
        self.n_machines, self.memory, self.n_rounds = len(memories), len(memories[0]), n_rounds

    def initial_memory(self, machine: int) -> list:
        return list(self.start[machine])

    def local(self, round: int, machine: int, memory: list):
        kept, messages = self.reader_local(round, machine, list(memory))
        return kept, [mpc.Message(*message) for message in messages]

    def output(self, memories: list[list]) -> list[list]:
        return memories


def khop_transformer_pointers(x: torch.Tensor, doublings: int) -> list[int]:
    """f_d(i) = find^(2^d)(i) for d = `doublings`, as the hand-built k-hop ANNA-transformer's doubling
    layers compute it (the pointer field of its trace), for the one sequence x [1, N] over 4 symbols."""
    model = mpc.build_khop_transformer(2**doublings, x.shape[1], ALPHABET)
    _, steps = model(x, trace=True)
    return steps[1 + doublings][1][0].tolist()  # steps: counts, find, then one per doubling


def khop_example_text(x: torch.Tensor, y: torch.Tensor) -> str:
    """One k-hop example x, y [1, N] as aligned rows: position, symbol x_i, find(i) and the answer
    (`ALPHABET` = none); "-" where find is undefined."""

    def fmt(values, none):
        return " ".join(f"{v:>2}" if v != none else " -" for v in values)

    pointers = tasks.find_pointers(x, ALPHABET)[0].tolist()
    rows = [("position", fmt(range(x.shape[1]), None)), ("x", fmt(x[0].tolist(), None))]
    rows += [("find", fmt(pointers, -1)), ("answer", fmt(y[0].tolist(), ALPHABET))]
    return "\n".join(f"{name:<9}: {values}" for name, values in rows)


@dataclass
class KHopRounds:
    hops: int
    scan: int  # rounds of the prefix-max scan that computes find (the same for every k)
    after_find: int  # rounds after the scan: pointer doubling, then 2 to read the answer's symbol
    right: bool  # the protocol's output equals the task's labels


def khop_doubling_rounds(x: torch.Tensor, max_hops: int, memory: int = 32) -> list[KHopRounds]:
    """For k = 1..max_hops: the rounds of `mpc.KHopProtocol` on the sequence x [1, N], split into the scan
    that computes find and the rounds after it (doubling and reading), and whether its answers equal the
    task's labels."""
    rows = []
    for k in range(1, max_hops + 1):
        protocol = mpc.KHopProtocol(x[0].tolist(), hops=k, alphabet=ALPHABET, memory=memory)
        run = mpc.simulate(protocol)
        right = run.output == tasks.khop_labels(x, ALPHABET, k)[0].tolist()
        scan = protocol.scan.n_rounds
        rows.append(KHopRounds(k, scan, run.n_rounds - scan, right))
    return rows


# ----------------------------------------------------------------------------------------------------
# Section 3: the correspondence, drawn
# ----------------------------------------------------------------------------------------------------

CORRESPONDENCE = (
    ("machine i", "token i", "one token per machine"),
    ("its memory: s words", "its residual stream: s coordinates", "word t is coordinate t"),
    ("slot t of a memory", "the heads that write coordinate t", "a head per slot (and per outgoing word)"),
    (
        "a message: word w to (machine j, slot t)",
        "in a head of slot t: key code(j), value (w, 1);<br>token j queries code(j)",
        "exact match: distinct codes never share a bucket",
    ),
    ("the local function", "the MLP", "local work is free; the MLP computes it"),
    (
        "round r: compute, then send",
        "layer r's MLP computes;<br>layer r + 1's attention delivers",
        "R rounds → L = R + 1 layers",
    ),
)


def correspondence_figure() -> go.Figure:
    """The diagram of "ANNA simulates MPC": each MPC notion (left) next to the part of an ANNA-transformer
    that plays it (right), with how (on the arrow)."""
    figure = go.Figure()
    for row, (left, right, how) in enumerate(CORRESPONDENCE):
        y = -row
        for x0, x1, text, colour in ((0, 0.34, left, "#dbe9f6"), (0.66, 1, right, "#fde3c8")):
            figure.add_shape(
                type="rect",
                x0=x0,
                x1=x1,
                y0=y - 0.38,
                y1=y + 0.38,
                fillcolor=colour,
                line={"color": "#555", "width": 1},
            )
            figure.add_annotation(x=(x0 + x1) / 2, y=y, text=text, showarrow=False, font={"size": 13})
        figure.add_annotation(
            x=0.655,
            y=y,
            ax=0.345,
            ay=y,
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            text="",
            showarrow=True,
            arrowhead=2,
            arrowside="end+start",
            arrowwidth=1.5,
        )
        figure.add_annotation(x=0.5, y=y + 0.2, text=how, showarrow=False, font={"size": 11, "color": "#444"})
    for x, title in ((0.17, "<b>MPC protocol</b>"), (0.83, "<b>ANNA-transformer</b>")):
        figure.add_annotation(x=x, y=0.75, text=title, showarrow=False, font={"size": 15})
    figure.update_xaxes(visible=False, range=[-0.02, 1.02])
    figure.update_yaxes(visible=False, range=[-len(CORRESPONDENCE) + 0.4, 1.0])
    figure.update_layout(
        title="ANNA simulates MPC: who plays what",
        width=960,
        height=520,
        plot_bgcolor="white",
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure


# ----------------------------------------------------------------------------------------------------
# Section 4: the hand-built k-hop ANNA-transformer
# ----------------------------------------------------------------------------------------------------


@dataclass
class KHopCheck:
    hops: int
    exact: bool  # every answer right on the random sequences
    n_layers: int


def check_khop_transformers(max_hops: int, n_check: int, seq_len: int = 100, seed: int = 0, device="cpu"):
    """For k = 1..max_hops: the hand-built ANNA-transformer (exact codes) on `n_check` random sequences."""
    checks = []
    for k in range(1, max_hops + 1):
        x, y = tasks.khop(n_check, seq_len=seq_len, alphabet=ALPHABET, hops=k, seed=seed + k)
        model = mpc.build_khop_transformer(k, seq_len=seq_len, alphabet=ALPHABET).to(device)
        checks.append(KHopCheck(k, torch.equal(model(x.to(device)).cpu(), y), model.n_layers))
    return checks


def trace_text(x: torch.Tensor, model) -> tuple[str, torch.Tensor]:
    """The layer-by-layer trace of a k-hop transformer on one sequence x [1, N], as aligned text rows:
    x, then after each layer p (= f_d = find^(2^d) after d doublings) and a (the answer pointer), then the
    prediction."""

    def fmt(row):
        return " ".join(f"{v:>2}" if v >= 0 else " -" for v in row.tolist())

    predictions, steps = model(x, trace=True)
    lines = [f"{'position':<30} {fmt(torch.arange(x.shape[1]))}", f"{'x':<30} {fmt(x[0])}"]
    for name, p, a in steps[1:]:
        lines += [f"{name + ': p':<30} {fmt(p[0])}", f"{'   a (answer pointer)':<30} {fmt(a[0])}"]
    lines.append(f"{f'prediction ({model.alphabet} = none)':<30} {fmt(predictions[0])}")
    return "\n".join(lines), predictions


@dataclass
class HashingRow:
    n_tables: int
    n_hashes: int | None  # None: the smallest z without false collisions
    false_pairs: int
    error: float


def khop_hashing_rows(x, y, hops: int, tables=(1, 4), hashes=(1, 2, 3, 4, None)) -> list[HashingRow]:
    """The hand-built k-hop transformer's error on (x, y) for every (ℓ, z), with its false collision pairs."""
    rows = []
    for n_tables in tables:
        for n_hashes in hashes:
            model = mpc.build_khop_transformer(hops, x.shape[1], ALPHABET, n_tables, n_hashes)
            wrong = khop_answers(model, x, y)
            rows.append(HashingRow(n_tables, n_hashes, model.false_collision_pairs, float(wrong.mean())))
    return rows


@dataclass
class Match2Row:
    n_hashes: int | None
    error: float
    missed: int  # true partners the model did not find


def match2_rows(x, y, hashes=(1, None), n_tables: int = 8) -> list[Match2Row]:
    """The one-layer Match2 transformer at each z: its error and the true partners it missed."""
    rows = []
    for n_hashes in hashes:
        predicted = mpc.Match2Transformer(n_tables=n_tables, n_hashes=n_hashes)(x)
        missed = int(((predicted == 0) & (y == 1)).sum())
        rows.append(Match2Row(n_hashes, float((predicted != y).float().mean()), missed))
    return rows


# ----------------------------------------------------------------------------------------------------
# Sections 5 to 7: costs, low rank, Dask
# ----------------------------------------------------------------------------------------------------


def cost_text(rows: list[dict]) -> str:
    """`mpc.layer_cost_table`'s rows as an aligned table."""
    widths = (9, 7, 12, 14, 15, 17)
    header = ("N", "s", "ANNA rounds", "ANNA machines", "softmax rounds", "softmax machines")
    lines = [" ".join(f"{name:>{w}}" for name, w in zip(header, widths, strict=True))]
    for row in rows:
        lines.append(
            f"{row['N']:>9,} {row['s (words)']:>7,} {row['ANNA rounds']:>12} {row['ANNA machines']:>14,} "
            f"{row['softmax rounds']:>15} {row['softmax machines']:>17,}"
        )
    return "\n".join(lines)


def low_rank_text(wide: list, narrow: list) -> str:
    """Two lists of `mpc.LowRankCheck` (fan-in ⌈√N⌉ and fan-in 2) side by side."""
    head = f"{'N':>6} {'F = ⌈√N⌉':>9} {'s':>5} {'rounds':>7}   {'F = 2':>5} {'s':>4} {'rounds':>7}"
    lines = [head + "   largest error"]
    for a, b in zip(wide, narrow, strict=True):
        lines.append(
            f"{a.n:>6} {a.fan_in:>9} {a.memory:>5} {a.rounds:>7}   "
            f"{b.fan_in:>5} {b.memory:>4} {b.rounds:>7}   {max(a.error, b.error):.1e}"
        )
    return "\n".join(lines)


@dataclass
class DaskRun:
    name: str
    rounds: int
    identical: bool  # same output and rounds as the in-process simulator


def dask_runs(seed: int = 0, n_workers: int = 2) -> list[DaskRun] | None:
    """Prefix sums and a 3-hop protocol on a local Dask cluster (threads), each compared with
    `mpc.simulate`; None when Dask is not installed."""
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        return None
    x, _ = tasks.khop(1, seq_len=40, alphabet=ALPHABET, hops=3, seed=seed)
    protocols = [mpc.prefix_sums(list(range(50)), 4), mpc.KHopProtocol(x[0].tolist(), 3, ALPHABET, 32)]
    runs = []
    with mpc.DaskBackend(n_workers=n_workers, processes=False) as backend:
        for protocol in protocols:
            local, distributed = mpc.simulate(protocol), backend.run(protocol)
            same = distributed.output == local.output and distributed.n_rounds == local.n_rounds
            runs.append(DaskRun(type(protocol).__name__, distributed.n_rounds, same))
    return runs


# ----------------------------------------------------------------------------------------------------
# Static pictures
# ----------------------------------------------------------------------------------------------------


def traffic_figure(run: mpc.MPCRun, memory: int, title: str) -> go.Figure:
    """Per round: the most words any machine sent and received, against the limit s."""
    figure = go.Figure()
    _add_traffic(figure, run, memory)
    figure.update_layout(title=title, width=620, height=340, barmode="group")
    figure.update_xaxes(title="round", dtick=1)
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


def growth_exponents(rows: list[dict], columns=("ANNA machines", "softmax machines")) -> dict[str, float]:
    """Each column's slope against N on log-log axes, from the first row to the last: a count that grows
    like N^a has slope a."""
    decades = math.log10(rows[-1]["N"] / rows[0]["N"])
    return {name: math.log10(rows[-1][name] / rows[0][name]) / decades for name in columns}


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


def stepping_state_figure(round: int) -> go.Figure:
    """One state of the stepping panel, drawn as the live panel draws it."""
    figures = stepping_figures()
    draw_stepping(figures, stepping_update(round))
    return figures[0]


def static_stepping_panel() -> go.Figure:
    """The stepping panel without a kernel: every round r = 0 … R precomputed behind a plotly slider."""
    return precomputed_figure(stepping_state_figure, ("round", range(stepping_runs()[0].n_rounds + 1)))


def stepping_panel(round: int = 0) -> Panel:
    """Slider over rounds: the simulator's memories next to the ANNA-transformer's residual streams."""
    protocol = stepping_runs()[0]
    controls = {"round": slider("round r", round, 0, protocol.n_rounds)}
    figures = [go.FigureWidget(figure) for figure in stepping_figures()]
    return Panel(controls, figures, stepping_update, draw_stepping)


# ----------------------------------------------------------------------------------------------------
# Panel 2: k-hop, MPC rounds and ANNA layers, live
# ----------------------------------------------------------------------------------------------------

PANEL_BATCH = 32


@lru_cache(maxsize=32)
def khop_model(hops, seq_len, n_tables, n_hashes):
    return mpc.build_khop_transformer(hops, seq_len, ALPHABET, n_tables, n_hashes or None)


def khop_answers(model, x: torch.Tensor, y: torch.Tensor, device="cpu") -> np.ndarray:
    """Which answers of the hand-built k-hop transformer on x [n, N] are wrong ([n, N] bool)."""
    return (model(x.to(resolve_device(device))).cpu() != y).numpy()


@dataclass
class KHopData:
    hops: int
    seq_len: int
    memory: int
    run: mpc.MPCRun
    n_layers: int
    n_tables: int
    n_hashes: int  # the z used (chosen when asked for 0)
    false_pairs: int
    wrong: np.ndarray  # [32, N] bool: the transformer's wrong answers on the random sequences
    error: float  # the fraction of answers that are wrong


def khop_update(hops, seq_len, memory, n_tables, n_hashes, device="auto") -> KHopData:
    """One random sequence through the MPC protocol (its traffic against s); 32 random sequences through
    the hand-built ANNA-transformer at (ℓ, z), and which of its answers are wrong."""
    x, y = tasks.khop(PANEL_BATCH, seq_len, ALPHABET, hops, seed=hops)
    run = mpc.simulate(mpc.KHopProtocol(x[0].tolist(), hops, ALPHABET, memory))
    if run.output != y[0].tolist():
        raise AssertionError("the MPC protocol disagrees with the task's labels")
    model = khop_model(hops, seq_len, n_tables, n_hashes)
    wrong = khop_answers(model, x, y, device)
    chosen = max(codes.n_hashes for codes in model.code_books)  # with z = 0, each code book's own
    pairs = model.false_collision_pairs
    error = float(wrong.mean())
    return KHopData(hops, seq_len, memory, run, model.n_layers, n_tables, chosen, pairs, wrong, error)


def khop_figures() -> list[go.Figure]:
    traffic = go.Figure()
    traffic.update_layout(
        title="k-hop in MPC: words per machine and round", width=620, height=360, barmode="group"
    )
    traffic.update_xaxes(title="round")
    traffic.update_yaxes(title="words per machine")
    depth = go.Figure()
    depth.add_bar(x=["MPC rounds", "ANNA layers", "one hop per layer"], y=[0, 0, 0])
    depth.update_layout(width=420, height=360)
    depth.update_yaxes(title="rounds / layers")
    answers = go.Figure()
    answers.add_heatmap(
        z=[[0]],
        zmin=0,
        zmax=1,
        colorscale=[[0, "#e8f0e8"], [0.5, "#e8f0e8"], [0.5, "#c0392b"], [1, "#c0392b"]],
        colorbar={"tickvals": [0.25, 0.75], "ticktext": ["right", "wrong"]},
    )
    answers.update_layout(width=1000, height=380)
    answers.update_xaxes(title="position i")
    answers.update_yaxes(title="random sequence", autorange="reversed")
    return [traffic, depth, answers]


def draw_khop(figures, data: KHopData) -> None:
    traffic, depth, answers = figures
    traffic.data = []
    _add_traffic(traffic, data.run, data.memory)
    depth.data[0].y = [data.run.n_rounds, data.n_layers, data.hops + 1]
    depth.layout.title = f"k = {data.hops}, N = {data.seq_len}"
    answers.data[0].z = data.wrong.astype(float).tolist()
    outcome = f"{int(data.wrong.sum())} of {data.wrong.size} wrong ({data.error:.1%})"
    answers.layout.title = (
        f"the ANNA-transformer's answers at ℓ = {data.n_tables}, z = {data.n_hashes}: {outcome}, "
        f"{data.false_pairs} false collision pairs"
    )


STATIC_HOPS = (1, 2, 3, 5, 8, 13, 20, 32)  # the kernel-free k-hop panel's slider
STATIC_KHOP_HASHES = (0, 1, 2, 3)  # and its menu: z (0 = the smallest exact z), at N = 100, s = 32, ℓ = 1


def khop_state_figure(hops, n_hashes, seq_len=100, memory=32, n_tables=1, device="auto") -> go.Figure:
    """One state of the k-hop panel: its three views in one figure, drawn by the live panel's functions."""
    traffic, depth, answers = khop_figures()
    draw_khop((traffic, depth, answers), khop_update(hops, seq_len, memory, n_tables, n_hashes, device))
    depth.data[0].showlegend = False
    answers.data[0].colorbar.update(y=0.22, len=0.45)  # beside the answers, in the lower row
    figure = combined_views(
        (traffic, depth, answers),
        [(1, 1), (1, 2), (2, 1)],
        rows=2,
        cols=2,
        specs=[[{}, {}], [{"colspan": 2}, None]],
        column_widths=[0.6, 0.4],
        vertical_spacing=0.16,
    )
    figure.update_xaxes(dtick=1, row=1, col=1)  # whole rounds
    title = f"{depth.layout.title.text}<br>{answers.layout.title.text}"
    figure.update_layout(title=title, barmode="group", width=1000, height=760, margin={"t": 110})
    return figure


def static_khop_panel(hops=STATIC_HOPS, hashes=STATIC_KHOP_HASHES, device="auto") -> go.Figure:
    """The k-hop panel without a kernel, at N = 100, s = 32, ℓ = 1: every k of `hops` behind a plotly slider
    and every z of `hashes` (0 = the smallest exact z) in the menu."""
    return precomputed_figure(
        lambda hops, n_hashes: khop_state_figure(hops, n_hashes, device=device),
        ("hops", hops),
        {"n_hashes": hashes},
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
