"""Notebook 02 (ANNA vs softmax): one clustered input, both attentions side by side, and the live panel.

The demo input has structure attention should find: keys and queries lie in tight clusters around random
unit directions, and each cluster's values share a mean, so "average the values of the keys near me" has a
clear right answer. `anna_update(...)` is the panel's pure computation; `draw_anna` writes its data into
three figures, the same for the static pictures and the live widgets.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from .. import attention, reformer
from ..device import cpu_generator, resolve_device
from .common import Panel, device_options, dropdown, slider

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


@dataclass
class AnnaPanelData:
    beta: float
    n_tables: int
    n_hashes: int
    family: str
    n: int
    causal: bool
    device: str
    softmax_block: np.ndarray  # (SHOWN, SHOWN) softmax weights of the first queries over the shown keys
    anna_block: np.ndarray  # (SHOWN, SHOWN) ANNA's implied weights, same block
    softmax_out: np.ndarray  # (N, D_VALUE)
    anna_out: np.ndarray
    error: float  # relative error of ANNA's output against softmax's
    lonely: float  # fraction of the shown queries that collided with no key (ANNA outputs 0 there)
    guarantee_ok: float  # fraction of the shown queries meeting the (c, r, ℓ)-ANNA conditions


def anna_update(beta, n_tables, n_hashes, family, n, causal, device="auto", seed: int = 0) -> AnnaPanelData:
    """Softmax at β and ANNA at (ℓ, z) on the same clustered input, their outputs and the guarantee."""
    data = clustered_input(n, seed=seed, device=device)
    q, k, v = data.q, data.k, data.v
    soft = attention.softmax_attention(q, k, v, beta=beta, causal=causal)
    anna = attention.anna_attention(q, k, v, n_tables, n_hashes, family, seed=seed, causal=causal)
    shown = torch.linspace(0, n - 1, SHOWN).long()  # the same positions for queries and keys
    # Only the shown queries' rows of the N × N matrices: the panel stays fast at large N.
    soft_rows = attention.softmax_weights(q[shown], k, beta=beta, causal=causal, query_positions=shown)
    anna_rows = attention.anna_weights(
        q[shown], k, n_tables, n_hashes, family, seed, causal, query_positions=shown
    )
    report = attention.check_anna_guarantee(
        q[shown], k, anna_rows, RADIUS, FAR / RADIUS, n_tables, causal=causal, query_positions=shown
    )
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
        lonely=float((anna_rows.sum(-1) == 0).float().mean()),
        guarantee_ok=float(report.queries_ok.float().mean()),
    )


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
        ],
        layout={
            "width": 400,
            "height": 380,
            "margin": {"t": 50},
            "showlegend": False,
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
    scatter.layout.title = (
        f"N = {data.n}: error {data.error:.0%}, guarantee met for {data.guarantee_ok:.0%} of queries"
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
    guarantee[z−1, ℓ−1] the fraction of queries meeting the (c, r, ℓ)-ANNA conditions (β plays no part)."""
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
    figure.add_hline(y=1, line={"dash": "dot", "color": "gray"}, annotation_text="ℓ·z = N")
    figure.update_layout(
        title="the guarantee's hashing work per token, relative to N",
        xaxis={"title": "N (tokens)", "type": "log"},
        yaxis={"title": "ℓ·z / N (hashes per token per key)", "type": "log"},
        width=680,
        height=400,
    )
    return figure
