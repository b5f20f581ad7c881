"""Notebook 04 (Match2 and induction heads): the shipped models, their curves and grids, and the live panel.

`distilled_update(beta, n_tables, n_hashes, sample)` is the panel's pure computation: the shipped Match2
model trained at inverse temperature β (the surrogate as trained, or after fine-tuning into ANNA), run as ANNA
with ℓ tables of z hashes: its test error and its attention on one test sequence next to the same weights'
softmax attention. The rest are the notebook's helpers: the pictures (training curves, cosines, the error
grids, attention maps), the headline recount over hash draws, and named look-ups in the shipped results.
`static_training_panel` is the live panel without a kernel: its two heatmaps for a grid of β, z and ℓ,
precomputed with the same update and drawing, one setting shown at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from .. import data, lsh, training
from ..attention import Anna
from ..device import resolve_device
from .common import Panel, device_options, dropdown, slider, states_at
from .static import precomputed_figure


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
    error: float  # ANNA test error, mean over 10 hash draws
    softmax_error: float
    tokens: np.ndarray  # (N,) the pictured test sequence
    labels: np.ndarray  # (N,)
    predictions: np.ndarray  # (N,) ANNA's predictions (first draw)
    anna_weights: np.ndarray  # (N, N) first draw
    softmax_weights: np.ndarray  # (N, N)
    partners: np.ndarray  # (N, N) True where x_i + x_j ≡ 0 (mod |Σ|)

    @property
    def unmet_queries(self) -> int:
        """Queries of the pictured sequence that met no key (a black row of the ANNA heatmap)."""
        return int((self.anna_weights.sum(-1) == 0).sum())

    @property
    def wrong_positions(self) -> int:
        """Positions of the pictured sequence that ANNA's first draw predicts wrongly."""
        return int((self.predictions != self.labels).sum())


# The panel's first view: β = 10, the distilled weights, ℓ = 8, z = 1, test sequence 0.
OPENING = {"beta": 10.0, "stage": "distilled", "n_tables": 8, "n_hashes": 1, "sample": 0}
TRY_CHANGES = {  # notebook 04's section 5 suggestions, each from the panel's opening state
    "opening": {},
    "ℓ = 1": {"n_tables": 1},
    "ℓ = 8, z = 6": {"n_hashes": 6},
    "surrogate weights": {"stage": "surrogate"},
}


def try_states(device="auto") -> dict[str, DistilledPanelData]:
    """`distilled_update` at the panel's `OPENING` and at each of `TRY_CHANGES`."""
    return states_at(distilled_update, {**OPENING, "device": device}, TRY_CHANGES)


@lru_cache(maxsize=4)
def shipped_results(task: str) -> dict:
    return training.load_results(task)


def shipped_record(task: str, beta: float) -> dict:
    """The results-table entry of the shipped run at temperature β."""
    runs = shipped_results(task)["runs"]
    for record in runs:
        if record["beta"] == beta:
            return record
    raise ValueError(f"beta: no shipped {task} run at β = {beta}; shipped: {[r['beta'] for r in runs]}")


@lru_cache(maxsize=8)
def softmax_test_error(beta: float, device="auto") -> float:
    """Test error of the shipped distilled Match2 weights at β run under softmax (cached: the panel shows it
    for every ℓ and z)."""
    return training.error_rate(
        shipped_model("match2", float(beta), "distilled", device), *test_set("match2", device)
    )


def distilled_update(
    beta, n_tables, n_hashes, sample=0, stage="distilled", device="auto"
) -> DistilledPanelData:
    """The shipped Match2 model at β as ANNA (ℓ, z): its test error over 10 hash draws, read from the
    shipped results table (computing it live takes about a second), and its attention on one test
    sequence, computed live with hash seed 0."""
    record = shipped_record("match2", float(beta))
    grid = record["distilled_grid" if stage == "distilled" else "zero_shot_grid"]
    error = grid[training.GRIDS["match2"]["n_tables"].index([n_tables])][n_hashes - 1]
    model = shipped_model("match2", float(beta), stage, device)
    x, y = test_set("match2", device)
    softmax_error = record["softmax_error"] if stage == "surrogate" else softmax_test_error(beta, device)
    soft = model.attention_weights(x[sample : sample + 1])[0][0, 0]
    as_anna = model.with_attention(Anna(n_tables, n_hashes, seed=0, impl="dense"))
    with torch.no_grad():
        anna = as_anna.attention_weights(x[sample : sample + 1])[0][0, 0]
        predictions = as_anna(x[sample : sample + 1])[0].argmax(-1)
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

    return [heatmap("softmax"), heatmap("ANNA")]


def softmax_title(stage: str, beta: float, error: float) -> str:
    """Title of the panel's left heatmap: which weights run under softmax(β·q̂·k̂ᵀ) there."""
    weights = "the surrogate as trained" if stage == "surrogate" else "the distilled weights"
    return f"{weights} under softmax, β = {beta:g}: test error {error:.2%}"


def draw_distilled(figures, data: DistilledPanelData) -> None:
    soft_map, anna_map = figures
    rows, cols = np.nonzero(data.partners)
    for figure, weights in ((soft_map, data.softmax_weights), (anna_map, data.anna_weights)):
        figure.data[0].z = weights
        figure.data[1].update(x=cols.tolist(), y=rows.tolist())  # plain lists, not int64 arrays
    soft_map.layout.title = softmax_title(data.stage, data.beta, data.softmax_error)
    wrong = int((data.predictions != data.labels).sum())
    anna_map.layout.title = (
        f"ANNA ℓ = {data.n_tables}, z = {data.n_hashes}: test error {data.error:.2%}<br>"
        f"<sub>this sequence: {wrong} of {len(data.labels)} positions wrong "
        "(red circles: true partners)</sub>"
    )


def distilled_panel(betas=(0.1, 1.0, 10.0), device="auto", **overrides) -> Panel:
    """Live panel on the shipped Match2 checkpoints: β, stage, ℓ, z, the pictured test sequence, device."""
    values = {**OPENING, "device": device, **overrides}
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


STATIC_BETAS = (10.0, 1.0, 0.1)  # the kernel-free panel's menu: β (the live panel's default first) ...
STATIC_HASHES = (1, 2, 4, 6)  # ... and z, for each β
STATIC_TABLES = (1, 2, 4, 8, 12, 16)  # its slider: ℓ
STATIC_SMOKE = {"betas": (10.0,), "hashes": (1, 6), "tables": (1, 8)}  # the grid of a smoke run


@lru_cache(maxsize=1)
def _side_by_side_layout() -> go.Layout:
    """The kernel-free panel's frame: the live panel's two heatmaps side by side on one colour scale (built
    once: plotly is slow at it)."""
    soft_map, _ = distilled_figures()
    figure = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=("softmax(β·q̂·k̂ᵀ)", "ANNA, hash seed 0")
    )
    for col in (1, 2):
        figure.update_xaxes(title_text=soft_map.layout.xaxis.title.text, row=1, col=col)
        figure.update_yaxes(autorange="reversed", row=1, col=col)
    figure.update_yaxes(title_text=soft_map.layout.yaxis.title.text, row=1, col=1)
    figure.update_layout(
        coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": 1, "colorbar": {"title": "weight"}},
        showlegend=False,
        width=940,
        height=540,
    )
    return figure.layout


def distilled_state_figure(beta, n_tables, n_hashes, sample=0, stage="distilled", device="auto") -> go.Figure:
    """One state of the kernel-free panel: `distilled_update` drawn by `draw_distilled`, as in the live
    panel, its two heatmaps side by side on one colour axis, titled with both of their titles."""
    data = distilled_update(beta, n_tables, n_hashes, sample, stage, device)
    soft_map, anna_map = distilled_figures()
    draw_distilled((soft_map, anna_map), data)
    figure = go.Figure(layout=_side_by_side_layout())
    for col, drawn in enumerate((soft_map, anna_map), start=1):
        axes = {"xaxis": f"x{col if col > 1 else ''}", "yaxis": f"y{col if col > 1 else ''}"}
        heatmap, partners = drawn.data
        heatmap = heatmap.update(coloraxis="coloraxis", colorscale=None, colorbar=None, zmin=None, zmax=None)
        figure.add_traces([heatmap.update(**axes), partners.update(**axes)])
    figure.update_layout(title=f"{soft_map.layout.title.text}<br>{anna_map.layout.title.text}")
    return figure


def static_training_panel(
    betas=STATIC_BETAS,
    hashes=STATIC_HASHES,
    tables=STATIC_TABLES,
    sample: int = 0,
    stage: str = "distilled",
    device="auto",
) -> go.Figure:
    """The live panel without a kernel: `distilled_state_figure` (the panel's update and drawing) for test
    sequence `sample` and every β in `betas` and z in `hashes` (the menu) and ℓ in `tables` (the slider),
    precomputed, one state shown at a time; it moves in exported HTML and in the book. The titles carry each
    setting's test error (mean of 10 hash draws, from the shipped results table) and what this sequence
    gets wrong. `STATIC_SMOKE` is a small grid for smoke runs."""

    def draw(beta, n_hashes, n_tables):
        return distilled_state_figure(beta, n_tables, n_hashes, sample, stage, device)

    figure = precomputed_figure(draw, ("n_tables", tables), {"beta": betas, "n_hashes": hashes})
    return figure.update_layout(margin={"t": 150})  # room for the two-line title and its subtitle


# ----------------------------------------------------------------------------------------------------
# Static pictures
# ----------------------------------------------------------------------------------------------------

PHASE_NAMES = {
    "surrogate": "softmax surrogate",
    "kernel": "collision kernel",
    "anna": "ANNA (straight-through)",
}


def curves_figure(history: training.History, title: str) -> go.Figure:
    """Training loss (mean of 100 steps) and test error along the three phases, one colour per phase."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "test error"))
    offset = 0
    for phase, colour in zip(training.PHASES, ("#1f77b4", "#ff7f0e", "#2ca02c"), strict=True):
        loss = np.asarray(history.loss[phase])
        if len(loss):
            window = min(100, len(loss))
            smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
            steps = offset + np.arange(window, len(loss) + 1)
            figure.add_scatter(
                x=steps, y=smooth, name=PHASE_NAMES[phase], line={"color": colour}, row=1, col=1
            )
            figure.add_scatter(
                x=offset + np.asarray(history.eval_steps[phase]),
                y=history.test_error[phase],
                mode="lines+markers",
                line={"color": colour},
                showlegend=False,
                row=1,
                col=2,
            )
        offset += len(loss)
    figure.update_yaxes(type="log", row=1, col=1)
    figure.update_xaxes(title="step")
    figure.update_layout(title=title, width=900, height=340)
    return figure


def partner_cosines(model, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Cosines between q̂_i and k̂_j in a Match2 model's attention, for partner pairs (x_i + x_j ≡ 0, j ≠ i)
    and for all other pairs j ≠ i."""
    with torch.no_grad():
        h = model.embed(x.to(model.classifier.weight.device))
        q, k, _ = (part[:, 0] for part in model.blocks[0].attention.split_heads(h))  # (B, N, m): one head
        cos = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-1, -2)).cpu()
    x = x.cpu()
    off_diagonal = ~torch.eye(x.shape[1], dtype=torch.bool)
    partner = ((x[:, :, None] + x[:, None, :]) % model.config.vocab_size == 0) & off_diagonal
    return cos[partner].numpy(), cos[~partner & off_diagonal].numpy()


COSINE_BINS = 80


def cosine_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The share of `values` in each bin between `edges`: a histogram binned here, so the figure carries
    COSINE_BINS numbers per series instead of every pair's cosine (hundreds of thousands)."""
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return counts / max(len(values), 1)


def cosine_figure(cosines: dict, dim: int, n_tables: int = 8, n_hashes: int = 1) -> go.Figure:
    """Histograms of partner and other cosines per model, under the chance that ANNA's ℓ tables of z
    cross-polytope hashes find a key at that cosine."""
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    edges = np.linspace(-1, 1, COSINE_BINS + 1)
    for name, pairs in cosines.items():
        for label, values, opacity in (
            (f"{name}: partners", pairs[0], 0.6),
            (f"{name}: other keys", pairs[1], 0.3),
        ):
            shares = cosine_shares(values, edges)
            figure.add_bar(x=(edges[:-1] + edges[1:]) / 2, y=shares, width=edges[1] - edges[0], name=label,
                           opacity=opacity)  # fmt: skip
    cos = torch.linspace(-1, 1, 201, dtype=torch.float64)
    found = lsh.amplification(
        lsh.collision_probability_of_cosine(cos, "cross_polytope", dim=dim), n_hashes, n_tables
    )
    figure.add_scatter(
        x=cos.numpy(),
        y=found.numpy(),
        name=f"P(found) with ℓ = {n_tables}, z = {n_hashes}",
        line={"color": "black"},
        secondary_y=True,
    )
    figure.update_layout(
        barmode="overlay",
        width=900,
        height=380,
        title="where the partner keys sit, and what LSH can find there",
    )
    figure.update_xaxes(title="cosine(q̂_i, k̂_j)")
    figure.update_yaxes(title="share of pairs", secondary_y=False)
    figure.update_yaxes(
        title="probability of ≥ 1 collision",
        range=[0, 1.02],
        tickvals=[0, 0.25, 0.5, 0.75, 1],
        showgrid=False,
        secondary_y=True,
    )
    figure.update_layout(legend={"x": 1.12})  # clear of the right-hand axis title
    return figure


def figure1_match2(record: dict, which: str = "distilled_grid") -> go.Figure:
    """Our version of the paper's Figure 1 (left, as a summary describes it): Match2 test error against ℓ,
    one curve per z, on a log axis (errors span four orders of magnitude; an error of 0 is drawn at
    `ERROR_FLOOR`, and the hover text gives the value)."""
    errors = np.asarray(record[which])  # (ℓ, z)
    tables = [ells[0] for ells in training.GRIDS["match2"]["n_tables"]]
    figure = go.Figure()
    for column, z in enumerate(training.GRIDS["match2"]["n_hashes"]):
        figure.add_scatter(
            x=tables,
            y=np.maximum(errors[:, column], ERROR_FLOOR),
            customdata=errors[:, column],
            hovertemplate=f"z = {z}, ℓ = %{{x}}: error %{{customdata:.3%}}<extra></extra>",
            name=f"z = {z}",
            mode="lines+markers",
        )
    kind = "distilled" if which == "distilled_grid" else "zero-shot"
    figure.update_layout(
        title=f"Match2, β = {record['beta']:g}, {kind}: ANNA test error (mean of 10 hash draws)",
        xaxis_title="ℓ (tables)",
        yaxis={
            "title": "test error (0 drawn at the bottom)",
            "type": "log",
            "tickvals": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1],
            "ticktext": ["0", "0.01 %", "0.1 %", "1 %", "10 %", "100 %"],
        },
        width=620,
        height=400,
    )
    return figure


def figure1_induction(record: dict, which: str = "distilled_grid") -> go.Figure:
    """Our version of the paper's Figure 1 (right, as a summary describes it): induction-heads error over
    (ℓ₁, ℓ₂) at the best z."""
    grid = training.GRIDS["induction"]
    errors = np.asarray(record[which])  # (ℓ₁·ℓ₂ pairs, z)
    firsts = sorted({pair[0] for pair in grid["n_tables"]})
    seconds = sorted({pair[1] for pair in grid["n_tables"]})
    best = errors.min(axis=1).reshape(len(firsts), len(seconds))
    best_z = np.asarray(grid["n_hashes"])[errors.argmin(axis=1)].reshape(len(firsts), len(seconds))
    figure = go.Figure(
        go.Heatmap(
            z=best,
            x=[str(s) for s in seconds],
            y=[str(f) for f in firsts],
            colorscale="Viridis",
            zmin=0,
            colorbar={"title": "error"},
            text=best_z,
            texttemplate="%{z:.3f}<br>z=%{text}",
        )
    )
    figure.update_layout(
        title=f"induction heads, {'distilled' if which == 'distilled_grid' else 'zero-shot'}: "
        "two-layer ANNA error at the best z",
        xaxis_title="ℓ₂ (layer 2)",
        yaxis_title="ℓ₁ (layer 1)",
        width=620,
        height=420,
    )
    return figure


def attention_maps_figure(model, x: torch.Tensor, title: str) -> go.Figure:
    """Every layer's attention matrix on one sequence x [N], side by side, under the model's attention."""
    with torch.no_grad():
        maps = [
            w[0, 0].cpu().numpy() for w in model.attention_weights(x[None].to(model.classifier.weight.device))
        ]
    figure = make_subplots(
        rows=1, cols=len(maps), subplot_titles=[f"layer {i + 1}" for i in range(len(maps))]
    )
    for column, weights in enumerate(maps, start=1):
        figure.add_heatmap(
            z=weights, colorscale="Viridis", zmin=0, zmax=1, showscale=column == 1, row=1, col=column
        )
        figure.update_yaxes(
            autorange="reversed", title="query position" if column == 1 else None, row=1, col=column
        )
        figure.update_xaxes(title="key position", row=1, col=column)
    figure.update_layout(title=title, width=450 * len(maps), height=440)
    return figure


def weight_copy_figure(diagnoses: dict, shares: dict, tables) -> go.Figure:
    """Why weight copying fails (`training.diagnosis`), one colour per β. Left: the partner key's share of
    the attention against ℓ, under ANNA (z = 1, solid) and under the surrogate's softmax (dashed). Right:
    test error of the surrogate as softmax, as ANNA, and as ANNA keeping only the partner collisions."""
    figure = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("partner's share of the attention", "test error (ℓ = 8, z = 1)"),
    )
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
    for (beta, diagnosis), colour in zip(diagnoses.items(), colours, strict=False):
        figure.add_scatter(
            x=list(tables),
            y=shares[beta],
            name=f"β = {beta:g}: ANNA",
            mode="lines+markers",
            line={"color": colour},
            row=1,
            col=1,
        )
        figure.add_scatter(
            x=[min(tables), max(tables)],
            y=[diagnosis["softmax"].partner_share] * 2,
            name=f"β = {beta:g}: softmax",
            mode="lines",
            line={"color": colour, "dash": "dash"},
            row=1,
            col=1,
        )
    kinds = {
        "softmax": "softmax (surrogate)",
        "anna": "ANNA",
        "partners only": "ANNA, partner collisions only",
    }
    for (kind, label), colour in zip(kinds.items(), ("#7f7f7f", "#9467bd", "#8c564b"), strict=True):
        figure.add_bar(
            x=[f"β = {beta:g}" for beta in diagnoses],
            y=[diagnosis[kind].error for diagnosis in diagnoses.values()],
            name=label,
            marker_color=colour,
            row=1,
            col=2,
        )
    figure.update_xaxes(title="ℓ (tables)", type="log", tickvals=list(tables), row=1, col=1)
    figure.update_yaxes(title="mean weight on partner keys", range=[0, 1.02], row=1, col=1)
    figure.update_yaxes(title="test error", row=1, col=2)
    figure.update_layout(
        title="the surrogate's weights as ANNA: LSH finds the partner, but the average the MLP reads changes",
        barmode="group",
        width=980,
        height=400,
    )
    return figure


# ----------------------------------------------------------------------------------------------------
# The notebook's helpers: what its cells would otherwise spell out
# ----------------------------------------------------------------------------------------------------

SMOKE_STEPS = {"steps": 200, "kernel_steps": 50, "finetune_steps": 100, "eval_every": 50}


def partner_table(tokens: torch.Tensor, rows: int = 6, modulus: int = 37) -> str:
    """For the first `rows` positions i of one Match2 sequence [N]: x_i, the partner value (−x_i mod |Σ|)
    and the positions j that hold it (i itself included), one line each."""
    lines = []
    for i in range(rows):
        value, needed = int(tokens[i]), int((-tokens[i]) % modulus)
        found = [j for j in range(len(tokens)) if int(tokens[j]) == needed]
        lines.append(f"x[{i}] = {value:2d} needs {needed:2d}: found at positions {found}")
    return "\n".join(lines)


def phase_summary(runs: dict) -> str:
    """One line per β of {β: TrainResult}: the surrogate's final test error and the seconds per phase."""
    lines = []
    for beta, run in runs.items():
        seconds = run.history.seconds
        lines.append(
            f"β = {beta:4g}: surrogate test error {run.history.test_error['surrogate'][-1]:.4f}; phases "
            f"took {seconds['surrogate']:.0f} s + {seconds['kernel']:.0f} s + {seconds['anna']:.0f} s"
        )
    return "\n".join(lines)


ERROR_FLOOR = 1e-5  # below one wrong position in 10 draws of 256 × 32: drawn as "0" on a log colour scale


def match2_grids_figure(results: dict) -> go.Figure:
    """The Match2 error grids over ℓ (x) and z (y): one column per β, zero-shot above, distilled below, on a
    log colour scale (errors span 0.001 % to 50 %; a zero is drawn at the floor and labelled 0)."""
    runs = results["runs"]
    figure = make_subplots(
        rows=2,
        cols=len(runs),
        subplot_titles=[f"β = {r['beta']:g}, {kind}" for kind in ("zero-shot", "distilled") for r in runs],
        horizontal_spacing=0.06,
        vertical_spacing=0.14,
    )
    ticks = [-5, -4, -3, -2, -1, 0]
    tables = [ells[0] for ells in training.GRIDS["match2"]["n_tables"]]
    for row, which in enumerate(("zero_shot_grid", "distilled_grid"), start=1):
        for col, record in enumerate(runs, start=1):
            errors = np.asarray(record[which]).T  # (z, ℓ)
            figure.add_heatmap(
                z=np.log10(np.maximum(errors, ERROR_FLOOR)),
                x=tables,
                y=training.GRIDS["match2"]["n_hashes"],
                customdata=errors,
                hovertemplate="ℓ = %{x}, z = %{y}: error %{customdata:.3%}<extra></extra>",
                coloraxis="coloraxis",
                row=row,
                col=col,
            )
    labels = ["0", "0.01 %", "0.1 %", "1 %", "10 %", "100 %"]
    figure.update_layout(
        coloraxis={
            "colorscale": "Viridis",
            "cmin": -5,
            "cmax": 0,
            "colorbar": {"title": "test error", "tickvals": ticks, "ticktext": labels},
        },
        title="Match2 test error over ℓ and z (mean of 10 hash draws), log colour scale",
        width=980,
        height=560,
    )
    figure.update_xaxes(title="ℓ (tables)", row=2)
    figure.update_yaxes(title="z (hashes)", col=1)
    return figure


def wrong_positions_per_draw(
    model, x, y, n_tables: int = 8, n_hashes: int = 1, n_draws: int = 10, first_seed: int = 0
) -> list:
    """How many positions of the sequences x the model gets wrong as ANNA (ℓ, z), in each hash draw (seeds
    first_seed, …, first_seed + n_draws − 1)."""
    errors = training.anna_errors(model, x, y, n_tables, n_hashes, n_draws, first_seed, impl="dense")
    return [round(error * y.numel()) for error in errors]


def error_causes_per_draw(model, x, y, n_tables: int = 8, n_hashes: int = 1, n_draws: int = 10) -> list:
    """`diagnosis.error_causes` of the model as ANNA (ℓ, z) in each hash draw: (missed, diluted, false alarm)
    position counts."""
    from ..training import diagnosis

    causes = []
    for seed in range(n_draws):
        found = diagnosis.error_causes(model, Anna(n_tables, n_hashes, seed=seed, impl="dense"), x, y)
        causes.append((found.missed, found.diluted, found.false_alarm))
    return causes


def induction_models(run) -> dict:
    """The shipped induction-heads model three ways: the surrogate under softmax, its weights copied into
    ANNA (ℓ₁ = 96, ℓ₂ = 32, z = 1), and the distilled weights as ANNA (ℓ₁ = 96, ℓ₂ = 32, z = 2)."""
    surrogate = run.surrogate()
    copied = surrogate.with_attention([Anna(96, n_hashes=1), Anna(32, n_hashes=1, seed=1000)])
    distilled = run.model.with_attention([Anna(96, n_hashes=2), Anna(32, n_hashes=2, seed=1000)])
    return {
        "softmax surrogate": surrogate,
        "copied into ANNA, z = 1": copied,
        "distilled ANNA, z = 2": distilled,
    }


def induction_maps_figure(models: dict, x: torch.Tensor) -> go.Figure:
    """Each model's attention on one sequence x [N]: one row per model (its name as the row's title), one
    column per layer."""
    maps = {}
    for name, model in models.items():
        with torch.no_grad():
            weights = model.attention_weights(x[None].to(model.classifier.weight.device))
        maps[name] = [w[0, 0].cpu().numpy() for w in weights]
    n_layers = len(next(iter(maps.values())))
    titles = [f"{name}: layer {layer + 1}" for name in maps for layer in range(n_layers)]
    figure = make_subplots(
        rows=len(maps), cols=n_layers, subplot_titles=titles, vertical_spacing=0.08, horizontal_spacing=0.08
    )
    for row, layers in enumerate(maps.values(), start=1):
        for col, weights in enumerate(layers, start=1):
            figure.add_heatmap(z=weights, coloraxis="coloraxis", row=row, col=col)
            figure.update_yaxes(autorange="reversed", row=row, col=col)
    figure.update_annotations(font_size=12)
    figure.update_xaxes(title="key position j", row=len(maps))
    figure.update_yaxes(title="query position i", col=1)
    figure.update_layout(
        coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": 1, "colorbar": {"title": "weight"}},
        title="induction heads: each layer's attention on one test sequence",
        width=900,
        height=380 * len(maps),
    )
    return figure


STAGE_GRIDS = {"zero-shot": "zero_shot_grid", "distilled": "distilled_grid"}


def induction_error(record: dict, stage: str, first: int, second: int, n_hashes: int) -> float:
    """The shipped induction-heads test error of `stage` ("zero-shot" or "distilled") as ANNA with
    ℓ₁ = `first` tables in layer 1, ℓ₂ = `second` in layer 2 and z = `n_hashes`, looked up by name in the
    results table."""
    if stage not in STAGE_GRIDS:
        raise ValueError(f"stage: expected one of {sorted(STAGE_GRIDS)}, got {stage!r}")
    grid = training.GRIDS["induction"]
    if [first, second] not in grid["n_tables"] or n_hashes not in grid["n_hashes"]:
        raise ValueError(
            f"(ℓ₁, ℓ₂, z) = ({first}, {second}, {n_hashes}) is not in the shipped grid: ℓ pairs "
            f"{grid['n_tables']}, z {grid['n_hashes']}"
        )
    row = grid["n_tables"].index([first, second])
    return record[STAGE_GRIDS[stage]][row][grid["n_hashes"].index(n_hashes)]


def best_induction_error(record: dict, stage: str) -> float:
    """The lowest error of `stage` over the whole shipped induction-heads grid."""
    return float(np.min(record[STAGE_GRIDS[stage]]))


def figure1_induction_pair(record: dict) -> go.Figure:
    """`figure1_induction` for the zero-shot and the distilled grid side by side, on one colour scale."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("zero-shot", "distilled"), horizontal_spacing=0.12)
    for col, which in enumerate(("zero_shot_grid", "distilled_grid"), start=1):
        for trace in figure1_induction(record, which).data:
            figure.add_trace(trace.update(coloraxis="coloraxis"), row=1, col=col)
        figure.update_xaxes(title="ℓ₂ (layer 2)", type="category", row=1, col=col)
        figure.update_yaxes(type="category", row=1, col=col)
    figure.update_yaxes(title="ℓ₁ (layer 1)", col=1)
    figure.update_layout(
        coloraxis={
            "colorscale": "Viridis",
            "cmin": 0,
            "cmax": float(np.max([record["zero_shot_grid"], record["distilled_grid"]])),
            "colorbar": {"title": "error"},
        },
        title="induction heads: two-layer ANNA error at the best z (printed in each cell)",
        width=980,
        height=420,
    )
    return figure


def match2_error(record: dict, stage: str, n_tables: int, n_hashes: int) -> float:
    """The shipped Match2 test error of `stage` ("zero-shot" or "distilled") as ANNA with ℓ = `n_tables`
    and z = `n_hashes` (mean over the table's hash draws), looked up by name in the results table."""
    if stage not in STAGE_GRIDS:
        raise ValueError(f"stage: expected one of {sorted(STAGE_GRIDS)}, got {stage!r}")
    grid = training.GRIDS["match2"]
    if [n_tables] not in grid["n_tables"] or n_hashes not in grid["n_hashes"]:
        raise ValueError(f"(ℓ, z) = ({n_tables}, {n_hashes}) is not in the shipped Match2 grid")
    row = grid["n_tables"].index([n_tables])
    return record[STAGE_GRIDS[stage]][row][grid["n_hashes"].index(n_hashes)]
