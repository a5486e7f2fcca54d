"""Van Genuchten-Mualem functions: limits, derivatives against finite differences, numpy == torch."""

import numpy as np
import pytest
import torch

from phys_ml.stages.common.errors import UserError
from phys_ml.stages.rre.soil import VanGenuchten, capacity, conductivity, conductivity_derivative, head, theta

SOILS = [VanGenuchten(), VanGenuchten(alpha=0.1, n=1.5, theta_s=0.43, theta_r=0.05, k_s=1e-3)]


@pytest.mark.parametrize("soil", SOILS)
def test_limits(soil):
    assert theta(np.array(0.0), soil) == pytest.approx(soil.theta_s)
    assert conductivity(np.array(0.0), soil) == pytest.approx(soil.k_s)
    assert theta(np.array(5.0), soil) == pytest.approx(soil.theta_s)  # saturated for psi > 0
    assert theta(np.array(-1e9), soil) == pytest.approx(soil.theta_r, abs=1e-4)
    assert conductivity(np.array(-1e6), soil) < 1e-8 * soil.k_s
    psi = -np.logspace(-2, 4, 200)
    assert np.all(np.diff(theta(psi, soil)) < 0) and np.all(np.diff(conductivity(psi, soil)) < 0)


@pytest.mark.parametrize("soil", SOILS)
def test_derivatives_against_finite_differences(soil):
    psi = -np.logspace(-1, 3, 60)
    h = 1e-6 * np.abs(psi)
    fd_c = (theta(psi + h, soil) - theta(psi - h, soil)) / (2 * h)
    fd_k = (conductivity(psi + h, soil) - conductivity(psi - h, soil)) / (2 * h)
    np.testing.assert_allclose(capacity(psi, soil), fd_c, rtol=1e-5)
    np.testing.assert_allclose(conductivity_derivative(psi, soil), fd_k, rtol=1e-5)


@pytest.mark.parametrize("soil", SOILS)
def test_torch_matches_numpy(soil):
    psi = -np.logspace(-2, 3, 50)
    t = torch.tensor(psi, dtype=torch.float64)
    for fn in (theta, capacity, conductivity, conductivity_derivative):
        np.testing.assert_allclose(fn(t, soil).numpy(), fn(psi, soil), rtol=1e-12)


def test_bad_soil():
    with pytest.raises(UserError, match="n must be > 1"):
        VanGenuchten(n=1.0)


@pytest.mark.parametrize("soil", SOILS)
def test_head_inverts_the_retention_curve(soil):
    for psi in (-0.5, -7.0, -53.0, -400.0):
        assert head(float(theta(psi, soil)), soil) == pytest.approx(psi, rel=1e-9)
    assert head(soil.theta_s, soil) == 0.0


def test_mass_balance_head_is_the_uniform_drying_state():
    """No flux: psi0 back; the benchmark's evaporation: the head whose water content is theta(psi0) minus
    E t_end / lz (about -53 cm, near the solver's -49 to -59 cm at t_end)."""
    from phys_ml.stages.rre.fitting import CaseInputs, mass_balance_head

    soil = VanGenuchten()
    meta = {"soil": soil.as_dict(), "t_end": 3250.0, "psi0": -1.0, "grid": {"lz": 5.0}, "top_flux_mean": 0.0}
    empty = np.zeros((0, 4))

    def inputs(flux):
        return CaseInputs(empty, np.zeros(0), empty, empty, np.zeros(0, int), np.zeros(0),
                          {**meta, "top_flux_mean": flux})

    assert mass_balance_head(inputs(0.0)) == pytest.approx(-1.0, rel=1e-9)
    flux = 0.75 / 3600
    psi_end = mass_balance_head(inputs(flux))
    assert float(theta(psi_end, soil)) == pytest.approx(float(theta(-1.0, soil)) - flux * 3250.0 / 5.0, rel=1e-9)
    assert -60 < psi_end < -45
