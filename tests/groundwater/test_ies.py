"""The iterative ensemble smoother against the analytic Kalman posterior of a linear-Gaussian problem."""

import numpy as np
import pytest

from pathlib import Path

from phys_ml.stages.common.params import load_params
from phys_ml.stages.groundwater.config import IESConfig
from phys_ml.stages.groundwater.ies import glm_upgrade, phi_of, run_ies

IES_PARAMS = load_params(Path(__file__).resolve().parents[2] / "params.yaml")["groundwater"]["ies"]


def IESSettings(localization: str = "none", **over) -> IESConfig:  # noqa: N802 - reads like the old dataclass
    """The committed params' smoother settings with ``over`` replaced (lists for the list fields)."""
    over = {k: list(v) if isinstance(v, tuple) else v for k, v in over.items()}
    base = {"n_iter": 10, "autoadaloc_sigma_dist": 1.0}  # what these tests were written for
    return IESConfig(**{**IES_PARAMS, **base, "localization": [localization], **over})


def _problem(seed=1, n_par=6, n_obs=4):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(n_obs, n_par))
    m0 = rng.normal(size=n_par)
    a = rng.normal(size=(n_par, n_par))
    c = a @ a.T / n_par + 0.5 * np.eye(n_par)
    sd = np.full(n_obs, 0.5)
    truth = rng.multivariate_normal(m0, c)
    d = g @ truth + sd * rng.normal(size=n_obs)
    gain = c @ g.T @ np.linalg.inv(g @ c @ g.T + np.diag(sd**2))
    return g, m0, c, sd, d, m0 + gain @ (d - g @ m0), c - gain @ g @ c


def test_one_step_without_damping_is_the_kalman_posterior():
    g, m0, c, sd, d, m_post, c_post = _problem()
    rng = np.random.default_rng(2)
    theta0 = rng.multivariate_normal(m0, c, size=20000)
    settings = IESSettings(n_iter=1, lambda_mults=(1.0,), scale_facs=(1.0,), initial_lambda=0.0,
                           accept_phi_fac=1e9, stop_at_noise_level=False)
    res = run_ies(theta0, d, sd, lambda th: (th @ g.T, np.ones(len(th), bool)), settings, rng)
    post_sd = np.sqrt(np.diag(c_post))
    assert np.all(np.abs(res.theta.mean(0) - m_post) < 0.05 * post_sd + 0.02)
    assert np.abs(np.cov(res.theta.T) - c_post).max() < 0.03 * np.abs(c_post).max() + 0.01


def test_glm_upgrade_equals_the_ensemble_kalman_update():
    g, m0, c, sd, d, *_ = _problem(3)
    rng = np.random.default_rng(4)
    theta = rng.multivariate_normal(m0, c, size=50)
    sim = theta @ g.T
    obs = d + sd * rng.normal(size=(50, len(d)))
    up = glm_upgrade(theta, sim, obs, 1.0 / sd, lam=0.0)
    c_md = np.cov(theta.T, sim.T)[: len(m0), len(m0):]
    c_dd = np.cov(sim.T)
    expected = (c_md @ np.linalg.solve(c_dd + np.diag(sd**2), (obs - sim).T)).T
    assert np.allclose(up, expected, atol=1e-10)
    # lambda damps the step
    assert np.linalg.norm(glm_upgrade(theta, sim, obs, 1.0 / sd, lam=10.0)) < np.linalg.norm(up)


def test_iterations_reduce_phi_drop_failed_runs_and_keep_the_base():
    g, m0, c, sd, d, *_ = _problem(5, n_par=8, n_obs=6)
    rng = np.random.default_rng(6)
    theta0 = rng.multivariate_normal(m0, c, size=60)
    calls = {"n": 0}

    def forward(th):
        calls["n"] += len(th)
        ok = np.ones(len(th), bool)
        if calls["n"] <= 61:  # the prior ensemble: realization 7 fails
            ok[7] = False
        return th @ g.T, ok

    res = run_ies(theta0, d, sd, forward, IESSettings(n_iter=5, stop_at_noise_level=False), rng, base=m0)
    hist = [h for h in res.history if h.accepted]
    assert hist[-1].mean_phi < 0.2 * hist[0].mean_phi
    assert res.n_failed == 1 and len(res.theta) == 60 and res.has_base
    assert res.n_runs == calls["n"]
    assert phi_of(res.sim[:1], d, 1 / sd)[0] == pytest.approx(phi_of(res.theta[:1] @ g.T, d, 1 / sd)[0])


def test_stops_at_the_noise_level():
    g, m0, c, sd, d, *_ = _problem(7, n_par=8, n_obs=6)
    rng = np.random.default_rng(8)
    res = run_ies(rng.multivariate_normal(m0, c, size=40), d, sd, lambda th: (th @ g.T, np.ones(len(th), bool)),
                  IESSettings(n_iter=30), rng)
    assert "noise level" in res.stop_reason
    assert res.history[-1].mean_phi_actual <= len(d)


# ---------------------------------------------------------------- localization and the full upgrade
from phys_ml.stages.groundwater.ies import (  # noqa: E402
    autoadaloc_mask, distance_taper, gaspari_cohn, glm_upgrades, prior_precision_factor)


def _wide_problem(seed=11, n_par=60, n_obs=12, n_ens=20):
    """Parameters on a line, each observation a local average: far more parameters than realizations."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 100.0, n_par)
    c = np.exp(-np.abs(x[:, None] - x[None]) / 5.0)
    obs_x = np.linspace(5.0, 95.0, n_obs)
    g = np.exp(-0.5 * ((obs_x[:, None] - x[None]) / 2.0) ** 2)
    g /= g.sum(1, keepdims=True)
    sd = np.full(n_obs, 0.05)
    return rng, x, c, obs_x, g, sd


def test_gaspari_cohn_taper():
    r = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    w = gaspari_cohn(r, 1.0)
    assert w[0] == 1.0 and w[-1] == 0.0 and w[-2] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(w) <= 1e-12) and w[2] == pytest.approx(0.2083333, rel=1e-5)
    assert np.all(gaspari_cohn(r, np.inf) == 1.0)


@pytest.mark.parametrize("use_approx", [True, False])
def test_infinite_taper_equals_the_unlocalized_upgrade(use_approx):
    rng, x, c, obs_x, g, sd = _wide_problem()
    theta0 = rng.multivariate_normal(np.zeros(len(x)), c, size=20)
    theta = theta0 + 0.3 * rng.normal(size=theta0.shape)
    sim = theta @ g.T + 0.01 * rng.normal(size=(20, len(obs_x)))
    obs = rng.normal(size=(20, len(obs_x))) * 0.1
    kw = {} if use_approx else {"theta_prior": theta0, "prior_factor": prior_precision_factor(theta0)}
    lams = [0.0, 1.0, 10.0]
    plain = glm_upgrades(theta, sim, obs, 1 / sd, lams, **kw)
    taper = distance_taper(x[:, None], obs_x[:, None], np.inf)
    assert taper.shape == (len(obs_x), len(x)) and np.all(taper == 1.0)
    local = glm_upgrades(theta, sim, obs, 1 / sd, lams, localization="distance", taper=taper, **kw)
    # autoadaloc keeping every pair is the unlocalized upgrade too
    full = glm_upgrades(theta, sim, obs, 1 / sd, lams, localization="autoadaloc",
                        mask=np.ones((len(x), len(obs_x)), bool), **kw)
    for p, q, r in zip(plain, local, full):
        assert np.allclose(p, q, rtol=1e-8, atol=1e-10) and np.allclose(p, r, rtol=1e-8, atol=1e-10)


def test_autoadaloc_mask_keeps_a_correlated_pair_and_drops_noise():
    rng = np.random.default_rng(3)
    n = 100
    theta = rng.normal(size=(n, 3))
    sim = np.column_stack([2.0 * theta[:, 0] + 0.1 * rng.normal(size=n), rng.normal(size=n)])
    mask = autoadaloc_mask(theta, sim, sigma_dist=1.0)
    assert mask.shape == (3, 2) and mask[0, 0]
    # a pure-noise pair is dropped unless its sample correlation exceeds the background level sqrt(1/(N-2))
    cc = np.corrcoef(theta[:, 1], sim[:, 1])[0, 1]
    assert mask[1, 1] == (abs(cc) > np.sqrt(1 / (n - 2)))
    assert not autoadaloc_mask(theta, sim, sigma_dist=4.0)[1:, 1].any()  # 4 sd: noise never passes
    # over many noise pairs about 32 % pass at 1 sd (two-sided normal tail), the strong pair always
    big = autoadaloc_mask(rng.normal(size=(n, 400)), rng.normal(size=(n, 50)))
    assert 0.27 < big.mean() < 0.37


def test_autoadaloc_local_upgrade_uses_only_kept_observations():
    rng, x, c, obs_x, g, sd = _wide_problem(seed=5)
    theta = rng.multivariate_normal(np.zeros(len(x)), c, size=20)
    sim = theta @ g.T
    obs = 0.1 * rng.normal(size=(20, len(obs_x)))
    mask = np.zeros((len(x), len(obs_x)), bool)
    mask[:30, :6] = True  # the left parameters see the left observations; parameter 59 sees none
    mask[30:59, 3] = True
    up = glm_upgrades(theta, sim, obs, 1 / sd, [1.0], localization="autoadaloc", mask=mask)[0]
    assert np.all(up[:, 59] == 0.0)
    left = glm_upgrades(theta, sim[:, :6], obs[:, :6], 1 / sd[:6], [1.0])[0]
    assert np.allclose(up[:, :30], left[:, :30])
    one = glm_upgrades(theta, sim[:, 3:4], obs[:, 3:4], 1 / sd[3:4], [1.0])[0]
    assert np.allclose(up[:, 30:59], one[:, 30:59])


def test_full_upgrade_pull_term_vanishes_at_the_prior_and_acts_later():
    rng, x, c, obs_x, g, sd = _wide_problem(seed=7)
    theta0 = rng.multivariate_normal(np.zeros(len(x)), c, size=20)
    obs = 0.1 * rng.normal(size=(20, len(obs_x)))
    a = prior_precision_factor(theta0)
    approx = glm_upgrades(theta0, theta0 @ g.T, obs, 1 / sd, [1.0])[0]
    full = glm_upgrades(theta0, theta0 @ g.T, obs, 1 / sd, [1.0], theta_prior=theta0, prior_factor=a)[0]
    assert np.allclose(approx, full, atol=1e-12)  # iteration 1: theta == theta0, no pull
    theta = theta0 + approx
    approx2 = glm_upgrades(theta, theta @ g.T, obs, 1 / sd, [1.0])[0]
    full2 = glm_upgrades(theta, theta @ g.T, obs, 1 / sd, [1.0], theta_prior=theta0, prior_factor=a)[0]
    assert not np.allclose(approx2, full2)
    # the pull points back toward each realization's prior draw
    pull = full2 - approx2
    assert np.sum(pull * (theta0 - theta)) > 0


def test_localization_brings_coverage_closer_to_nominal_with_more_parameters_than_realizations():
    rng, x, c, obs_x, g, sd = _wide_problem(seed=21, n_par=80, n_obs=10, n_ens=20)
    gain = c @ g.T @ np.linalg.inv(g @ c @ g.T + np.diag(sd**2))
    c_post = c - gain @ g @ c
    cover = {"none": [], "distance": [], "autoadaloc": []}
    taper = distance_taper(x[:, None], obs_x[:, None], 6.0)
    settings = dict(n_iter=1, lambda_mults=(1.0,), scale_facs=(1.0,), initial_lambda=0.0, accept_phi_fac=1e9,
                    stop_at_noise_level=False)
    for trial in range(8):
        truth = rng.multivariate_normal(np.zeros(len(x)), c)
        d = g @ truth + sd * rng.normal(size=len(obs_x))
        theta0 = rng.multivariate_normal(np.zeros(len(x)), c, size=20)
        for loc in cover:
            r = np.random.default_rng([trial, 1])
            res = run_ies(theta0, d, sd, lambda th: (th @ g.T, np.ones(len(th), bool)),
                          IESSettings(**settings), r, loc, taper=taper if loc == "distance" else None)
            lo, hi = np.quantile(res.theta, [0.025, 0.975], axis=0)
            cover[loc].append(np.mean((truth >= lo) & (truth <= hi)))
    err = {k: abs(np.mean(v) - 0.95) for k, v in cover.items()}
    assert err["distance"] < err["none"] and err["autoadaloc"] < err["none"]
    assert np.sqrt(np.diag(c_post)).min() > 0  # the problem is well posed
