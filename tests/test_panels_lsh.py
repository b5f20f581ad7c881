"""Notebook 01's panel: pure updates agree with theory, widgets redraw."""

import numpy as np
import pytest

from fastattn_lib import lsh
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


# ---------------------------------------------------------------------------------- notebook 04
