"""Kinematics, selection and the simulated substitute (numpy only)."""

import numpy as np
import pytest

from phys_ml.stages.diphoton import simulate as sim
from phys_ml.stages.diphoton.events import (eta_accepted, from_flow_space, invariant_mass, reorder_by_pt,
                                            selection_mask, to_flow_space, to_physical_range, with_mass)
from phys_ml.stages.diphoton.metrics import auc, correlation_row, correlation_stderr, wasserstein_per_feature


def test_invariant_mass_back_to_back_and_boost_invariance():
    # two photons of pT = m/2 back to back at eta = 0 give m
    assert invariant_mass(62.5, 0.0, 0.3, 62.5, 0.0, 0.3 - np.pi) == pytest.approx(125.0)
    # a longitudinal boost shifts both etas equally and leaves the mass unchanged
    m1 = invariant_mass(50.0, 0.2, 1.0, 40.0, -0.7, -2.0)
    m2 = invariant_mass(50.0, 1.2, 1.0, 40.0, 0.3, -2.0)
    assert m1 == pytest.approx(m2)


def test_selection_cuts():
    ok = [62.5, 0.0, 0.5, 62.5, 0.0, 0.5 - np.pi]
    rows = np.array([
        ok,
        [62.5, 1.45, 0.5, 62.5, 0.0, 0.5 - np.pi],  # crack
        [62.5, 2.5, 0.5, 62.5, 0.0, 0.5 - np.pi],  # beyond 2.37
        [300.0, 0.0, 0.5, 40.0, 0.0, 0.5 - np.pi],  # pT1 > 250
        [40.0, 0.0, 0.5, 20.0, 0.0, 0.5 - np.pi],  # pT2 < 25
        [36.0, 0.0, 0.0, 26.0, 0.0, 0.3],  # m_gg < 60
    ])
    assert selection_mask(rows).tolist() == [True, False, False, False, False, False]
    assert eta_accepted(np.array([1.37, 1.38, 1.52, 2.37, 2.38])).tolist() == [True, False, True, True, False]


def test_simulation_deterministic_and_selected():
    a = sim.simulate(sim.MC_MODEL, 2000, seed=5, chunk=20_000)
    b = sim.simulate(sim.MC_MODEL, 2000, seed=5, chunk=20_000)
    assert a.shape == (2000, 6) and np.array_equal(a, b)
    assert selection_mask(a).all()
    assert (a[:, 0] >= a[:, 3]).all()


@pytest.fixture(scope="module")
def samples():
    return sim.simulate(sim.MC_MODEL, 40_000, 1), sim.simulate(sim.DATA_MODEL, 40_000, 2)


def test_higgs_peak_and_continuum(samples):
    mc, data = (with_mass(x)[:, 6] for x in samples)
    window = mc[(mc > 115) & (mc < 135)]
    assert abs(np.median(window) - 125.0) < 1.0  # peak at m_H
    core = window[np.abs(window - np.median(window)) < 5]
    assert 1.0 < core.std() < 3.0  # resolution of order 1.5-2 GeV
    below = np.sum((window > 120) & (window < 124)) / np.sum((window > 126) & (window < 130))
    assert below > 1.0  # low-side tail
    # data: falling continuum with a small peak on top
    assert np.sum((data > 70) & (data < 80)) > 3 * np.sum((data > 150) & (data < 160))
    side = 0.5 * (np.sum((data > 115) & (data < 119)) + np.sum((data > 131) & (data < 135)))
    assert np.sum((data > 123) & (data < 127)) > side * 1.1


def test_correlations_differ_like_table1(samples):
    mc, data = (correlation_row(x) for x in samples)
    assert data["pT1,pT2"] - mc["pT1,pT2"] > 0.3  # paper: 0.539 vs 0.103
    assert mc["eta1,eta2"] - data["eta1,eta2"] > 0.15  # 0.459 vs 0.192
    assert -0.5 < data["phi1,phi2"] < -0.35 and -0.5 < mc["phi1,phi2"] < -0.35  # about -0.4
    assert data["m_gg,pT1"] > mc["m_gg,pT1"] and data["m_gg,pT2"] > mc["m_gg,pT2"]
    assert mc["others"] < 0.02 and data["others"] < 0.02


def test_energy_resolution_matches_model():
    rng = np.random.default_rng(0)
    n = 200_000
    pt, eta = np.full(n, 50.0), np.full(n, 0.3)
    reco, _ = sim.detector(rng, pt, eta, np.zeros(n), sim.MC_MODEL)
    ratio = reco / pt
    core = ratio[np.abs(ratio - np.median(ratio)) < 0.04]
    energy = 50.0 * np.cosh(0.3)
    expected = np.sqrt(sim.MC_MODEL.stochastic**2 / energy + sim.MC_MODEL.constant_barrel**2)
    assert core.std() == pytest.approx(expected, rel=0.1)


def test_data_eta_has_fine_structure(samples):
    mc, data = samples
    eta = np.concatenate([data[:, 1], data[:, 4]])
    eta_mc = np.concatenate([mc[:, 1], mc[:, 4]])
    # the efficiency gap at eta = 0 in data only
    near0 = lambda e: np.mean(np.abs(e) < 0.03) / np.mean((np.abs(e) > 0.1) & (np.abs(e) < 0.16))  # noqa: E731
    assert near0(eta) < 0.85 * near0(eta_mc)


def test_metrics_limits():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4000, 6)) + 3.0
    assert all(v == 0.0 for v in wasserstein_per_feature(x, x).values())
    labels = np.r_[np.ones(100), np.zeros(100)]
    assert auc(labels, np.r_[np.ones(100), np.zeros(100)]) == 1.0
    assert auc(labels, np.zeros(200)) == 0.5


def test_flow_space_round_trip_and_pt_reordering():
    x = np.array([[60.0, 0.1, 0.2, 40.0, -1.0, -2.9], [80.0, 2.0, -3.0, 30.0, 0.5, 0.1]])
    z = to_flow_space(x, log_pt=True)
    assert z[:, [0, 3]] == pytest.approx(np.log(x[:, [0, 3]]))
    assert from_flow_space(z, log_pt=True) == pytest.approx(x)
    assert to_flow_space(x, log_pt=False) == pytest.approx(x)
    y = np.array([[40.0, -1.0, -2.9, 60.0, 0.1, 0.2], x[1]])  # first event: photons in the wrong order
    ordered, swapped = reorder_by_pt(y)
    assert ordered == pytest.approx(x) and swapped == 0.5
    assert with_mass(ordered)[:, 6] == pytest.approx(with_mass(y)[:, 6])  # relabelling keeps m_gg


def test_correlation_stderr_matches_gaussian_formula():
    # bivariate Gaussian with r = 0.6 in the pT1,pT2 slot: se(r) ~ (1 - r^2) / sqrt(n)
    rng = np.random.default_rng(0)
    n, r = 4000, 0.6
    a = rng.standard_normal(n)
    b = r * a + np.sqrt(1 - r * r) * rng.standard_normal(n)
    x = np.column_stack([a + 50, rng.uniform(-2, 2, n), rng.uniform(-3, 3, n), b + 40, rng.uniform(-2, 2, n),
                         rng.uniform(-3, 3, n)])
    se = correlation_stderr(x, n_boot=200, seed=1)
    assert se["pT1,pT2"] == pytest.approx((1 - r * r) / np.sqrt(n), rel=0.2)
    assert se["eta1,eta2"] == pytest.approx(1 / np.sqrt(n), rel=0.2)


def test_physical_range_wraps_phi_keeps_mass_and_caps_pt_and_eta():
    x = np.array([[60.0, 0.1, 3.5, 40.0, -1.0, -2.9], [9000.0, 0.3, 0.2, 30.0, 0.5, -4.0],
                  [70.0, 0.0, 1.0, 50.0, 0.2, 0.5], [50.0, 800.0, 1.0, 40.0, -2.0, 0.5]])
    with np.errstate(over="ignore"):
        assert not np.isfinite(with_mass(x)[3, 6])  # cosh(802) overflows
    y, capped, wrapped = to_physical_range(x, pt_max=250.0, eta_max=2.37)
    assert y[3, 1] == 2.37 and np.isfinite(with_mass(y)[3, 6])
    assert capped == pytest.approx(2 / 4) and wrapped == pytest.approx(2 / 4)
    x, y = x[:3], y[:3]
    assert np.all(np.abs(y[:, [2, 5]]) <= np.pi)
    assert y[0, 2] == pytest.approx(3.5 - 2 * np.pi) and y[1, 5] == pytest.approx(-4.0 + 2 * np.pi)
    assert with_mass(y)[0, 6] == pytest.approx(with_mass(x)[0, 6])  # wrapping phi keeps m_gg
    assert y[1, 0] == 250.0
    assert y[2] == pytest.approx(x[2])  # an event in range is untouched
