"""Notebook 01 (LSH intuition): pictures of how hashes carve the sphere, and the live ℓ/z panel.

`lsh_update(...)` is the panel's pure computation: theory curves, measured collision rates and a
near-neighbour search, all for one setting of (ℓ, z, family, dim, device). `draw_lsh` writes that data
into two figures; the same figures serve the static pictures and the live `FigureWidget`s.
`rho_by_dimension` and `rho_figure` compare the two families by their quality ρ as the dimension grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from .. import lsh
from ..checks import check_count
from ..device import cpu_generator
from .common import Panel, device_options, dropdown, slider

NEAR_ANGLE = math.pi / 6  # "near" for the search demo: within 30° of the query
DIMS = (2, 3, 4, 8, 16, 32, 64)
DEFAULTS = {"n_tables": 4, "n_hashes": 2, "family": "cross_polytope", "dim": 16, "device": "auto"}
# The cross-polytope theory is a tabulated Monte-Carlo estimate (standard error <= 0.004) interpolated
# on a 3° grid; hyperplane theory is exact.
THEORY_SLACK = {"hyperplane": 0.0, "cross_polytope": 0.015}


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

    def deviation_in_sigmas(self) -> float:
        """Largest |measured − theory| over the dots in binomial standard errors, past the theory's slack."""
        excess = np.abs(self.measured - self.expected) - THEORY_SLACK[self.family]
        return float(np.max(np.clip(excess, 0, None) / np.maximum(self.stderr, 1e-3)))


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
) -> LSHPanelData:
    """Theory vs measurement of collisions at (ℓ, z), and near-neighbour search quality with ℓ tables."""
    grid = torch.linspace(0, math.pi, 91, dtype=torch.float64)
    dots = torch.linspace(0, math.pi, 13, dtype=torch.float64)
    # Keep the measurement's cost near 64 hash tables whatever ℓ is; fewer draws mean wider error bars.
    n_draws = max(4, 64 // n_tables)
    measured, stderr = lsh.empirical_collision_rate(
        dots, dim, n_tables, n_hashes, family, n_draws=n_draws, n_pairs=n_pairs, seed=seed, device=device
    )
    tables = lsh.LSHTables(dim, n_tables, n_hashes, family, seed=seed, device=device)
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
            "width": 520,
            "height": 380,
            "margin": {"t": 50},
        },
    )
    search = go.Figure(
        [go.Scatter(name="first u tables", mode="lines+markers+text", textposition="top left")],
        layout={
            "xaxis": {"title": "points examined (% of N)", "rangemode": "tozero"},
            "yaxis": {"title": "recall of near neighbours (%)", "range": [0, 105]},
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


def cross_polytope_sphere_figure(n_points: int = 4000, seed: int = 0) -> go.Figure:
    """One cross-polytope hash in 3-D: a random rotation, then the nearest of ±e₁, ±e₂, ±e₃ — 6 regions."""
    generator = cpu_generator(seed, "lsh-sphere-picture")
    points = torch.nn.functional.normalize(torch.randn(n_points, 3, generator=generator), dim=-1)
    buckets = lsh.LSHTables(3, 1, 1, "cross_polytope", seed=seed, device="cpu").bucket_ids(points)[0]
    figure = go.Figure(
        go.Scatter3d(
            x=points[:, 0].numpy(),
            y=points[:, 1].numpy(),
            z=points[:, 2].numpy(),
            mode="markers",
            marker={"size": 2.5, "color": buckets.numpy(), "colorscale": "Turbo"},
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
        """1/c², the exponent the cross-polytope approaches for small r as m grows."""
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
