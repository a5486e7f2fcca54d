"""The iterative ensemble smoother against the analytic Kalman posterior of a linear-Gaussian problem."""

import numpy as np
import pytest

from phys_ml.stages.groundwater.ies import IESSettings, glm_upgrade, phi_of, run_ies


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
