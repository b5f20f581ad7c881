"""Notebook 04 (Match2 and induction heads): the shipped models, their curves and grids, and the live panel.

`distilled_update(beta, n_tables, n_hashes, sample)` is the panel's pure computation: the Match2 model
trained at temperature β, run as ANNA with ℓ tables of z hashes, scored on the fixed test set (mean over
hash draws) and pictured on one test sequence next to its softmax surrogate.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
import torch

from .. import data, training
from ..device import resolve_device
from .common import Panel, device_options, dropdown, slider

PANEL_DRAWS = 3  # hash draws per panel update (the results tables use 10)


@lru_cache(maxsize=16)
def shipped_model(task: str, beta: float, stage: str = "distilled", device="auto"):
    """Cached `training.load_pretrained` (callers switch its attention but must not train it)."""
    return training.load_pretrained(task, beta, stage, device)


@lru_cache(maxsize=4)
def test_set(task: str, device="auto"):
    x, y = data.load_test_set(training.TASKS[task]["test_set"])
    device = resolve_device(device)
    return x.to(device), y.to(device)


@dataclass
class DistilledPanelData:
    beta: float
    n_tables: int
    n_hashes: int
    stage: str
    error: float  # ANNA test error, mean over PANEL_DRAWS hash draws
    softmax_error: float
    tokens: np.ndarray  # (N,) the pictured test sequence
    labels: np.ndarray  # (N,)
    predictions: np.ndarray  # (N,) ANNA's predictions (first draw)
    anna_weights: np.ndarray  # (N, N) first draw
    softmax_weights: np.ndarray  # (N, N)
    partners: np.ndarray  # (N, N) True where x_i + x_j ≡ 0 (mod M)


def distilled_update(
    beta, n_tables, n_hashes, sample=0, stage="distilled", device="auto"
) -> DistilledPanelData:
    model = shipped_model("match2", float(beta), stage, device)
    x, y = test_set("match2", device)
    softmax_error = training.error_rate(model, x, y)
    soft = model.attention_weights(x[sample : sample + 1])[0][0, 0]
    error = training.anna_error(model, x, y, n_tables, n_hashes, n_draws=PANEL_DRAWS, impl="dense")
    model.use_attention("anna", n_tables=n_tables, n_hashes=n_hashes, seed=0, impl="dense")
    try:
        with torch.no_grad():
            anna = model.attention_weights(x[sample : sample + 1])[0][0, 0]
            predictions = model(x[sample : sample + 1])[0].argmax(-1)
    finally:
        model.use_attention("softmax", beta=float(beta))
    tokens = x[sample].cpu()
    modulus = model.config.vocab_size
    return DistilledPanelData(
        beta=float(beta),
        n_tables=n_tables,
        n_hashes=n_hashes,
        stage=stage,
        error=error,
        softmax_error=softmax_error,
        tokens=tokens.numpy(),
        labels=y[sample].cpu().numpy(),
        predictions=predictions.cpu().numpy(),
        anna_weights=anna.detach().cpu().numpy(),
        softmax_weights=soft.detach().cpu().numpy(),
        partners=(((tokens[:, None] + tokens[None, :]) % modulus) == 0).numpy(),
    )


def distilled_figures() -> list[go.Figure]:
    """Two heatmaps (surrogate softmax and ANNA weights on one sequence) with the true partners marked."""

    def heatmap(title):
        return go.Figure(
            [
                go.Heatmap(colorscale="Viridis", zmin=0, zmax=1, colorbar={"title": "weight"}),
                go.Scatter(
                    mode="markers",
                    marker={"symbol": "circle-open", "color": "red", "size": 9},
                    name="x_i + x_j ≡ 0",
                ),
            ],
            layout={
                "title": title,
                "width": 440,
                "height": 420,
                "margin": {"t": 60},
                "showlegend": False,
                "xaxis": {"title": "key position j"},
                "yaxis": {"title": "query position i", "autorange": "reversed"},
            },
        )

    return [heatmap("softmax surrogate"), heatmap("ANNA")]


def draw_distilled(figures, data: DistilledPanelData) -> None:
    soft_map, anna_map = figures
    rows, cols = np.nonzero(data.partners)
    for figure, weights in ((soft_map, data.softmax_weights), (anna_map, data.anna_weights)):
        figure.data[0].z = weights
        figure.data[1].update(x=cols, y=rows)
    soft_map.layout.title = f"softmax surrogate, β = {data.beta:g}: test error {data.softmax_error:.1%}"
    wrong = int((data.predictions != data.labels).sum())
    anna_map.layout.title = (
        f"ANNA ℓ = {data.n_tables}, z = {data.n_hashes}: test error {data.error:.1%}<br>"
        f"<sub>this sequence: {wrong} of {len(data.labels)} positions wrong "
        "(red circles: true partners)</sub>"
    )


def distilled_panel(betas=(0.1, 1.0, 10.0), device="auto", **overrides) -> Panel:
    """Live panel on the shipped Match2 checkpoints: β, stage, ℓ, z, the pictured test sequence, device."""
    values = {"beta": 10.0, "stage": "distilled", "n_tables": 8, "n_hashes": 1, "sample": 0, "device": device}
    values.update(overrides)
    controls = {
        "beta": dropdown("β", values["beta"], betas),
        "stage": dropdown("weights", values["stage"], training.STAGES),
        "n_tables": slider("ℓ (tables)", values["n_tables"], 1, 16),
        "n_hashes": slider("z (hashes)", values["n_hashes"], 1, 6),
        "sample": slider("test sequence", values["sample"], 0, 255),
        "device": dropdown("device", values["device"], device_options()),
    }
    figures = [go.FigureWidget(figure) for figure in distilled_figures()]
    return Panel(controls, figures, distilled_update, draw_distilled)
