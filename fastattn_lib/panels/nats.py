"""Notebook 05 (NAtS KV-cache pruning): painted roles and their mask, and the policy comparison panel.

* `key_lifetimes` and `lifetime_figure(pattern, window)`: how long each key stays visible, as one bar per
  token from its position to the last query that sees it, coloured by role (the lifetime diagram).
* `roles_update(pattern, window, step)`: roles typed as letters (G, L, S), the mask they make, and what
  the cache holds after `step`: the "paint the roles" panel (`step_bounds` keeps its step slider within
  the typed pattern).
* `policy_update(sparsity_weight, window, budget)`: the shipped NAtS model at λ and the dense model under
  StreamingLLM and H2O at `budget`, decoded with eviction on held-out sequences; `static_nats_panel` is
  the same panel without a kernel (a grid of its states, precomputed, behind a slider and a menu).
* `regimes_figure(fine_tuned, frozen)`: the two training regimes side by side (accuracy against cache
  fraction), the frozen one with every policy on the same weights.
* The notebook's longer steps as named functions: `decode_against_mask`, `load_or_train`,
  `compare_with_baselines`, `role_grid`, `role_summary`, `record_values`, `smallest_full_recall_window`,
  `roles_in_chunks`, `chunk_rows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .. import nats
from .. import nats_experiment as experiment
from ..checks import check_budget, check_window
from ..device import resolve_device
from .common import Panel, device_options, dropdown, slider
from .static import combined_views, precomputed_figure

LETTERS = {"G": nats.GLOBAL, "L": nats.LOCAL, "S": nats.SLIDING}
ROLE_COLOURS = ("#d62728", "#1f77b4", "#7f7f7f")  # global, local, sliding
# A heatmap scale over roles 0, 1, 2 in three flat bands: its colour bar shows three colours, not a blend
ROLE_SCALE = [[band / 3 + edge / 3, colour] for band, colour in enumerate(ROLE_COLOURS) for edge in (0, 1)]
DEFAULT_PATTERN = "GSSLLSGSLLLSSSGSSSLSSSSS"


def parse_roles(pattern: str) -> torch.Tensor:
    """ "GLS…" → roles [N]; anything but the letters G, L, S (any case) is refused."""
    letters = pattern.replace(" ", "").upper()
    bad = sorted(set(letters) - set(LETTERS))
    if not letters or bad:
        raise ValueError(f"pattern: expected letters G (global), L (local), S (sliding), got {pattern!r}")
    return torch.tensor([LETTERS[c] for c in letters])


def key_lifetimes(roles: torch.Tensor, window: int) -> torch.Tensor:
    """For each key j, the last query i that sees it (N − 1 when it stays to the end): [N]."""
    mask = nats.nats_mask(roles, window)  # (N, N): a column is one run of queries from the diagonal down
    n = mask.shape[-1]
    return (mask * torch.arange(n)[:, None]).amax(dim=0)


def lifetime_figure(pattern: str, window: int) -> go.Figure:
    """The lifetime diagram: token j is a bar from query j to the last query that sees it, coloured by its
    role; a bar that reaches the right edge stays in the cache to the end of the sequence."""
    roles = parse_roles(pattern)
    n, ends = len(roles), key_lifetimes(roles, window)
    figure = go.Figure()
    for role, name in enumerate(nats.ROLE_NAMES):
        keys = [j for j in range(n) if roles[j] == role]
        figure.add_bar(
            y=keys,
            x=[int(ends[j]) - j + 1 for j in keys],  # queries j … end, both included
            base=[j - 0.5 for j in keys],
            orientation="h",
            width=0.7,  # in key units: traces with few bars would otherwise get bars as wide as their gaps
            marker={"color": ROLE_COLOURS[role]},
            name=f"{name} ({'GLS'[role]})",
            customdata=[int(ends[j]) for j in keys],
            hovertemplate="key %{y}: seen by queries %{y} to %{customdata}<extra></extra>",
        )
    figure.update_layout(
        title=f"how long each key stays in the cache: roles {pattern}, W = {window}",
        xaxis={"title": "query i (decoding step)", "range": [-0.5, n - 0.5], "dtick": 2},
        yaxis={"title": "key j", "range": [n - 0.5, -0.5], "dtick": 1},
        barmode="overlay",
        width=700,
        height=120 + 22 * n,
    )
    return figure


def step_bounds(pattern: str, step: int) -> tuple[int, int]:
    """The step slider's range for `pattern`: its last position N − 1, and `step` clamped into [0, N − 1]."""
    last = len(parse_roles(pattern)) - 1
    return last, min(max(step, 0), last)


@dataclass
class RolesPanelData:
    roles: np.ndarray  # (N,)
    window: int
    step: int
    mask: np.ndarray  # (N, N) bool
    held: np.ndarray  # (N,) bool: in the cache after `step`
    cache_sizes: np.ndarray  # (N,) entries held after each step


def roles_update(pattern: str, window: int, step: int) -> RolesPanelData:
    roles = parse_roles(pattern)
    n = len(roles)
    if not 0 <= step < n:
        raise ValueError(f"step: expected 0 ≤ step < {n}, got {step}")
    mask = nats.nats_mask(roles, window)
    # what the cache holds after each step: keys some later query still sees (one more token appended)
    extended = nats.nats_mask(torch.cat([roles, torch.tensor([nats.SLIDING])]), window)
    future = torch.stack([extended[t + 1 :, :n].any(dim=0) & (torch.arange(n) <= t) for t in range(n)])
    return RolesPanelData(
        roles=roles.numpy(),
        window=window,
        step=step,
        mask=mask.numpy(),
        held=future[step].numpy(),
        cache_sizes=future.sum(dim=1).numpy(),
    )


def roles_figures() -> list[go.Figure]:
    mask = go.Figure(
        [go.Heatmap(colorscale=[[0, "white"], [1, "#444"]], zmin=0, zmax=1, showscale=False)],
        layout={
            "title": "mask: query i (row) sees key j (column)",
            "width": 460,
            "height": 460,
            "xaxis": {"title": "key j", "side": "top"},
            "yaxis": {"title": "query i", "autorange": "reversed"},
        },
    )
    cache = go.Figure(
        [go.Scatter(mode="lines+markers", name="entries held"), go.Bar(name="held after step", opacity=0.6)],
        layout={
            "title": "the cache",
            "width": 460,
            "height": 460,
            "xaxis": {"title": "decoding step t / position j"},
            "yaxis": {"title": "entries held after step t"},
            "showlegend": False,
        },
    )
    return [mask, cache]


def draw_roles(figures, data: RolesPanelData) -> None:
    mask, cache = figures
    # Plain float lists rather than numpy int64 arrays, which the widget would have to ship as typed arrays.
    labels = [f"{j}:{'GLS'[r]}" for j, r in enumerate(data.roles)]
    mask.data[0].update(z=data.mask.astype(float).tolist(), x=labels, y=list(range(len(labels))))
    colours = [ROLE_COLOURS[r] for r in data.roles]
    cache.data[0].update(x=list(range(len(labels))), y=data.cache_sizes.tolist())
    cache.data[1].update(
        x=list(range(len(labels))), y=data.held.astype(float).tolist(), marker={"color": colours}
    )
    held = int(data.held.sum())
    cache.layout.title = f"after step {data.step}: {held} entries held (bars: which; red G, blue L, grey S)"


def roles_state_figure(window: int, step: int, pattern: str = DEFAULT_PATTERN) -> go.Figure:
    """One state of the roles panel, its two views side by side, drawn as the live panel draws them."""
    mask, cache = roles_figures()
    data = roles_update(pattern, window, step)
    draw_roles((mask, cache), data)
    figure = combined_views((mask, cache), [(1, 1), (1, 2)], rows=1, cols=2, horizontal_spacing=0.12)
    figure.update_yaxes(range=[0, len(data.roles) + 1], row=1, col=2)  # fixed: the bars move, not the axis
    figure.update_layout(
        title=cache.layout.title.text, showlegend=False, width=920, height=480, margin={"t": 120}
    )  # room for the mask's key labels, on top as in the live panel
    return figure


def static_roles_panel(pattern: str = DEFAULT_PATTERN, windows=(2, 0)) -> go.Figure:
    """The roles panel without a kernel, for one role string: every step t behind a plotly slider and each
    W of `windows` in the menu (typing a new pattern needs the live panel)."""
    steps = range(len(parse_roles(pattern)))
    return precomputed_figure(
        lambda window, step: roles_state_figure(window, step, pattern), ("step", steps), {"window": windows}
    )


def roles_panel(pattern: str = DEFAULT_PATTERN, window: int = 2) -> Panel:
    """Type roles, move W and the step: the mask and the cache follow. A newly typed pattern resets the step
    slider's range to its length (and clamps the step) before the panel redraws."""
    last = len(parse_roles(pattern)) - 1
    controls = {
        "pattern": widgets.Text(value=pattern, description="roles", continuous_update=False),
        "window": slider("W", window, 0, 8),
        "step": slider("step t", (last + 1) // 2, 0, last),
    }

    def follow_pattern(change) -> None:  # registered before the panel's own observer, so it runs first
        try:
            last, step = step_bounds(change["new"], controls["step"].value)
        except ValueError:
            return  # a malformed pattern: the panel's redraw reports it
        controls["step"].value = step  # first: the clamped step lies inside both the old and the new range
        controls["step"].max = last

    controls["pattern"].observe(follow_pattern, names="value")
    figures = [go.FigureWidget(figure) for figure in roles_figures()]
    return Panel(controls, figures, roles_update, draw_roles)


# ----------------------------------------------------------------------------------------------------
# Policies on the shipped models
# ----------------------------------------------------------------------------------------------------

PANEL_SEQUENCES = 64  # held-out sequences decoded per panel state
PANEL_WINDOWS = tuple(range(17))  # the W slider
PANEL_BUDGETS = tuple(range(4, 49, 4))  # the budget slider


@lru_cache(maxsize=8)
def shipped_model(sparsity_weight=None, device="auto"):
    return experiment.load_model(sparsity_weight, device)[0]


@lru_cache(maxsize=16)
def _swept(policy_name: str, sparsity_weight, knobs: tuple, device) -> dict:
    """{knob: DecodeResult} of one policy at every knob, in one batched decode (`evaluate_sweep`): NAtS with
    the λ model at every W, or a baseline on the dense model at every budget. Kept, so that moving the
    slider of that knob only looks up."""
    tokens, answers = experiment.held_out(PANEL_SEQUENCES)
    model = shipped_model(sparsity_weight, device)
    results = experiment.evaluate_sweep(model, policy_name, sparsity_weight, knobs, tokens, answers)
    return dict(zip(knobs, results, strict=True))


def _decoded(policy_name: str, sparsity_weight, knob: int, knobs: tuple, device):
    """The DecodeResult at `knob`: from the slider's sweep when the slider offers it, else on its own."""
    return _swept(policy_name, sparsity_weight, knobs if knob in knobs else (knob,), device)[knob]


@dataclass
class PolicyPanelData:
    results: list  # DecodeResult for NAtS, sliding window + sink, H2O


def policy_update(sparsity_weight: float, window: int, budget: int, device="auto") -> PolicyPanelData:
    """`PANEL_SEQUENCES` held-out sequences decoded: NAtS (the λ model's roles, eviction with window W)
    and, on the dense model, StreamingLLM and H2O keeping `budget` entries.

    A slider's knob changes one policy's decoding only, so each policy is decoded at every value of its
    slider at once, the first time it is asked for, and kept: the first update at a λ takes a few seconds
    (every W, and once every budget), moving W or the budget afterwards only looks up."""
    device = resolve_device(device)
    check_window(window)
    check_budget(budget)
    results = [_decoded("nats", float(sparsity_weight), window, PANEL_WINDOWS, device)]
    results += [_decoded(name, None, budget, PANEL_BUDGETS, device) for name in ("sliding", "h2o")]
    return PolicyPanelData(results)


POLICY_LABELS = {"nats": "NAtS", "sliding": "sliding window + sink", "h2o": "H2O", "full": "full cache"}
# A colour per policy, shared by its line and its bar, and line styles that keep both baselines visible where
# they hold the same number of entries (their lines coincide at every budget): a wide dash under dots.
POLICY_STYLES = {
    "nats": {"color": "#636efa", "width": 2},
    "sliding": {"color": "#ef553b", "dash": "dash", "width": 4},
    "h2o": {"color": "#00cc96", "dash": "dot", "width": 2},
}


def policy_figures() -> list[go.Figure]:
    sizes = go.Figure(
        [go.Scatter(mode="lines", name=POLICY_LABELS[p], line=POLICY_STYLES[p]) for p in POLICY_STYLES],
        layout={
            "title": "cache size while decoding",
            "width": 480,
            "height": 400,
            "xaxis": {"title": "decoding step"},
            "yaxis": {"title": "entries held (mean over layers, heads)"},
        },
    )
    accuracy = go.Figure(
        [
            go.Bar(
                x=[POLICY_LABELS[p] for p in POLICY_STYLES],
                marker_color=[style["color"] for style in POLICY_STYLES.values()],
            )
        ],
        layout={"title": "answer accuracy", "width": 420, "height": 400, "yaxis": {"range": [0, 1.05]}},
    )
    return [sizes, accuracy]


def draw_policies(figures, data: PolicyPanelData) -> None:
    sizes, accuracy = figures
    for trace, result in zip(sizes.data, data.results, strict=True):
        trace.update(x=list(range(len(result.sizes_over_steps))), y=result.sizes_over_steps)
    accuracy.data[0].update(
        y=[r.accuracy for r in data.results],
        text=[f"{r.accuracy:.0%} with {r.cache_at_last_query:.1f} entries" for r in data.results],
    )


def policy_panel(sparsities=experiment.SPARSITIES, device="auto", **overrides) -> Panel:
    """Live panel: λ (a shipped checkpoint), W, the baselines' budget, device."""
    values = {
        "sparsity_weight": 2.0,
        "window": experiment.WINDOW,
        "budget": 16,
        "device": device,
        **overrides,
    }
    controls = {
        "sparsity_weight": dropdown("λ", values["sparsity_weight"], sparsities),
        "window": slider("W", values["window"], PANEL_WINDOWS[0], PANEL_WINDOWS[-1]),
        "budget": slider("budget", values["budget"], PANEL_BUDGETS[0], PANEL_BUDGETS[-1], 4),
        "device": dropdown("device", values["device"], device_options()),
    }
    figures = [go.FigureWidget(figure) for figure in policy_figures()]
    return Panel(controls, figures, policy_update, draw_policies)


STATIC_SPARSITIES = (2.0, 0.0, 8.0)  # the kernel-free panel's menu: λ, the live panel's default first
STATIC_WINDOWS = (8, 1, 0)  # and W: the trained window first, then the smallest that still recalls, then none
STATIC_BUDGETS = (8, 24, 48)  # its slider: the baselines' budget
SIZE_AXIS_MAX = 52  # entries: the live panel's largest budget (48), the query itself, and some room


@lru_cache(maxsize=1)
def _policy_views_layout() -> go.Layout:
    """The kernel-free policy panel's frame: the two views' axes side by side, with fixed ranges so that
    moving between states moves the traces, not the axes (built once: plotly is slow at it)."""
    sizes, accuracy = policy_figures()
    figure = make_subplots(rows=1, cols=2, column_widths=[0.58, 0.42], horizontal_spacing=0.1)
    figure.update_xaxes(title_text=sizes.layout.xaxis.title.text, range=[0, 63], row=1, col=1)
    y_title = sizes.layout.yaxis.title.text
    figure.update_yaxes(title_text=y_title, range=[0, SIZE_AXIS_MAX], row=1, col=1)
    figure.update_yaxes(title_text="answer accuracy", range=[0, 1.15], row=1, col=2)  # room for the labels
    legend = {"x": 0.01, "y": 0.98, "xanchor": "left", "yanchor": "top", "bgcolor": "rgba(255,255,255,0.8)"}
    figure.update_layout(legend=legend, width=1000, height=470)
    return figure.layout


def policy_state_figure(sparsity_weight: float, window: int, budget: int, device="auto") -> go.Figure:
    """One state of the kernel-free policy panel: the live panel's `policy_update` and `draw_policies` for
    these settings, both views side by side, titled with the baselines' budget."""
    sizes, accuracy = policy_figures()
    draw_policies((sizes, accuracy), policy_update(sparsity_weight, window, budget, device))
    figure = go.Figure(layout=_policy_views_layout())
    figure.add_traces(list(sizes.data))
    bars = accuracy.data[0].update(showlegend=False, xaxis="x2", yaxis="y2")
    figure.add_trace(bars.update(textposition="outside", textangle=0, cliponaxis=False))
    nats_result = accuracy.data[0].text[0]
    figure.update_layout(title=f"baselines' budget {budget}; NAtS: {nats_result}")
    return figure


def static_nats_panel(
    sparsities=STATIC_SPARSITIES, windows=STATIC_WINDOWS, budgets=STATIC_BUDGETS, device="auto"
) -> go.Figure:
    """The policy panel without a kernel: `policy_state_figure` (the cache size at every decoding step and
    the answer accuracy of NAtS, StreamingLLM and H2O on the panel's held-out sequences) for every budget of
    `budgets` (the slider) and every λ of `sparsities` and W of `windows` (the menu), precomputed by
    `policy_update` (a few seconds per λ on an idle CPU; the default grid has 27 states)."""

    def draw(budget, **menu):
        return policy_state_figure(menu["λ"], menu["W"], budget, device)

    return precomputed_figure(draw, ("budget", budgets), {"λ": sparsities, "W": windows})


# ----------------------------------------------------------------------------------------------------
# Static pictures
# ----------------------------------------------------------------------------------------------------


def budget_figure(results: list[dict]) -> go.Figure:
    """Accuracy against entries held at the last query: baselines as curves over budgets, NAtS per λ."""
    figure = go.Figure()
    for policy in ("sliding", "h2o", "nats", "full"):
        rows = sorted((r for r in results if r["policy"] == policy), key=lambda r: r["cache_at_last_query"])
        text = [f"λ = {r['setting']:g}" if policy == "nats" else "" for r in rows]
        figure.add_scatter(
            x=[r["cache_at_last_query"] for r in rows],
            y=[r["accuracy"] for r in rows],
            mode="markers+text" if policy in ("nats", "full") else "lines+markers",
            text=text,
            # below the points (they sit at accuracy ≈ 1), alternating sides so that neighbours do not overlap
            textposition=["bottom left" if k % 2 == 0 else "bottom right" for k in range(len(rows))],
            marker={"size": 12 if policy in ("nats", "full") else 8},
            name=POLICY_LABELS[policy],
        )
    figure.update_layout(
        title="answer accuracy against KV-cache size",
        xaxis={"title": "entries the last query sees (of 63)", "type": "log"},
        yaxis={"title": "answer accuracy", "range": [0, 1.05]},
        width=700,
        height=420,
    )
    return figure


def nats_label(row: dict) -> str:
    """λ, and C when the roles are chunked."""
    chunk = row.get("chunk", 1)
    return f"λ = {row['setting']:g}" + (f", C = {chunk}" if chunk > 1 else "")


REGIME_TITLES = (
    "fine-tuned: NAtS retrains every weight",
    "frozen: every policy on the same dense weights",
)


def regimes_figure(fine_tuned: list[dict], frozen: list[dict]) -> go.Figure:
    """Accuracy against cache fraction in the two regimes side by side: the baselines (StreamingLLM, H2O)
    as curves over budgets, the full cache, and NAtS per λ (and C) as labelled points."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=REGIME_TITLES, shared_yaxes=True)
    colours = {"sliding": "#7f7f7f", "h2o": "#2ca02c", "nats": "#d62728", "full": "#1f77b4"}
    for col, results in enumerate((fine_tuned, frozen), start=1):
        for policy in ("sliding", "h2o", "full", "nats"):
            rows = sorted((r for r in results if r["policy"] == policy), key=lambda r: r["cache_fraction"])
            marked = policy in ("nats", "full")
            figure.add_scatter(
                x=[r["cache_fraction"] for r in rows],
                y=[r["accuracy"] for r in rows],
                mode="markers+text" if marked else "lines+markers",
                text=[nats_label(r) if policy == "nats" else "" for r in rows],
                # above and below the points in turn, so that labels of close points do not overlap
                textposition=["top center" if k % 2 == 0 else "bottom center" for k in range(len(rows))],
                marker={"size": 11 if marked else 7, "color": colours[policy]},
                name=POLICY_LABELS[policy],
                legendgroup=policy,
                showlegend=col == 1,
                row=1,
                col=col,
            )
        figure.update_xaxes(title="cache fraction at the last query", range=[0, 1.1], row=1, col=col)
    figure.update_yaxes(title="answer accuracy", range=[0, 1.12], row=1, col=1)
    figure.update_layout(width=1100, height=480, font={"size": 11})
    return figure


def role_grid(model, tokens: torch.Tensor) -> np.ndarray:
    """The role (0 G, 1 L, 2 S) `model` gives each token of one sequence [N], per layer and head: an array
    [layers·H, N], layer by layer. `model` runs NAtS attention, whose layers report the roles they used."""
    with torch.no_grad():
        _, one_hots = model.run(tokens[None].to(model.classifier.weight.device))
    if any(one_hot is None for one_hot in one_hots):
        raise ValueError(f"model: expected a model running NatsAttention, got {model.attentions!r}")
    return np.concatenate([one_hot[0].argmax(-1).cpu().numpy() for one_hot in one_hots])


def role_summary(model, tokens: torch.Tensor) -> tuple[list[float], float]:
    """What `model` (running NAtS attention) learned, over sequences tokens [B, N]: the share of SLIDING
    roles in each layer, and the share of sequences in which every record's value (the token two after a
    MARK) is GLOBAL in at least one head of the last layer."""
    with torch.no_grad():
        _, one_hots = model.run(tokens.to(model.classifier.weight.device))
    roles = torch.stack([one_hot.argmax(-1) for one_hot in one_hots]).cpu()  # (layers, B, H, N)
    sliding = (roles == nats.SLIDING).float().mean(dim=(1, 2, 3))
    values = torch.nn.functional.pad(tokens == experiment.MARK, (2, 0))[:, : tokens.shape[1]]  # (B, N)
    kept = ((roles[-1] == nats.GLOBAL).any(dim=1) | ~values).all(dim=1)  # (B,)
    return sliding.tolist(), float(kept.float().mean())


def record_values(tokens: torch.Tensor) -> list[int]:
    """The positions of the records' values in one sequence: the token two after each MARK."""
    return [j for j in range(2, len(tokens)) if int(tokens[j - 2]) == experiment.MARK]


def role_strip_figure(model, tokens: torch.Tensor) -> go.Figure:
    """The learned role of every token of one sequence, per layer and head (rows), coloured G/L/S; `model`
    runs NAtS attention (`nats.NatsAttention`), whose layers report the roles they used."""
    grid = role_grid(model, tokens)  # (layers·H, N)
    n_heads = model.config.n_heads
    names = [f"layer {row // n_heads + 1} head {row % n_heads + 1}" for row in range(grid.shape[0])]
    symbols = [token_name(int(t)) for t in tokens]
    figure = go.Figure(
        go.Heatmap(
            z=grid,
            x=[f"{j}:{s}" for j, s in enumerate(symbols)],
            y=names,
            colorscale=ROLE_SCALE,
            zmin=0,
            zmax=2,
            colorbar={
                "tickvals": [1 / 3, 1, 5 / 3],
                "ticktext": ["global", "local", "sliding"],
            },  # band centres,
        )
    )
    figure.update_layout(
        title="learned roles on one held-out sequence",
        yaxis={"autorange": "reversed"},  # layer 1 head 1 on top, in reading order
        # every column labelled (plotly would skip every other one), so the text's positions can be found
        xaxis={"tickmode": "linear", "dtick": 1, "tickangle": -90, "tickfont": {"size": 9}},
        width=1100,
        height=340,
    )
    return figure


def token_name(token: int) -> str:
    if token == experiment.BOS:
        return "BOS"
    if token == experiment.MARK:
        return "MARK"
    if token == experiment.QRY:
        return "QRY"
    if token < experiment.FIRST_VALUE:
        return f"k{token - experiment.FIRST_KEY}"
    if token < experiment.FIRST_FILLER:
        return f"v{token - experiment.FIRST_VALUE}"
    return f"f{token - experiment.FIRST_FILLER}"


def training_figure(history) -> go.Figure:
    """Loss along dense pre-training and NAtS fine-tuning, and the held-out answer accuracy."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "held-out answer accuracy"))
    offset = 0
    for phase in ("dense", "nats"):
        loss = np.asarray(history.loss[phase])
        figure.add_scatter(x=offset + np.arange(1, len(loss) + 1), y=loss, name=phase, row=1, col=1)
        figure.add_scatter(
            x=offset + np.asarray(history.eval_steps[phase]),
            y=history.accuracy[phase],
            mode="lines+markers",
            name=f"{phase} accuracy",
            row=1,
            col=2,
        )
        offset += len(loss)
    figure.update_layout(width=900, height=340)
    return figure


# ----------------------------------------------------------------------------------------------------
# The notebook's longer steps, named
# ----------------------------------------------------------------------------------------------------


def decode_against_mask(seed: int, n_heads: int = 4, n: int = 48, window: int = 4):
    """Random queries, keys, values and roles (the first token GLOBAL) in `n_heads` heads: the largest
    difference between decoding with role-based eviction and masked attention, and the entries each
    head's cache holds after the last step. Returns (gap, [n_heads] sizes)."""
    generator = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(n_heads, n, 16, generator=generator) for _ in range(3))
    roles = torch.randint(0, 3, (n_heads, n), generator=generator)
    roles[:, 0] = nats.GLOBAL
    out, cache_sizes = nats.decode_with_cache(q, k, v, roles, window)
    masked = nats.masked_attention(q, k, v, nats.nats_mask(roles, window))
    return float((out - masked).abs().max()), cache_sizes[:, -1]


def load_or_train(smoke: bool, retrain: bool, device="auto"):
    """The dense model and the NAtS model fine-tuned at λ = 2, with its training history (both phases):
    the shipped checkpoints, or trained here, with a few steps when `smoke`, the full recipe when
    `retrain`. Returns (dense, tuned, history)."""
    if not (smoke or retrain):
        dense = experiment.load_model(None, device)[0]
        return (dense, *experiment.load_model(2.0, device))
    steps = {"dense_steps": 60, "nats_steps": 30, "eval_every": 30} if smoke else {}
    dense, dense_history = experiment.pretrain_dense(experiment.NatsTrainConfig(**steps), device)
    config = experiment.NatsTrainConfig(**steps, sparsity_weight=2.0)
    return (dense, *experiment.finetune_nats(dense, dense_history, config, device))


def compare_with_baselines(nats_model, setting: float, dense_model, tokens, answers, margin: int = 4):
    """Decode `tokens` with NAtS (`nats_model`'s own roles; λ = `setting` is only recorded), then with
    StreamingLLM ("sliding") and H2O on `dense_model`, each given `margin` entries more than NAtS keeps at
    the last query. Returns (NAtS result, the baselines' budget, {name: result})."""
    nats_result = experiment.evaluate(nats_model, "nats", setting, tokens, answers)
    budget = int(np.ceil(nats_result.cache_at_last_query)) + margin
    baselines = {
        name: experiment.evaluate(dense_model, name, budget, tokens, answers) for name in ("sliding", "h2o")
    }
    return nats_result, budget, baselines


def nats_accuracy(sparsity_weight: float, window: int, device="auto") -> float:
    """The answer accuracy of the shipped NAtS model at λ on the panel's held-out sequences, decoding with
    eviction window W: the policy panel's NAtS bar alone, without decoding the baselines."""
    tokens, answers = experiment.held_out(PANEL_SEQUENCES)
    model = shipped_model(float(sparsity_weight), resolve_device(device))
    return experiment.evaluate(model, "nats", sparsity_weight, tokens, answers, window=window).accuracy


def smallest_full_recall_window(sparsity_weight: float = 2.0, windows=range(9), device="auto") -> int:
    """The smallest eviction window W at which the shipped NAtS model at λ answers every query of the
    panel's held-out sequences, decoding with eviction (None if no W of `windows` does)."""
    return next((w for w in windows if nats_accuracy(sparsity_weight, w, device) == 1), None)


def roles_in_chunks(grid: np.ndarray, chunk: int) -> bool:
    """Whether every row of a role grid [rows, N] is constant on each chunk of `chunk` consecutive tokens."""
    first_of_chunk = np.arange(grid.shape[-1]) // chunk * chunk
    return bool((grid == grid[:, first_of_chunk]).all())


def chunk_rows(results: list[dict], setting: float) -> dict[int, dict]:
    """The NAtS rows of a results table at λ = `setting`, by chunk size C."""
    return {r["chunk"]: r for r in results if r["policy"] == "nats" and r["setting"] == setting}
