"""Notebook 02 (ANNA vs softmax): one clustered input, both attentions side by side, and the live panel.

The demo input has structure attention should find: keys and queries lie in tight clusters around random
unit directions, and each cluster's values share a mean, so "average the values of the keys near me" has a
clear right answer. `anna_update(...)` is the panel's pure computation; `draw_anna` writes its data into
three figures, the same for the static pictures and the live widgets (queries that meet no key are drawn
in red and counted in the title: ANNA outputs 0 there).

The rest serves the notebook's sections so that its cells narrate: the tiny Algorithm 1 example and its
diagram, the error grids on a log colour scale, the guarantee's table and measurements, the global average
and the timing sweep.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from .. import attention, bench, reformer
from ..device import cpu_generator, resolve_device
from ..guarantee import anna_parameters, guarantee_table, measure_guarantee
from ..lsh import LSHTables
from .common import Panel, device_options, dropdown, slider, states_at
from .static import precomputed_figure

DIM, D_VALUE, N_CLUSTERS, SPREAD = 32, 8, 16, 0.3
SHOWN = 96  # queries and keys drawn in the heatmaps
RADIUS, FAR = 0.3, 1.0  # r and c·r of the guarantee: closest cluster-mates vs other clusters (≥ 1.1 apart)
DEFAULTS = {
    "beta": 10.0,
    "n_tables": 8,
    "n_hashes": 2,
    "family": "cross_polytope",
    "n": 1024,
    "causal": False,
}
BETAS = (0.1, 1.0, 3.0, 10.0, 30.0, 100.0)
SIZES = (256, 512, 1024, 2048, 4096)
# The kernel-free panel: its slider (ℓ), its menu (β × z) and the block of queries × keys each state draws
STATIC_TABLES = (1, 2, 4, 8, 16)
STATIC_BETAS = (10.0, 1.0, 0.1)  # the sharp softmax ANNA imitates first: the panel opens on it
STATIC_HASHES = (2, 1, 4)  # the live panel's z first
STATIC_SHOWN = 48


@dataclass
class ClusteredInput:
    q: torch.Tensor  # (N, DIM)
    k: torch.Tensor  # (N, DIM)
    v: torch.Tensor  # (N, D_VALUE)
    query_cluster: torch.Tensor  # (N,)
    key_cluster: torch.Tensor  # (N,)


@lru_cache(maxsize=16)
def clustered_input(n: int, seed: int = 0, device="auto") -> ClusteredInput:
    """N queries and N keys around N_CLUSTERS random unit centres (angular noise ≈ SPREAD rad), sorted by
    cluster so attention matrices show blocks; values = the cluster's random mean + small noise.
    Cached: the panel redraws the same input many times (callers must not modify it)."""
    generator = cpu_generator(seed, "anna-demo-data")
    centres = F.normalize(torch.randn(N_CLUSTERS, DIM, generator=generator), dim=-1)
    means = torch.randn(N_CLUSTERS, D_VALUE, generator=generator)

    def around_centres():
        cluster = torch.randint(N_CLUSTERS, (n,), generator=generator).sort().values
        noise = torch.randn(n, DIM, generator=generator) * SPREAD / math.sqrt(DIM)
        return F.normalize(centres[cluster] + noise, dim=-1), cluster

    q, query_cluster = around_centres()
    k, key_cluster = around_centres()
    v = means[key_cluster] + 0.1 * torch.randn(n, D_VALUE, generator=generator)
    device = resolve_device(device)
    return ClusteredInput(q.to(device), k.to(device), v.to(device), query_cluster, key_cluster)


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """‖approx − exact‖ / ‖exact‖ over all rows (Frobenius)."""
    return float((approx - exact).norm() / exact.norm())


def lonely_queries(q, k, n_tables, n_hashes, family="cross_polytope", seed=0, causal=False) -> torch.Tensor:
    """(N,) bool: query i shares a bucket with no key in any of the ℓ tables (no visible key j ≤ i when
    causal), so ANNA outputs 0 for it. Uses the tables `anna_attention` draws; O(ℓ·N log N), no N × N."""
    tables = LSHTables(q.shape[-1], n_tables, n_hashes, family, seed, q.device)
    query_ids, key_ids = tables.bucket_ids(q), tables.bucket_ids(k)
    n_keys, positions = k.shape[-2], torch.arange(q.shape[-2], device=q.device)
    limit = positions if causal else torch.full_like(positions, n_keys - 1)
    met = torch.zeros(q.shape[-2], dtype=torch.bool, device=q.device)
    for u in range(n_tables):  # the earliest key of every bucket: a query meets a key iff it is ≤ its limit
        ids, inverse = torch.unique(torch.cat([key_ids[u], query_ids[u]]), return_inverse=True)
        first = torch.full((len(ids),), n_keys, dtype=torch.long, device=q.device)
        first = first.scatter_reduce(0, inverse[:n_keys], torch.arange(n_keys, device=q.device), "amin")
        met |= first[inverse[n_keys:]] <= limit
    return ~met


@dataclass
class AnnaPanelData:
    beta: float
    n_tables: int
    n_hashes: int
    family: str
    n: int
    causal: bool
    device: str
    softmax_block: np.ndarray  # (shown, shown) softmax weights of the shown queries over the shown keys
    anna_block: np.ndarray  # (shown, shown) ANNA's implied weights, same block
    softmax_out: np.ndarray  # (N, D_VALUE)
    anna_out: np.ndarray
    error: float  # relative error of ANNA's output against softmax's
    lonely_queries: np.ndarray  # (N,) bool: the queries that met no key (ANNA outputs 0 there)
    lonely: float  # fraction of all N queries that met no key
    guarantee_ok: float  # fraction of the shown queries meeting the (c, r, ℓ, η)-ANNA conditions


def anna_update(
    beta, n_tables, n_hashes, family, n, causal, device="auto", seed: int = 0, shown: int = SHOWN
) -> AnnaPanelData:
    """Softmax at β and ANNA at (ℓ, z) on the same clustered input, their outputs and the guarantee; the
    weight blocks hold `shown` evenly spaced queries and keys (all N when N is smaller)."""
    data = clustered_input(n, seed=seed, device=device)
    q, k, v = data.q, data.k, data.v
    soft = attention.softmax_attention(q, k, v, beta=beta, causal=causal)
    anna = attention.anna_attention(q, k, v, n_tables, n_hashes, family, seed=seed, causal=causal)
    shown = torch.linspace(0, n - 1, min(shown, n)).long()  # the same positions for queries and keys
    # Only the shown queries' rows of the N × N matrices: the panel stays fast at large N.
    soft_rows = attention.softmax_weights(q[shown], k, beta=beta, causal=causal, query_positions=shown)
    anna_rows = attention.anna_weights(
        q[shown], k, n_tables, n_hashes, family, seed, causal, query_positions=shown
    )
    report = attention.check_anna_guarantee(
        q[shown], k, anna_rows, RADIUS, FAR / RADIUS, n_tables, causal=causal, query_positions=shown
    )
    lonely = lonely_queries(q, k, n_tables, n_hashes, family, seed, causal)
    return AnnaPanelData(
        beta=beta,
        n_tables=n_tables,
        n_hashes=n_hashes,
        family=family,
        n=n,
        causal=causal,
        device=str(q.device),
        softmax_block=soft_rows[:, shown].cpu().numpy(),
        anna_block=anna_rows[:, shown].cpu().numpy(),
        softmax_out=soft.cpu().numpy(),
        anna_out=anna.cpu().numpy(),
        error=relative_error(anna, soft),
        lonely_queries=lonely.cpu().numpy(),
        lonely=float(lonely.float().mean()),
        guarantee_ok=float(report.queries_ok.float().mean()),
    )


TRY_CHANGES = {  # what notebook 02's section 7 suggests trying, each from the panel's opening state
    "opening": {},
    "β = 1": {"beta": 1.0},
    "z = 1, ℓ = 16": {"n_hashes": 1, "n_tables": 16},
    "causal": {"causal": True},
}


def try_states(n: int = DEFAULTS["n"], device="auto", seed: int = 0) -> dict[str, AnnaPanelData]:
    """`anna_update` at the panel's opening settings (`DEFAULTS`, N = n) and at each of `TRY_CHANGES`."""
    return states_at(anna_update, {**DEFAULTS, "n": n, "device": device, "seed": seed}, TRY_CHANGES)


def anna_figures() -> list[go.Figure]:
    """Three empty views: softmax weights, ANNA weights (same block of queries × keys), output scatter."""

    def heatmap(title):
        return go.Figure(
            go.Heatmap(colorscale="Viridis", zmin=0, colorbar={"title": "weight"}),
            layout={
                "title": title,
                "width": 400,
                "height": 380,
                "margin": {"t": 50},
                "xaxis": {"title": "key (sorted by cluster)"},
                "yaxis": {"title": "query (sorted by cluster)", "autorange": "reversed"},
            },
        )

    scatter = go.Figure(
        [
            go.Scatter(mode="markers", marker={"size": 3, "opacity": 0.4}, name="outputs"),
            go.Scatter(mode="lines", line={"color": "gray", "dash": "dot"}, name="equal"),
            go.Scatter(mode="markers", marker={"size": 4, "color": "red"}, name="meets no key (output 0)"),
        ],
        layout={
            "width": 400,
            "height": 380,
            "margin": {"t": 70},
            "showlegend": True,
            "legend": {"x": 0.01, "y": 0.99, "bgcolor": "rgba(255,255,255,0.6)"},
            "xaxis": {"title": "softmax output entry"},
            "yaxis": {"title": "ANNA output entry"},
        },
    )
    return [heatmap("softmax weights"), heatmap("ANNA weights"), scatter]


def draw_anna(figures, data: AnnaPanelData) -> None:
    soft_map, anna_map, scatter = figures
    soft_map.data[0].z = data.softmax_block
    soft_map.layout.title = f"softmax, β = {data.beta:g}"
    anna_map.data[0].z = data.anna_block
    anna_map.layout.title = f"ANNA, ℓ = {data.n_tables}, z = {data.n_hashes} ({data.family})"
    x, y = data.softmax_out.ravel(), data.anna_out.ravel()
    scatter.data[0].update(x=x, y=y)
    low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    scatter.data[1].update(x=[low, high], y=[low, high])
    lonely = data.lonely_queries
    scatter.data[2].update(x=data.softmax_out[lonely].ravel(), y=data.anna_out[lonely].ravel())
    scatter.layout.title = (
        f"N = {data.n}: error {data.error:.0%}, guarantee met for {data.guarantee_ok:.0%};<br>"
        f"{int(lonely.sum())} queries ({data.lonely:.0%}) meet no key"
    )


def anna_panel(device="auto", **overrides) -> Panel:
    """Live panel: β, ℓ, z, family, N, causal and device."""
    values = {**DEFAULTS, "device": device, **overrides}
    controls = {
        "beta": dropdown("β", values["beta"], BETAS),
        "n_tables": slider("ℓ (tables)", values["n_tables"], 1, 16),
        "n_hashes": slider("z (hashes)", values["n_hashes"], 1, 6),
        "family": dropdown("family", values["family"], ("hyperplane", "cross_polytope")),
        "n": dropdown("N", values["n"], SIZES),
        "causal": dropdown("causal", values["causal"], (False, True)),
        "device": dropdown("device", values["device"], device_options()),
    }
    figures = [go.FigureWidget(figure) for figure in anna_figures()]
    return Panel(controls, figures, anna_update, draw_anna)


def anna_state_figure(
    beta, n_tables, n_hashes, n: int = 1024, shown: int = STATIC_SHOWN, device="auto", seed: int = 0
) -> go.Figure:
    """One state of the kernel-free panel: `anna_update` and `draw_anna`, as the live panel calls them
    (cross-polytope, not causal), with the two weight heatmaps side by side (float32, as drawn: 5.3
    characters a weight in the figure's JSON) under a title with the error and the lonely queries; the output
    scatter (N·d_v points a state) is left out."""
    data = anna_update(beta, n_tables, n_hashes, "cross_polytope", n, False, device, seed, shown)
    figures = anna_figures()
    draw_anna(figures, data)
    figure = make_subplots(
        1, 2, subplot_titles=("softmax weights", "ANNA's weights"), horizontal_spacing=0.24
    )  # wide spacing: the first colour bar and its labels stand between the heatmaps
    for col, view in enumerate(figures[:2], start=1):
        colorbar = {"title": "weight", "x": 0.39 if col == 1 else 1.0, "thickness": 14}
        heatmap = go.Heatmap(view.data[0], colorbar=colorbar)
        figure.add_trace(heatmap, row=1, col=col)
        figure.update_xaxes(title_text="key (sorted by cluster)", row=1, col=col)
        figure.update_yaxes(autorange="reversed", row=1, col=col)
    figure.update_yaxes(title_text="query (sorted by cluster)", row=1, col=1)
    lonely = int(data.lonely_queries.sum())
    figure.update_layout(
        title=f"ℓ = {n_tables}: error {data.error:.0%}, {lonely} of N = {n} queries meet no key",
        width=860,
        height=520,  # room above the heatmaps for the kernel-free panel's menu
    )
    return figure


def static_anna_panel(
    n: int = 1024, shown: int = STATIC_SHOWN, device="auto", seed: int = 0, tables=STATIC_TABLES
) -> go.Figure:
    """The live panel without a kernel: `anna_state_figure` precomputed for every ℓ in `tables` (the slider;
    `STATIC_TABLES` by default) and every β in `STATIC_BETAS` and z in `STATIC_HASHES` (the menu), on the
    clustered input of N tokens: softmax's and ANNA's weights on `shown` queries × keys, titled with the
    relative error over all N outputs. It moves in exported HTML and in the book."""

    def draw(**params):
        return anna_state_figure(params["β"], params["ℓ"], params["z"], n, shown, device, seed)

    return precomputed_figure(draw, ("ℓ", tables), {"β": STATIC_BETAS, "z": STATIC_HASHES})


# ----------------------------------------------------------------------------------------------------
# Sweeps for the static pictures
# ----------------------------------------------------------------------------------------------------


def error_grid(
    betas,
    n: int,
    max_tables: int = 16,
    max_hashes: int = 6,
    n_draws: int = 3,
    seed: int = 0,
    family: str = "cross_polytope",
    device="auto",
):
    """ANNA against softmax over ℓ = 1..max_tables and z = 1..max_hashes, averaged over `n_draws` hash draws.

    Returns (error, guarantee): error[b, z−1, ℓ−1] is the relative error against softmax at betas[b];
    guarantee[z−1, ℓ−1] the fraction of queries meeting the (c, r, ℓ, η)-ANNA conditions (β plays no part)."""
    data = clustered_input(n, seed=seed, device=device)
    softmax_outputs = [attention.softmax_attention(data.q, data.k, data.v, beta=beta) for beta in betas]
    error = np.zeros((len(betas), max_hashes, max_tables))
    guarantee = np.zeros((max_hashes, max_tables))
    for z, l, draw in itertools.product(range(1, max_hashes + 1), range(1, max_tables + 1), range(n_draws)):
        weights = attention.anna_weights(data.q, data.k, l, z, family, seed=seed + draw)
        report = attention.check_anna_guarantee(data.q, data.k, weights, RADIUS, FAR / RADIUS, l)
        guarantee[z - 1, l - 1] += float(report.queries_ok.float().mean()) / n_draws
        anna = weights @ data.v
        for b, soft in enumerate(softmax_outputs):
            error[b, z - 1, l - 1] += relative_error(anna, soft) / n_draws
    return error, guarantee


def grid_figure(values: np.ndarray, title: str, colorbar: str, zmax=None) -> go.Figure:
    """A heatmap over (ℓ, z) for `error_grid`'s arrays."""
    figure = go.Figure(
        go.Heatmap(
            z=values,
            x=list(range(1, values.shape[1] + 1)),
            y=list(range(1, values.shape[0] + 1)),
            colorscale="Viridis",
            zmin=0,
            zmax=zmax,
            colorbar={"title": colorbar},
        )
    )
    figure.update_layout(
        title=title, xaxis_title="ℓ (tables)", yaxis_title="z (hashes per table)", width=520, height=360
    )
    return figure


def global_average_figure(sizes=(2**p for p in range(6, 21)), bucket_sizes=(16, 64, 256)) -> go.Figure:
    """Layers needed before one output can depend on all N inputs: constant chunks vs ANNA's one layer."""
    sizes = list(sizes)
    figure = go.Figure()
    for bucket in bucket_sizes:
        layers = [reformer.layers_for_global_average(n, 2 * bucket) for n in sizes]
        figure.add_scatter(
            x=sizes,
            y=layers,
            name=f"chunks of {bucket} (sees ≤ {2 * bucket})",
            mode="lines+markers",
            line={"shape": "hv"},
        )
    figure.add_scatter(
        x=sizes, y=[1] * len(sizes), name="ANNA", mode="lines", line={"color": "black", "width": 3}
    )
    figure.update_layout(
        title="a global average: layers needed",
        xaxis={"title": "N (tokens)", "type": "log"},
        yaxis={"title": "layers", "rangemode": "tozero"},
        width=620,
        height=380,
    )
    return figure


def guarantee_cost_figure(tables: dict) -> go.Figure:
    """Hash evaluations per token (ℓ·z) divided by N against N, one line per setting.

    `tables`: {label: rows of `guarantee.guarantee_table`}. A softmax query reads N keys, so a line that
    falls is a cost growing slower than N² (ρ < 1/3), a rising one faster."""
    figure = go.Figure()
    for label, rows in tables.items():
        figure.add_scatter(
            x=[row["N"] for row in rows],
            y=[row["hashes / N"] for row in rows],
            mode="lines+markers",
            name=label,
        )
    figure.add_hline(
        y=1,
        line={"dash": "dot", "color": "gray"},
        annotation_text="ℓ·z = N",
        annotation_position="bottom left",
    )
    figure.update_layout(
        title="hashing work per token with our parameters for the guarantee, relative to N",
        xaxis={"title": "N (tokens)", "type": "log"},
        yaxis={"title": "ℓ·z / N (hashes per token per key)", "type": "log"},
        width=680,
        height=400,
    )
    return figure


# ----------------------------------------------------------------------------------------------------
# The notebook's sections: sizes, Algorithm 1 by hand, error grids, the guarantee, global average, timing
# ----------------------------------------------------------------------------------------------------


def run_sizes(smoke: bool, grid_n: int, n_draws: int, bench_max_n: int) -> SimpleNamespace:
    """The notebook's sweep sizes: small ones for the smoke run, the parameters' otherwise."""
    if smoke:
        return SimpleNamespace(
            grid_n=256, max_tables=8, max_hashes=4, n_draws=1, bench=[512, 1024, 2048, 4096]
        )
    bench_sizes = [2**p for p in range(9, int(math.log2(bench_max_n)) + 1)]
    return SimpleNamespace(grid_n=grid_n, max_tables=16, max_hashes=6, n_draws=n_draws, bench=bench_sizes)


@dataclass(frozen=True)
class TinyExample:
    """Six keys with scalar values (d_v = 1), ℓ = 2 tables of hand-picked buckets, three queries.

    key_buckets[u][j] is b_u(k_j) and query_buckets[i][u] is b_u(q_i) (bucket 3 holds no key)."""

    values: tuple = (4.0, 2.0, 1.0, 5.0, 6.0, 0.0)
    key_buckets: tuple = ((0, 0, 1, 1, 2, 2), (1, 0, 0, 0, 2, 2))
    query_buckets: tuple = ((0, 1), (1, 0), (3, 3))


TINY = TinyExample()


def bucket_sums_and_counts(example: TinyExample = TINY) -> tuple[dict, dict]:
    """Algorithm 1's build step on the tiny example: sums[(u, b)] = Σ v_j and counts[(u, b)] =
    |{j : b_u(k_j) = b}|, over the keys j in bucket b of table u."""
    sums, counts = {}, {}
    for u, table in enumerate(example.key_buckets):
        for value, bucket in zip(example.values, table, strict=True):
            sums[u, bucket] = sums.get((u, bucket), 0.0) + value
            counts[u, bucket] = counts.get((u, bucket), 0) + 1
    return sums, counts


def tiny_output(example: TinyExample, query: int) -> float:
    """Algorithm 1's query step for query `query` (0-based): Σ_u sum_u / Σ_u count_u over its buckets, 0 if
    they hold no key."""
    sums, counts = bucket_sums_and_counts(example)
    reads = list(enumerate(example.query_buckets[query]))
    den = sum(counts.get(read, 0) for read in reads)
    return sum(sums.get(read, 0.0) for read in reads) / den if den else 0.0


def algorithm_1_diagram(example: TinyExample = TINY) -> go.Figure:
    """Algorithm 1's tables on the tiny example: every bucket of every table with its keys, sum and count;
    the buckets query 1 reads (orange) and query 2 reads (blue), and what query 1 and query 3 output."""
    sums, counts = bucket_sums_and_counts(example)
    n_buckets = 1 + max(max(row) for row in example.query_buckets + example.key_buckets)
    colours = ("darkorange", "royalblue", "crimson")
    figure = go.Figure()
    for u, table in enumerate(example.key_buckets):
        x = 1.6 * u
        figure.add_annotation(x=x + 0.6, y=n_buckets, text=f"<b>table u = {u + 1}</b>", showarrow=False)
        for b in range(n_buckets):
            y = n_buckets - 1 - b
            readers = [i for i, q in enumerate(example.query_buckets) if q[u] == b]
            border = colours[readers[0]] if readers else "gray"
            figure.add_shape(
                type="rect", x0=x, x1=x + 1.2, y0=y - 0.4, y1=y + 0.4, line={"color": border, "width": 3}
            )
            keys = " ".join(f"k{j + 1}" for j, bucket in enumerate(table) if bucket == b) or "(no key)"
            total = f"sum = {sums.get((u, b), 0):g}, count = {counts.get((u, b), 0)}"
            reader_text = ", ".join(f"q{i + 1}" for i in readers)
            text = f"bucket {b}: {keys}<br>{total}" + (f"<br>read by {reader_text}" if readers else "")
            figure.add_annotation(x=x + 0.6, y=y, text=text, showarrow=False, font={"size": 11})
    values = ", ".join(f"v{j + 1} = {v:g}" for j, v in enumerate(example.values))
    first = [(u, b) for u, b in enumerate(example.query_buckets[0])]
    sum_text = " + ".join(f"{sums.get(read, 0):g}" for read in first)
    count_text = " + ".join(f"{counts.get(read, 0)}" for read in first)
    lines = [
        f"values: {values}",
        f"<span style='color:{colours[0]}'>q1 reads the sum and count of its bucket in each table: "
        f"({sum_text}) / ({count_text}) = {tiny_output(example, 0):.3g}</span>",
        f"<span style='color:{colours[1]}'>q2: your turn (exercise 1.1)</span>",
        f"<span style='color:{colours[2]}'>q3's buckets hold no key: the counts add to 0, output 0</span>",
    ]
    for row, line in enumerate(lines):
        figure.add_annotation(x=-0.1, y=-0.9 - 0.45 * row, text=line, showarrow=False, xanchor="left")
    figure.update_layout(
        title="Algorithm 1 on six keys: every bucket keeps the sum and the count of its values",
        xaxis={"visible": False, "range": [-0.2, 3.0]},
        yaxis={"visible": False, "range": [-0.9 - 0.45 * len(lines), n_buckets + 0.4]},
        width=680,
        height=520,
        margin={"t": 60, "l": 10, "r": 10, "b": 10},
        plot_bgcolor="white",
    )
    return figure


def tables_bucket_ids(data: ClusteredInput, n_tables: int, n_hashes: int, seed: int = 0):
    """The bucket ids anna_attention uses, on the CPU: (b_u(q_i)) and (b_u(k_j)), each (ℓ, N), and v."""
    tables = LSHTables(DIM, n_tables, n_hashes, "cross_polytope", seed, "cpu")
    return tables.bucket_ids(data.q.cpu()), tables.bucket_ids(data.k.cpu()), data.v.cpu()


def implementations_gap(data: ClusteredInput, n_tables: int, n_hashes: int, seed: int = 0) -> float:
    """Largest entry-wise difference between ANNA's three implementations (dense oracle, Algorithms 1, 2)."""
    outputs = [
        attention.anna_attention(data.q, data.k, data.v, n_tables, n_hashes, seed=seed, impl=impl)
        for impl in attention.IMPLS
    ]
    return max(float((out - outputs[0]).abs().max()) for out in outputs)


def error_grid_figure(error: np.ndarray, betas) -> go.Figure:
    """`error_grid`'s relative errors, one heatmap per β on one shared log colour scale (all of the data
    visible: errors from about 0.01 to above 1 at once)."""
    figure = make_subplots(1, len(betas), subplot_titles=[f"β = {beta:g}" for beta in betas])
    low, high = math.floor(math.log10(error.min())), math.ceil(math.log10(error.max()))
    ticks = [
        t
        for e in range(low, high + 1)
        for t in (10.0**e, 3 * 10.0**e)
        if error.min() / 3 <= t <= 3 * error.max()
    ]
    for b, grid in enumerate(error):
        figure.add_heatmap(
            z=np.log10(grid),
            x=list(range(1, grid.shape[1] + 1)),
            y=list(range(1, grid.shape[0] + 1)),
            customdata=grid,
            hovertemplate="ℓ = %{x}, z = %{y}: error %{customdata:.3f}<extra></extra>",
            coloraxis="coloraxis",
            row=1,
            col=b + 1,
        )
        figure.update_xaxes(title_text="ℓ (tables)", row=1, col=b + 1)
    figure.update_yaxes(title_text="z (hashes per table)", row=1, col=1)
    figure.update_layout(
        title="relative error ‖ANNA − softmax‖ / ‖softmax‖<br>(log colour scale; 1 = as far as outputting 0)",
        margin={"t": 120},  # the two-line title above the panels' own titles
        coloraxis={
            "colorscale": "Viridis",
            "cmin": math.log10(error.min()),
            "cmax": math.log10(error.max()),
            "colorbar": {
                "title": "error",
                "tickvals": np.log10(ticks),
                "ticktext": [f"{t:g}" for t in ticks],
            },
        },
        width=980,
        height=380,
    )
    return figure


GUARANTEE_SETTINGS = (("hyperplane", 16), ("cross_polytope", 16), ("cross_polytope", 64))


def guarantee_settings(sizes, r: float = 0.3) -> dict:
    """`guarantee_table` for every (family, m) of GUARANTEE_SETTINGS at c = 2 and c = 3: {label: rows}."""
    return {
        f"{family}, m = {m}, c = {c}": guarantee_table(sizes, m, r, c, family)
        for family, m in GUARANTEE_SETTINGS
        for c in (2, 3)
    }


def guarantee_table_text(tables: dict) -> str:
    """`guarantee_settings`' rows as a text table: ρ, N, z, ℓ, ℓ·z/N and the far-failure bound ℓ·N²·p₂^z."""
    lines = [f"{'setting':<28} {'ρ':>6} {'N':>6} {'z':>4} {'ℓ':>10} {'ℓ·z/N':>9} {'far bound':>9}"]
    for label, rows in tables.items():
        lines += [
            f"{label:<28} {row['rho']:6.3f} {row['N']:>6} {row['z']:>4} {row['l']:>10,} "
            f"{row['hashes / N']:>9.2f} {row['far failure bound']:>9.3f}"
            for row in rows
        ]
    return "\n".join(lines)


def cost_follows_rho(tables: dict) -> bool:
    """In every setting, ℓ·z/N falls as N grows when ρ < 1/3 and grows when ρ > 1/3."""
    for rows in tables.values():
        ratios = [row["hashes / N"] for row in rows]
        if ratios != sorted(ratios, reverse=rows[0]["rho"] < 1 / 3):
            return False
    return True


def measure_guarantees(
    n: int, n_queries: int, families, seed: int = 0, width: int = 16, c: float = 3
) -> dict:
    """`measure_guarantee` at the recipe's z and ℓ for N keys, r = RADIUS: {(family, recall): measured}."""
    return {
        (family, recall): measure_guarantee(
            anna_parameters(n, width, RADIUS, c, family, recall), n_queries, seed
        )
        for family in families
        for recall in ("constant", "high")
    }


def measured_text(measured: dict) -> str:
    """One line per measurement: ℓ, z, hashes per token, measured share meeting the definition, predicted."""
    lines = []
    for (family, recall), m in measured.items():
        p = m.parameters
        lines.append(
            f"{family:<15} ℓ = {p.n_tables:>5} ({recall:>8}), z = {p.n_hashes}, "
            f"{p.hashes_per_token:>7,} hashes/token: "
            f"{m.fraction_ok:.1%} of queries meet the definition, predicted ≥ {m.predicted_ok:.1%}"
        )
    return "\n".join(lines)


def global_average_errors(n: int, seed: int = 0, device="auto", bucket_size: int = 64) -> tuple[float, float]:
    """Every token with the same query and key: the largest distance from the mean of all N values of
    one ANNA layer (ℓ = z = 1) and of one layer of chunks of `bucket_size` (Reformer)."""
    device = resolve_device(device)
    same = torch.ones(n, 16, device=device)
    values = torch.randn(n, 4, generator=cpu_generator(seed, "anna-global-average")).to(device)
    target = values.mean(0)
    anna = attention.anna_attention(same, same, values, n_tables=1, n_hashes=1)
    chunked = reformer.chunked_bucket_attention(same, values, bucket_size=bucket_size)
    return float((anna - target).abs().max()), float((chunked - target).abs().max())


def time_against_n(sizes, device, dim: int = 64, n_tables: int = 8, n_hashes: int = 1) -> list[dict]:
    """`bench.measure` for fused softmax (SDPA) and ANNA's Algorithm 1 at every N, on one CPU thread, the
    median of five calls each."""
    with bench.cpu_threads(1):
        return [
            {
                **bench.measure(method, n, dim, n_tables, n_hashes, "cross_polytope", str(device), repeats=5),
                "sweep": "n",
            }
            for n in sizes
            for method in ("sdpa", "anna_tables")
        ]
