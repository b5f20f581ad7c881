"""Notebook 01's panel: pure updates agree with theory, widgets redraw."""

import numpy as np
import pytest
import torch

from fastattn_lib import lsh
from fastattn_lib.kernels import signed_axis_reference
from fastattn_lib.panels import lsh as lsh_panels


@pytest.mark.parametrize("family", ["hyperplane", "cross_polytope"])
@pytest.mark.parametrize(("n_tables", "n_hashes"), [(1, 1), (4, 2), (16, 3)])
def test_lsh_update_measurements_agree_with_theory(family, n_tables, n_hashes):
    data = lsh_panels.lsh_update(n_tables, n_hashes, family, 16, "cpu", n_points=300, n_queries=16)
    assert data.deviation_in_sigmas() < 4
    assert np.all(np.diff(data.theory) <= 1e-12)
    assert data.search.recall.shape == (n_tables,)
    assert np.all(np.diff(data.search.recall.numpy()) >= 0) and np.all(
        np.diff(data.search.examined.numpy()) >= 0
    )


def test_lsh_panel_moves_its_figures():
    panel = lsh_panels.lsh_panel(device="cpu")
    curve, search = np.array(panel.figures[0].data[1].y), np.array(panel.figures[1].data[0].x)
    panel.controls["n_tables"].value = 9
    assert panel.last_error is None
    assert not np.allclose(curve, panel.figures[0].data[1].y)
    assert len(panel.figures[1].data[0].x) == 9 and len(search) == lsh_panels.DEFAULTS["n_tables"]
    panel.controls["family"].value = "hyperplane"
    assert "hyperplane" in panel.figures[0].layout.title.text


def test_static_figures_have_titles_and_labels():
    for figure in (
        lsh_panels.hyperplane_circle_figure(),
        lsh_panels.cross_polytope_sphere_figure(n_points=200),
        lsh_panels.amplification_figure(),
    ):
        assert figure.layout.title.text
    circle = lsh_panels.hyperplane_circle_figure(n_hashes=3)
    assert len(np.unique(circle.data[0].marker.color)) <= 6  # z lines through the origin: at most 2z arcs
    sphere = lsh_panels.cross_polytope_sphere_figure()
    assert sorted(np.unique(sphere.data[0].surfacecolor)) == list(range(6))  # 2·3 signed axes, all hit


def test_rho_by_dimension_reads_lsh_rho_and_draws_one_line_per_family():
    curves = lsh_panels.rho_by_dimension(dims=(8, 16), r=0.3, c=2.0)
    for family in lsh.FAMILIES:
        expected = [lsh.rho(0.3, 2.0, family, dim) for dim in (8, 16)]
        assert np.allclose(curves.rho[family], expected)
    assert np.allclose(curves.rho["hyperplane"], 0.467, atol=5e-4)  # 1 − θ/π needs no dimension
    assert np.all(curves.rho["cross_polytope"] < curves.rho["hyperplane"])
    figure = lsh_panels.rho_figure(curves)
    assert figure.layout.title.text and figure.layout.xaxis.title.text and figure.layout.yaxis.title.text
    names = [trace.name for trace in figure.data]
    assert names[:2] == list(lsh.FAMILIES) and len(names) == 4
    assert np.allclose(figure.data[2].y, 0.25)


def test_cross_polytope_limit_lies_below_one_over_c_squared_and_meets_it_as_r_shrinks():
    wide, tiny = (lsh_panels.RhoCurves(r, 2.0, np.array([8]), {}) for r in (0.3, 1e-4))
    assert wide.cross_polytope_limit < wide.ideal == 0.25
    assert abs(tiny.cross_polytope_limit - 0.25) < 1e-6


@pytest.mark.parametrize("dims", [(), (8, 1), (8.5,)])
def test_rho_by_dimension_refuses_bad_dims(dims):
    with pytest.raises(ValueError, match="dims"):
        lsh_panels.rho_by_dimension(dims=dims)


def test_changing_z_redraws_the_theory_and_the_dots_stay_on_it():
    """What notebook 01 used to check in a cell after its panel: moving the z slider redraws once, without
    error, the theory curve changes, and the new measurement agrees with it."""
    panel = lsh_panels.lsh_panel(device="cpu")
    before = np.array(panel.figures[0].data[1].y)
    panel.controls["n_hashes"].value = 4
    assert panel.last_error is None and panel.n_updates == 2
    assert not np.allclose(before, np.array(panel.figures[0].data[1].y)), "the theory curve changes with z"
    assert panel.data.n_hashes == 4 and panel.data.deviation_in_sigmas() < 4


@pytest.mark.parametrize(
    ("settings", "recall", "examined"),
    [  # the "Try:" prompts under notebook 01's Figure 9, at the panel's sizes (2000 points, 64 queries)
        ((4, 1, "hyperplane", 64), (0.99, 1.0), (0.9, 0.97)),
        ((4, 6, "cross_polytope", 16), (0.05, 0.2), (0.0, 0.0005)),
        ((16, 6, "cross_polytope", 16), (0.15, 0.35), (0.0, 0.001)),
        ((4, 2, "cross_polytope", 16), (0.6, 0.8), (0.01, 0.025)),
        ((16, 2, "cross_polytope", 16), (0.95, 1.0), (0.04, 0.07)),
    ],
)
def test_what_the_try_prompts_promise(settings, recall, examined):
    n_tables, n_hashes, family, dim = settings
    search = lsh_panels.lsh_update(n_tables, n_hashes, family, dim, "cpu").search
    assert recall[0] <= search.recall[-1] <= recall[1]
    assert examined[0] <= search.examined[-1] <= examined[1]
    if family == "hyperplane":
        assert 0.45 <= search.examined[0] <= 0.55  # one bit: the first table makes half the points candidates


def test_setup_resolves_the_device_and_shrinks_a_smoke_run(capsys):
    device, n_points, n_queries = lsh_panels.setup("cpu", smoke=True, n_points=2000, n_queries=64)
    assert str(device) == "cpu" and (n_points, n_queries) == lsh_panels.SMOKE_SIZES
    assert lsh_panels.setup("cpu", smoke=False, n_points=300, n_queries=8)[1:] == (300, 8)
    assert "computing on cpu" in capsys.readouterr().out
    with pytest.raises(ValueError, match="n_points"):
        lsh_panels.setup("cpu", n_points=0)


def test_measured_at_reads_one_dot_and_refuses_an_angle_not_measured():
    data = lsh_panels.lsh_update(1, 1, "hyperplane", 16, "cpu", n_points=100, n_queries=4)
    rate, stderr = data.measured_at(90)
    index = int(np.flatnonzero(np.isclose(data.measured_deg, 90))[0])
    assert (rate, stderr) == (data.measured[index], data.stderr[index]) and abs(rate - 0.5) < 4 * stderr
    with pytest.raises(ValueError, match="degrees"):
        data.measured_at(91)


def test_collision_figure_draws_the_data_it_is_given():
    data = lsh_panels.lsh_update(2, 3, "cross_polytope", 8, "cpu", n_points=100, n_queries=4)
    figure = lsh_panels.collision_figure(data)
    assert np.allclose(figure.data[1].y, data.theory) and np.allclose(figure.data[2].y, data.measured)
    assert "z = 3, ℓ = 2" in figure.layout.title.text


def test_the_hadamard_rotation_is_measured_beside_the_gaussian_one():
    """Notebook 01's Figure 4: near pairs collide alike under both rotations, orthogonal ones less under the
    exact (Hadamard) rotation than the Gaussian matrix's 1/(2m)."""
    common = {"device": "cpu", "n_points": 100, "n_queries": 4}
    dense = lsh_panels.lsh_update(1, 1, "cross_polytope", 16, **common)
    hadamard = lsh_panels.lsh_update(1, 1, "cross_polytope", 16, rotation="hadamard", **common)
    assert (dense.rotation, hadamard.rotation) == ("dense", "hadamard")
    assert hadamard.gap_in_sigmas(dense, max_degrees=60) < 4 < hadamard.gap_in_sigmas(dense)
    rate, stderr = hadamard.measured_at(90)
    assert rate + 4 * stderr < 1 / 32
    figure = lsh_panels.collision_figure(dense, compare=hadamard)
    assert [trace.name for trace in figure.data[2:]] == [
        "measured, dense rotation",
        "measured, hadamard rotation",
    ]
    assert np.allclose(figure.data[3].y, hadamard.measured)
    other_angles = lsh_panels.lsh_update(1, 1, "hyperplane", 16, **common)
    other_angles.measured_deg = other_angles.measured_deg + 1
    with pytest.raises(ValueError, match="same angles"):
        dense.gap_in_sigmas(other_angles)


def test_search_by_hashes_gives_one_curve_per_z_and_finer_buckets_examine_less():
    searches = lsh_panels.search_by_hashes(8, (1, 2, 3), "cross_polytope", 16, "cpu", 0, 400, 16)
    assert list(searches) == [1, 2, 3] and all(len(s.recall) == 8 for s in searches.values())
    assert all(bool((searches[z].examined > searches[z + 1].examined).all()) for z in (1, 2))
    figure = lsh_panels.recall_work_figure(searches)
    assert [trace.name for trace in figure.data] == ["z = 1", "z = 2", "z = 3"]
    assert np.allclose(figure.data[1].y, 100 * searches[2].recall.numpy())
    assert "ℓ = 1 … 8" in figure.layout.title.text
    with pytest.raises(ValueError, match="hashes"):
        lsh_panels.search_by_hashes(4, ())


def test_rotations_of_gives_the_matrices_the_tables_hash_with():
    tables = lsh.LSHTables(6, 3, 2, "cross_polytope", seed=5, device="cpu")
    rotations = lsh_panels.rotations_of(tables)
    assert rotations.shape == (3, 2, 6, 6)
    x = torch.nn.functional.normalize(torch.randn(200, 6, dtype=torch.float64), dim=-1)
    y = x @ rotations.double().transpose(-1, -2)  # (ℓ, z, N, D)
    assert torch.equal(signed_axis_reference(y).transpose(1, 2), tables.hash_values(x))
    for wrong in (
        lsh.LSHTables(6, 3, 2, "hyperplane", device="cpu"),
        lsh.LSHTables(6, 3, 2, "cross_polytope", device="cpu", rotation="hadamard"),
        lsh.LSHTables.per_head(6, 2, 3, 2, device="cpu"),
    ):
        with pytest.raises(ValueError, match="tables"):
            lsh_panels.rotations_of(wrong)


def test_a_panel_state_shows_both_views_of_one_update():
    figure = lsh_panels.panel_state_figure(4, 2, "cross_polytope", 16, "cpu", n_points=300, n_queries=16)
    data = lsh_panels.lsh_update(4, 2, "cross_polytope", 16, "cpu", n_points=300, n_queries=16)
    assert [trace.xaxis or "x" for trace in figure.data] == ["x", "x", "x", "x2"]
    assert np.allclose(figure.data[1].y, data.theory) and np.allclose(figure.data[2].y, data.measured)
    assert np.allclose(figure.data[3].y, 100 * data.search.recall.numpy())
    assert figure.layout.title.text.startswith("ℓ = 4: ") and "% recall" in figure.layout.title.text


def test_the_kernel_free_panel_holds_every_setting_behind_its_slider_and_menu():
    figure = lsh_panels.static_lsh_panel(16, "cpu", n_points=200, n_queries=8)
    assert sorted(lsh_panels.STATIC_FAMILIES) == sorted(lsh.FAMILIES)
    n_states = len(lsh_panels.STATIC_TABLES) * len(lsh.FAMILIES) * len(lsh_panels.STATIC_HASHES)
    assert len(figure.data) == 4 * n_states and sum(bool(t.visible) for t in figure.data) == 4
    steps = figure.layout.sliders[0].steps
    assert [step.label for step in steps] == [str(n) for n in lsh_panels.STATIC_TABLES]
    buttons = figure.layout.updatemenus[0].buttons
    assert len(buttons) == len(lsh.FAMILIES) * len(lsh_panels.STATIC_HASHES)
    assert buttons[0].label == "family = cross_polytope, z = 1"
    assert buttons[-1].label == f"family = hyperplane, z = {lsh_panels.STATIC_HASHES[-1]}"
    last = steps[-1].args  # ℓ = 16 of the first menu entry: 16 points on the search view
    shown = [trace for trace, on in zip(figure.data, last[0]["visible"], strict=True) if on]
    assert len(shown[3].x) == lsh_panels.STATIC_TABLES[-1] and "ℓ = 16" in last[1]["title.text"]


# ---------------------------------------------------------------------------------- notebook 04


@pytest.mark.parametrize(("dim", "rotated_dim"), [(16, 8), (16, 16), (8, 16)])
def test_a_gaussian_cross_polytope_hash_gives_orthogonal_vectors_one_in_2d_whatever_m(dim, rotated_dim):
    rate, stderr = lsh_panels.gaussian_cross_polytope_rate(np.pi / 2, dim, rotated_dim, n_samples=40_000)
    assert abs(rate - 1 / (2 * rotated_dim)) < 4 * stderr
    same, _ = lsh_panels.gaussian_cross_polytope_rate(0.0, dim, rotated_dim, n_samples=1000)
    assert same == 1.0


def test_gaussian_cross_polytope_rate_at_d_equals_m_matches_the_library_table():
    theta = np.pi / 6
    rate, stderr = lsh_panels.gaussian_cross_polytope_rate(theta, 16, 16, n_samples=40_000)
    table = lsh.collision_probability(theta, "cross_polytope", dim=16)
    assert abs(rate - table) < 4 * stderr + lsh_panels.THEORY_SLACK["cross_polytope"]
