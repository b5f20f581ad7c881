"""Notebook 01 (LSH intuition): pictures of how hashes carve the sphere, and the live ℓ/z panel.

`setup` is the notebook's first step (plotly, device, problem sizes). `lsh_update(...)` is the panel's pure
computation: theory curves, measured collision rates and a near-neighbour search, all for one setting of
(ℓ, z, family, dim, device). `draw_lsh` writes that data into two figures; the same figures serve the static
pictures (`collision_figure`) and the live `FigureWidget`s. `search_by_hashes` and `recall_work_figure`
compare several z at once; `rotations_of` hands the from-scratch cell the library's random Gaussian matrices.
`gaussian_cross_polytope_rate` measures one cross-polytope hash with D ≠ m rotated dimensions.
`static_lsh_panel` is the panel without a kernel: both views for a grid of settings, one shown at a time.
`rho_by_dimension` and `rho_figure` compare the two families by their quality ρ as the dimension grows.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .. import lsh
from ..checks import check_count
from ..device import resolve_device
from ..kernels import signed_axis_reference
from .common import Panel, device_options, dropdown, setup_plotly, slider, states_at
from .static import precomputed_figure

NEAR_ANGLE = math.pi / 6  # "near" for the search demo: within 30° of the query
DIMS = (2, 3, 4, 8, 16, 32, 64)
DEFAULTS = {"n_tables": 4, "n_hashes": 2, "family": "cross_polytope", "dim": 16, "device": "auto"}
# The cross-polytope theory is a tabulated Monte-Carlo estimate (standard error <= 0.004) interpolated
# on a 3° grid; hyperplane theory is exact.
THEORY_SLACK = {"hyperplane": 0.0, "cross_polytope": 0.015}
SMOKE_SIZES = (500, 32)  # (points, queries) of a smoke run


def setup(device="auto", smoke: bool = False, n_points: int = 2000, n_queries: int = 64):
    """The notebook's first step: plotly set up for live and exported figures, the device resolved, and the
    problem sizes (`SMOKE_SIZES` in a smoke run). Prints where it computes; returns (device, N, queries)."""
    check_count("n_points", n_points)
    check_count("n_queries", n_queries)
    setup_plotly()
    device = resolve_device(device)
    n_points, n_queries = SMOKE_SIZES if smoke else (n_points, n_queries)
    print(f"computing on {device}; N = {n_points} points, {n_queries} queries")
    return device, n_points, n_queries


@dataclass
class LSHPanelData:
    """Everything the two panel views draw, for one setting."""

    n_tables: int
    n_hashes: int
    family: str
    dim: int
    device: str
    angles_deg: np.ndarray  # dense grid for the theory curves
    single_hash: np.ndarray  # p(θ), one hash function
    theory: np.ndarray  # 1 − (1 − p^z)^ℓ
    measured_deg: np.ndarray  # angles of the measured dots
    measured: np.ndarray  # measured P[collide in ≥1 table]
    stderr: np.ndarray
    expected: np.ndarray  # theory at the measured angles
    search: lsh.SearchQuality
    rotation: str = "dense"  # of a cross-polytope hash (`lsh.LSHTables`)

    def deviation_in_sigmas(self) -> float:
        """Largest |measured − theory| over the dots in binomial standard errors, past the theory's slack."""
        excess = np.abs(self.measured - self.expected) - THEORY_SLACK[self.family]
        return float(np.max(np.clip(excess, 0, None) / np.maximum(self.stderr, 1e-3)))

    def measured_at(self, degrees: float) -> tuple[float, float]:
        """(measured rate, its standard error) at the measured angle `degrees` (one of `measured_deg`)."""
        hits = np.flatnonzero(np.isclose(self.measured_deg, degrees))
        if len(hits) != 1:
            raise ValueError(
                f"degrees: expected one of {self.measured_deg.round(1).tolist()}, got {degrees!r}"
            )
        return float(self.measured[hits[0]]), float(self.stderr[hits[0]])

    def gap_in_sigmas(self, other: LSHPanelData, max_degrees: float = 180.0) -> float:
        """Largest |this measured rate − other's| over their common angles up to `max_degrees`, in standard
        errors of the difference (two independent measurements)."""
        if not np.allclose(self.measured_deg, other.measured_deg):
            raise ValueError("other: expected rates measured at the same angles")
        kept = self.measured_deg <= max_degrees
        spread = np.sqrt(self.stderr[kept] ** 2 + other.stderr[kept] ** 2)
        return float(np.max(np.abs(self.measured[kept] - other.measured[kept]) / np.maximum(spread, 1e-3)))


def lsh_update(
    n_tables: int,
    n_hashes: int,
    family: str,
    dim: int,
    device="auto",
    seed: int = 0,
    n_points: int = 2000,
    n_queries: int = 64,
    n_pairs: int = 64,
    rotation: str = "dense",
) -> LSHPanelData:
    """Theory vs measurement of collisions at (ℓ, z), and near-neighbour search quality with ℓ tables.
    The theory is the Gaussian (`"dense"`) rotation's; `rotation="hadamard"` measures the structured one
    against it."""
    grid = torch.linspace(0, math.pi, 91, dtype=torch.float64)
    dots = torch.linspace(0, math.pi, 13, dtype=torch.float64)
    # Keep the measurement's cost near 64 hash tables whatever ℓ is; fewer draws mean wider error bars.
    n_draws = max(4, 64 // n_tables)
    measured, stderr = lsh.empirical_collision_rate(
        dots, dim, n_tables, n_hashes, family, n_draws, n_pairs, seed, device, rotation
    )
    tables = lsh.LSHTables(dim, n_tables, n_hashes, family, seed=seed, device=device, rotation=rotation)
    points, queries = lsh.planted_near_neighbors(
        n_points, n_queries, dim, NEAR_ANGLE, seed=seed, device=device
    )
    return LSHPanelData(
        n_tables=n_tables,
        n_hashes=n_hashes,
        family=family,
        dim=dim,
        device=str(tables.device),
        angles_deg=np.degrees(grid.numpy()),
        single_hash=lsh.collision_probability(grid, family, dim=dim).numpy(),
        theory=lsh.collision_probability(grid, family, n_hashes, n_tables, dim=dim).numpy(),
        measured_deg=np.degrees(dots.numpy()),
        measured=measured.numpy(),
        stderr=stderr.numpy(),
        expected=lsh.collision_probability(dots, family, n_hashes, n_tables, dim=dim).numpy(),
        search=lsh.near_neighbor_search(tables, points, queries, NEAR_ANGLE),
        rotation=rotation,
    )


def lsh_figures() -> list[go.Figure]:
    """The panel's two empty views: collision probability vs angle, and recall vs work."""
    collisions = go.Figure(
        [
            go.Scatter(name="one hash p(θ)", line={"dash": "dot", "color": "gray"}),
            go.Scatter(name="theory 1−(1−p^z)^ℓ", line={"color": "#1f77b4"}),
            go.Scatter(name="measured", mode="markers", marker={"color": "#d62728", "size": 8}),
        ],
        layout={
            "xaxis": {"title": "angle θ between the two vectors (degrees)", "range": [0, 180]},
            "yaxis": {"title": "P[same bucket in ≥ 1 table]", "range": [-0.02, 1.02]},
            # Inside the plot's empty top-right corner (every curve falls with θ), so no label is cut off.
            "legend": {
                "x": 0.98,
                "y": 0.98,
                "xanchor": "right",
                "yanchor": "top",
                "bgcolor": "rgba(255,255,255,0.8)",
            },
            "width": 520,
            "height": 380,
            "margin": {"t": 50},
        },
    )
    search = go.Figure(
        [go.Scatter(name="first u tables", mode="lines+markers+text", textposition="top left")],
        layout={
            "xaxis": {"title": "points examined (% of N)", "rangemode": "tozero"},
            "yaxis": {"title": "recall of near neighbours (%)", "range": [0, 112]},
            "width": 520,
            "height": 380,
            "margin": {"t": 50},
            "showlegend": False,
        },
    )
    return [collisions, search]


def draw_lsh(figures, data: LSHPanelData) -> None:
    collisions, search = figures
    single, theory, measured = collisions.data
    single.update(x=data.angles_deg, y=data.single_hash)
    theory.update(x=data.angles_deg, y=data.theory)
    measured.update(
        x=data.measured_deg,
        y=data.measured,
        error_y={"type": "data", "array": 2 * data.stderr, "visible": True},
    )
    collisions.layout.title = f"{data.family}, m = {data.dim}: z = {data.n_hashes}, ℓ = {data.n_tables}"
    quality = data.search
    search.data[0].update(
        x=100 * quality.examined.numpy(),
        y=100 * quality.recall.numpy(),
        text=[f"u={u}" if u in (1, data.n_tables) else "" for u in quality.n_tables.tolist()],
    )
    search.layout.title = (
        f"near (≤ {math.degrees(NEAR_ANGLE):.0f}°) neighbours found among N points: "
        f"{100 * quality.recall[-1]:.0f}% recall, {100 * quality.examined[-1]:.1f}% examined"
    )


def collision_figure(data: LSHPanelData, compare: LSHPanelData | None = None) -> go.Figure:
    """The panel's left view, drawn once for `data`: p(θ), 1 − (1 − p^z)^ℓ and the measured dots; with
    `compare` (the same setting under the Hadamard rotation) its measured dots too, in green."""
    figures = lsh_figures()
    draw_lsh(figures, data)
    figure = figures[0]
    if compare is not None:
        figure.data[2].name = f"measured, {data.rotation} rotation"
        figure.add_scatter(
            x=compare.measured_deg,
            y=compare.measured,
            error_y={"type": "data", "array": 2 * compare.stderr, "visible": True},
            mode="markers",
            marker={"color": "#2ca02c", "size": 7, "symbol": "diamond"},
            name=f"measured, {compare.rotation} rotation",
        )
    return figure


def search_by_hashes(
    n_tables: int,
    hashes=(1, 2, 3),
    family: str = "cross_polytope",
    dim: int = 16,
    device="auto",
    seed: int = 0,
    n_points: int = 2000,
    n_queries: int = 64,
) -> dict[int, lsh.SearchQuality]:
    """Near-neighbour search quality with the first u = 1 … ℓ tables, for each z in `hashes`, on the same
    planted points and queries (each query `NEAR_ANGLE` from one point)."""
    hashes = list(hashes)
    if not hashes:
        raise ValueError("hashes: expected at least one z, got none")
    points, queries = lsh.planted_near_neighbors(
        n_points, n_queries, dim, NEAR_ANGLE, seed=seed, device=device
    )
    return {
        z: lsh.near_neighbor_search(
            lsh.LSHTables(dim, n_tables, z, family, seed=seed, device=device), points, queries, NEAR_ANGLE
        )
        for z in hashes
    }


def recall_work_figure(searches: dict[int, lsh.SearchQuality], family: str = "cross_polytope") -> go.Figure:
    """Recall against work (percent of N examined, log axis: the z's differ by factors), one line per z, one
    marker per number of tables u."""
    figure = lsh_figures()[1]
    figure.data = ()
    for z, quality in searches.items():
        figure.add_scatter(
            x=100 * quality.examined.numpy(),
            y=100 * quality.recall.numpy(),
            name=f"z = {z}",
            mode="lines+markers",
        )
    n_tables = len(next(iter(searches.values())).n_tables)
    figure.update_layout(
        title=f"recall vs work for ℓ = 1 … {n_tables} tables ({family})",
        xaxis={"type": "log", "rangemode": "normal"},
        showlegend=True,
        width=620,
    )
    return figure


def rotations_of(tables: lsh.LSHTables) -> torch.Tensor:
    """The random rotations a dense cross-polytope `LSHTables` drew, as A [ℓ, z, D, m]: A[u, t] rotates x
    for hash t of table u (the library stores them side by side, as one m × ℓ·z·D matrix per head)."""
    if tables.family != "cross_polytope" or tables.rotation != "dense" or tables.n_heads is not None:
        raise ValueError(f"tables: expected single-head dense cross-polytope tables, got {tables!r}")
    shape = (tables.n_tables, tables.n_hashes, tables.out_per_hash, tables.dim)
    return tables.projections[0].T.reshape(shape)


def gaussian_cross_polytope_rate(
    theta: float, dim: int, rotated_dim: int, n_samples: int = 100_000, seed: int = 0
) -> tuple[float, float]:
    """Measured probability that one cross-polytope hash with a Gaussian matrix A ∈ R^{D×m}
    (D = `rotated_dim`, m = `dim`; the library's tables fix D = m) gives two unit vectors at angle θ the
    same signed axis: `n_samples` random pairs at exactly θ, each hashed with its own fresh A.
    Returns (rate, binomial standard error)."""
    check_count("rotated_dim", rotated_dim)
    check_count("n_samples", n_samples)
    x, y = lsh.pairs_at_angle(theta, n_samples, dim, seed=seed, device="cpu")  # [1, n_samples, m] each
    generator = torch.Generator().manual_seed(seed)
    hits = 0
    for start in range(0, n_samples, 10_000):  # chunks: every pair draws D·m numbers of its own
        pair = slice(start, start + 10_000)
        a = torch.randn(len(x[0, pair]), rotated_dim, dim, generator=generator)  # one A per pair
        ax, ay = (a @ x[0, pair, :, None]).squeeze(-1), (a @ y[0, pair, :, None]).squeeze(-1)
        hits += int((signed_axis_reference(ax) == signed_axis_reference(ay)).sum())
    rate = hits / n_samples
    return rate, math.sqrt(max(rate * (1 - rate), 1e-12) / n_samples)


TRY_CHANGES = {  # notebook 01's section 6 suggestions, each from the panel's opening state (`DEFAULTS`)
    "hyperplanes, z = 1, m = 16": {"family": "hyperplane", "n_hashes": 1},
    "hyperplanes, z = 1, m = 64": {"family": "hyperplane", "n_hashes": 1, "dim": 64},
    "z = 6, ℓ = 16": {"n_hashes": 6, "n_tables": 16},  # its search at u = 4 tables is the ℓ = 4 state
    "z = 2, ℓ = 16": {"n_tables": 16},
}


def try_states(device="auto", seed: int = 0) -> dict[str, LSHPanelData]:
    """`lsh_update` at each of `TRY_CHANGES` from the opening (`DEFAULTS`, 2000 points, 64 queries)."""
    return states_at(lsh_update, {**DEFAULTS, "device": device, "seed": seed}, TRY_CHANGES)


def lsh_panel(device="auto", **overrides) -> Panel:
    """The live panel: ℓ, z, family, dim and device; each change recomputes `lsh_update` and redraws."""
    values = {**DEFAULTS, "device": device, **overrides}
    for dim in DIMS:  # tabulate cross-polytope theory now (about 1 s), so switching dim later is instant
        lsh.collision_probability(0.0, "cross_polytope", dim=dim)
    controls = {
        "n_tables": slider("ℓ (tables)", values["n_tables"], 1, 16),
        "n_hashes": slider("z (hashes)", values["n_hashes"], 1, 6),
        "family": dropdown("family", values["family"], lsh.FAMILIES),
        "dim": dropdown("dim", values["dim"], DIMS),
        "device": dropdown("device", values["device"], device_options()),
    }
    figures = [go.FigureWidget(figure) for figure in lsh_figures()]
    return Panel(controls, figures, lsh_update, draw_lsh)


STATIC_TABLES = (1, 2, 4, 8, 16)  # the kernel-free panel's slider: ℓ
STATIC_HASHES = (1, 2, 4, 6)  # its menu: z, for each family
STATIC_FAMILIES = ("cross_polytope", "hyperplane")  # the one ANNA uses first: the panel opens on it


@functools.cache
def _two_views_layout() -> go.Layout:
    """The kernel-free panel's frame, the two views' axes side by side (built once: plotly is slow at it)."""
    collisions, search = lsh_figures()
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)  # no subplot titles: the menu sits there
    figure.update_xaxes(title_text=collisions.layout.xaxis.title.text, range=[0, 180], row=1, col=1)
    figure.update_yaxes(title_text=collisions.layout.yaxis.title.text, range=[-0.02, 1.02], row=1, col=1)
    figure.update_xaxes(title_text=search.layout.xaxis.title.text, rangemode="tozero", row=1, col=2)
    figure.update_yaxes(title_text=search.layout.yaxis.title.text, range=[0, 112], row=1, col=2)
    legend = {"x": 0.44, "y": 0.98, "xanchor": "right", "yanchor": "top", "bgcolor": "rgba(255,255,255,0.8)"}
    figure.update_layout(legend=legend, width=1000, height=470)
    return figure.layout


def panel_state_figure(
    n_tables: int,
    n_hashes: int,
    family: str,
    dim: int = 16,
    device="auto",
    seed: int = 0,
    n_points: int = 2000,
    n_queries: int = 64,
) -> go.Figure:
    """Both views of the panel side by side for one setting, titled with its recall and work: one state of
    the kernel-free panel."""
    data = lsh_update(
        n_tables, n_hashes, family, dim, device, seed=seed, n_points=n_points, n_queries=n_queries
    )
    collisions, search = lsh_figures()
    draw_lsh((collisions, search), data)
    figure = go.Figure(layout=_two_views_layout())
    figure.add_traces(list(collisions.data))
    figure.add_trace(search.data[0].update(showlegend=False, xaxis="x2", yaxis="y2"))
    recall, examined = 100 * data.search.recall[-1], 100 * data.search.examined[-1]
    figure.update_layout(title=f"ℓ = {n_tables}: {recall:.0f}% recall, {examined:.1f}% examined")
    return figure


def static_lsh_panel(
    dim: int = 16, device="auto", seed: int = 0, n_points: int = 2000, n_queries: int = 64
) -> go.Figure:
    """The panel without a kernel: `panel_state_figure` for every ℓ in `STATIC_TABLES` (the slider) and every
    family and z in `STATIC_HASHES` (the menu), precomputed; it moves in exported HTML and in the book."""

    def draw(n_tables, family, n_hashes):
        return panel_state_figure(n_tables, n_hashes, family, dim, device, seed, n_points, n_queries)

    return precomputed_figure(
        draw, ("n_tables", STATIC_TABLES), {"family": STATIC_FAMILIES, "n_hashes": STATIC_HASHES}
    )


# ----------------------------------------------------------------------------------------------------
# Static pictures for the story
# ----------------------------------------------------------------------------------------------------


def hyperplane_circle_figure(n_hashes: int = 3, n_points: int = 720, seed: int = 0) -> go.Figure:
    """z random lines through the origin cut the circle into at most 2z arcs; colour = bucket of one table."""
    tables = lsh.LSHTables(2, 1, n_hashes, "hyperplane", seed=seed, device="cpu")
    angle = torch.linspace(0, 2 * math.pi, n_points + 1)[:-1]
    circle = torch.stack([angle.cos(), angle.sin()], dim=-1)  # (n_points, 2)
    buckets = tables.bucket_ids(circle)[0].numpy()
    normals = tables.projections[0].T.numpy()  # (z, 2): each hash is the side of the line ⟂ its normal
    figure = go.Figure(
        go.Scatter(
            x=circle[:, 0].numpy(),
            y=circle[:, 1].numpy(),
            mode="markers",
            marker={"color": buckets, "colorscale": "Turbo"},
            name="points, coloured by bucket",
        )
    )
    for h, (a, b) in enumerate(normals):
        direction = np.array([-b, a]) / math.hypot(a, b) * 1.2
        figure.add_scatter(
            x=[-direction[0], direction[0]],
            y=[-direction[1], direction[1]],
            mode="lines",
            line={"color": "black"},
            name=f"hyperplane {h + 1}",
        )
    figure.update_layout(
        title=f"{n_hashes} random hyperplanes: {len(np.unique(buckets))} buckets on the circle",
        xaxis={"title": "x₁", "scaleanchor": "y"},
        yaxis={"title": "x₂"},
        width=480,
        height=460,
    )
    return figure


def cross_polytope_sphere_figure(n_points: int = 20000, seed: int = 0) -> go.Figure:
    """One cross-polytope hash in 3-D: a random Gaussian matrix, then the nearest of ±e₁, ±e₂, ±e₃: 6 regions,
    drawn as a sphere surface (a latitude-longitude grid of about `n_points` points) coloured by bucket."""
    check_count("n_points", n_points, minimum=8)
    n_lat = max(4, round(math.sqrt(n_points / 2)))
    lat, lon = torch.meshgrid(
        torch.linspace(0, math.pi, n_lat, dtype=torch.float64),
        torch.linspace(0, 2 * math.pi, 2 * n_lat, dtype=torch.float64),
        indexing="ij",
    )
    grid = torch.stack([lat.sin() * lon.cos(), lat.sin() * lon.sin(), lat.cos()], dim=-1)  # (lat, lon, 3)
    tables = lsh.LSHTables(3, 1, 1, "cross_polytope", seed=seed, device="cpu")
    buckets = tables.bucket_ids(grid.reshape(-1, 3))[0].reshape(lat.shape)
    x, y, z = (grid[..., i].numpy() for i in range(3))
    figure = go.Figure(
        go.Surface(
            x=x,
            y=y,
            z=z,
            surfacecolor=buckets.numpy(),
            colorscale="Turbo",
            cmin=0,
            cmax=5,
            showscale=False,
            lighting={
                "ambient": 0.85,
                "diffuse": 0.25,
                "specular": 0.05,
            },  # flat colours: buckets, not shading
        )
    )
    figure.update_layout(
        title="cross-polytope hash on the sphere: 2·dim = 6 buckets",
        scene={"xaxis_title": "x₁", "yaxis_title": "x₂", "zaxis_title": "x₃", "aspectmode": "cube"},
        width=520,
        height=480,
    )
    return figure


def amplification_figure(settings=((1, 1), (4, 1), (1, 4), (4, 4), (16, 4))) -> go.Figure:
    """P[collide somewhere] as a function of the one-hash probability p, for several (ℓ, z)."""
    p = np.linspace(0, 1, 201)
    figure = go.Figure()
    for n_tables, n_hashes in settings:
        figure.add_scatter(
            x=p, y=lsh.amplification(p, n_hashes, n_tables), name=f"ℓ={n_tables}, z={n_hashes}"
        )
    figure.update_layout(
        title="AND (z) moves the S-curve right, OR (ℓ) moves it left",
        xaxis_title="one-hash collision probability p",
        yaxis_title="1 − (1 − p^z)^ℓ",
        width=560,
        height=400,
    )
    return figure


@dataclass
class RhoCurves:
    """ρ = ln(1/p₁)/ln(1/p₂) of each family against the dimension m, with p₁ = p(distance r) and
    p₂ = p(distance c·r) for unit vectors."""

    r: float
    c: float
    dims: np.ndarray
    rho: dict[str, np.ndarray]  # family -> ρ at each m

    @property
    def ideal(self) -> float:
        """1/c²: the cross-polytope's m → ∞ limit `cross_polytope_limit` tends to it as r → 0, from below."""
        return 1 / self.c**2

    @property
    def cross_polytope_limit(self) -> float:
        """The cross-polytope's limit as m → ∞ at this r: (1/c²)·(4 − c²r²)/(4 − r²), from Andoni et al.'s
        ln(1/p) = τ²/(4 − τ²)·ln m + O(ln ln m) at Euclidean distance τ."""
        return (4 - (self.c * self.r) ** 2) / (self.c**2 * (4 - self.r**2))


def rho_by_dimension(dims=(8, 16, 32, 64, 128, 256), r: float = 0.3, c: float = 2.0) -> RhoCurves:
    """`lsh.rho(r, c, family, m)` for both families at every m in `dims` (cross-polytope from its tabulated
    Monte-Carlo collision probabilities, so each m costs a table of 16 384 samples the first time)."""
    dims = list(dims)
    if not dims:
        raise ValueError("dims: expected at least one dimension, got none")
    for dim in dims:
        check_count("dims", dim, minimum=2)
    dims = np.asarray(dims, dtype=int)
    rho = {family: np.array([lsh.rho(r, c, family, int(dim)) for dim in dims]) for family in lsh.FAMILIES}
    return RhoCurves(r=r, c=c, dims=dims, rho=rho)


def rho_figure(curves: RhoCurves) -> go.Figure:
    """ρ against m on a log axis, one line per family, with 1/c² and the cross-polytope's m → ∞ limit."""
    figure = go.Figure()
    for family, values in curves.rho.items():
        figure.add_scatter(x=curves.dims, y=values, name=family, mode="lines+markers")
    for level, name in ((curves.ideal, "1/c²"), (curves.cross_polytope_limit, "cross-polytope, m → ∞")):
        figure.add_scatter(
            x=curves.dims[[0, -1]], y=[level, level], name=name, mode="lines", line={"dash": "dash"}
        )
    figure.update_layout(
        title=f"LSH quality ρ against dimension (r = {curves.r:g}, c = {curves.c:g}; lower is better)",
        xaxis={"title": "dimension m", "type": "log", "tickvals": curves.dims},
        yaxis={"title": "ρ = ln(1/p₁) / ln(1/p₂)", "rangemode": "tozero"},
        width=620,
        height=400,
    )
    return figure
