"""Richards solver: mass balance, grid/time refinement, horizontal uniformity, steady-state analytic solution."""

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq

from phys_ml.stages.rre.cases import CaseSpec, run_case
from phys_ml.stages.rre.soil import VanGenuchten, conductivity, theta
from phys_ml.stages.rre.solver import Grid, Problem, Stepping, solve

SOIL = VanGenuchten()
T_END = 3250.0
OUT = np.arange(1, 31) * T_END / 30


def column(nz, stepping=Stepping.tight()):
    g = Grid(1, 1, nz, 25.0, 25.0, 5.0)
    p = Problem(g, SOIL, np.full(g.shape, -1.0), np.full((1, 1), 0.75 / 3600))
    return g, solve(p, OUT, stepping)


def test_evaporation_column_mass_balance_and_range():
    g, sol = column(10)
    area = g.lx * g.ly
    # water lost equals the integrated top flux: 0.75 cm/h over 3,250 s = 0.677 cm
    assert sol.flux_out / area == pytest.approx(0.75 * T_END / 3600, rel=1e-12)
    assert sol.water_lost == pytest.approx(sol.flux_out, rel=1e-8)
    assert -60 < sol.psi.min() < -55 and -4 < sol.psi.max() < -3  # design note: about -3 to -59 cm
    assert theta(sol.psi, SOIL).min() == pytest.approx(0.223, abs=2e-3)


def test_mrst_like_stepping_is_loose_but_close():
    _, tight = column(10)
    _, loose = column(10, Stepping.mrst())
    re = np.linalg.norm(loose.psi - tight.psi) / np.linalg.norm(tight.psi)
    assert 1e-3 < re < 3e-2  # MRST's loose stepping: about 1 % in psi (design note)
    assert loose.picard_iterations < tight.picard_iterations / 5


def test_finer_grid_and_step_agree():
    g, coarse = column(10)
    gf = Grid(1, 1, 40, 25.0, 25.0, 5.0)
    fine = solve(Problem(gf, SOIL, np.full(gf.shape, -1.0), np.full((1, 1), 0.75 / 3600)), OUT,
                 Stepping.tight(dt_max=5.0))
    zc, zf = g.centres()[2], gf.centres()[2]
    interp = np.stack([np.interp(zc, zf, fine.psi[k, 0, 0]) for k in range(OUT.size)])
    assert np.linalg.norm(coarse.psi[:, 0, 0] - interp) / np.linalg.norm(interp) < 2e-4


def test_evaporation_3d_is_horizontally_uniform_and_equals_the_column():
    spec = CaseSpec(Grid(4, 3, 10, 25.0, 25.0, 5.0), SOIL, -1.0, 0.75, T_END, 30)
    sol = run_case(spec, "evaporation", Stepping.mrst())
    assert np.ptp(sol.psi, axis=(1, 2)).max() < 1e-9
    _, col = column(10, Stepping.mrst())
    np.testing.assert_allclose(sol.psi[:, 0, 0], col.psi[:, 0, 0], rtol=1e-8)


def test_patch_case_is_three_dimensional_and_conserves_water():
    spec = CaseSpec(Grid(5, 5, 5, 25.0, 25.0, 5.0), SOIL, -1.0, 0.75, T_END, 30)
    sol = run_case(spec, "patch", Stepping.tight())
    top = sol.psi[-1, :, :, 0]
    assert np.ptp(top, axis=0).max() > 1.0 and np.ptp(top, axis=1).max() > 1.0  # varies in x and in y
    assert sol.water_lost == pytest.approx(sol.flux_out, rel=1e-7)


@pytest.mark.parametrize("nz", [20, 40])
def test_steady_evaporation_from_a_water_table_matches_quadrature(nz):
    """Steady upward flux E from a fixed head psi_b: height(psi) = int_psi^psi_b dp / (1 + E / K(p))."""
    e, lz, pb = 5e-5, 20.0, -5.0
    g = Grid(1, 1, nz, 1.0, 1.0, lz)
    height = lz - g.centres()[2]
    p = Problem(g, SOIL, (pb - height).reshape(g.shape), np.full((1, 1), e), bottom_psi=pb)
    sol = solve(p, np.array([2e4, 4e4]), Stepping(dt_max=2e3))
    assert np.abs(sol.psi[1] - sol.psi[0]).max() < 1e-9  # steady

    def h_of(psi):
        return quad(lambda q: 1.0 / (1.0 + e / conductivity(np.array(q), SOIL)), psi, pb)[0]

    exact = np.array([brentq(lambda q: h_of(q) - hh, -1e3, pb) for hh in height])
    err = np.abs(sol.psi[1, 0, 0] - exact).max()
    assert err < 0.15 * (20 / nz) ** 2 * 0.01 * 4  # second order in dz: 6e-4 cm at nz = 20
