"""The linear analysis (`glm`): exact on a linear-Gaussian problem, a stationary MAP on a nonlinear one, and the
reliability checks of its draws (Pareto-k, ELBO)."""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import pytest

from phys_ml.stages.groundwater.glm import (GNSettings, ReducedPrior, check_draws, gauss_newton,
                                            linear_gaussian_posterior, log_target, objective, pareto_k)


def _settings(**over) -> GNSettings:
    base = dict(n_modes=6, fd_step=1e-2, lambdas=(0.0, 1.0), lambda_inc=10.0, max_iter=20, max_rejects=3,
                max_runs=10_000, f_tol=1e-10)
    return GNSettings(**{**base, **over})


def _prior(n=6, seed=0) -> ReducedPrior:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    return ReducedPrior.from_cov(rng.normal(size=n), a @ a.T / n + 0.3 * np.eye(n))


def _linear(n=6, n_obs=9, seed=1):
    rng = np.random.default_rng(seed)
    g, c = rng.normal(size=(n_obs, n)), rng.normal(size=n_obs)
    calls = {"runs": 0}

    def forward(lnk):
        calls["runs"] += len(lnk)
        return lnk @ g.T + c, np.ones(len(lnk), bool)
    return g, c, forward, calls


class LinearProblem(NamedTuple):
    """A linear-Gaussian problem: prior, heads = lnk @ g.T + c (counted runs), noise sd 0.3, the data d."""
    prior: ReducedPrior
    g: np.ndarray
    c: np.ndarray
    forward: Callable
    calls: dict
    sd: np.ndarray
    d: np.ndarray

    def solve(self, **settings):
        return gauss_newton(self.forward, self.prior, self.d, 1.0 / self.sd, np.zeros(len(self.prior.mean)),
                            _settings(**{"n_modes": len(self.prior.mean), **settings}))

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """The analytic posterior of ln K (Kalman / Schur complement): mean and covariance."""
        cov = self.prior.basis @ self.prior.basis.T
        gain = cov @ self.g.T @ np.linalg.inv(self.g @ cov @ self.g.T + np.diag(self.sd**2))
        return self.prior.mean + gain @ (self.d - self.g @ self.prior.mean - self.c), cov - gain @ self.g @ cov


def _linear_problem(offset: float | None = None, seeds: tuple[int, int] = (5, 6), n: int = 6) -> LinearProblem:
    """Data at the prior mean's heads plus ``offset``, or (offset None) a prior draw's heads plus noise."""
    prior = _prior(n)
    g, c, forward, calls = _linear(n)
    sd = np.full(len(c), 0.3)
    if offset is None:
        d = (g @ prior.lnk(np.random.default_rng(seeds[0]).normal(size=n)) + c
             + sd * np.random.default_rng(seeds[1]).normal(size=len(c)))
    else:
        d = g @ prior.mean + c + offset
    return LinearProblem(prior, g, c, forward, calls, sd, d)


def test_linear_gaussian_map_and_laplace_equal_the_analytic_posterior():
    p = _linear_problem()
    prior, d, sd, calls = p.prior, p.d, p.sd, p.calls
    cov = prior.basis @ prior.basis.T
    res = p.solve()
    mean, post = p.posterior()
    b = prior.basis
    f = res.cov_factor()
    assert np.allclose(prior.lnk(res.z_map), mean, atol=1e-6, rtol=0)
    assert np.allclose(b @ f @ f.T @ b.T, post, atol=1e-6, rtol=0)
    assert np.allclose(res.explained_variance(prior), 1 - np.diag(post) / np.diag(cov), atol=1e-6)
    # information gain: 0.5 ln det(prior cov) - 0.5 ln det(post cov)
    assert res.info_gain() == pytest.approx(0.5 * (np.linalg.slogdet(cov)[1] - np.linalg.slogdet(post)[1]), abs=1e-6)
    assert res.history[1].lam == 0.0 and res.n_runs == calls["runs"]
    z_lin, c_lin = linear_gaussian_posterior(res.jacobian, res.sim_map, res.z_map, d, 1.0 / sd)
    assert np.allclose(z_lin, res.z_map, atol=1e-6) and np.allclose(c_lin, f @ f.T, atol=1e-9)


def test_reduced_basis_keeps_the_prior_on_the_trailing_modes():
    n, k = 6, 3
    res = _linear_problem(1.0).solve(n_modes=k)
    draws = res.sample_z(40000, np.random.default_rng(0), n)
    assert res.k == k and np.allclose(draws[:, k:].std(0), 1.0, atol=0.02)
    assert np.allclose(draws[:, :k].mean(0), res.z_map, atol=0.02)


def test_nonlinear_map_is_a_stationary_point_of_the_posterior_objective():
    n = 5
    prior = _prior(n, seed=3)
    rng = np.random.default_rng(4)
    a = rng.normal(size=(8, n))

    def g(lnk):
        return np.tanh(lnk @ a.T / 2) + 0.3 * (lnk @ a.T / 3) ** 2

    forward = lambda lnk: (g(lnk), np.ones(len(lnk), bool))  # noqa: E731
    sd = np.full(8, 0.1)
    d = g(prior.lnk(rng.normal(size=n))[None])[0] + sd * rng.normal(size=8)
    res = gauss_newton(forward, prior, d, 1.0 / sd, np.zeros(n), _settings(n_modes=n, fd_step=1e-7, f_tol=1e-12))

    def f(z):
        return objective(z, g(prior.lnk(z)[None])[0], d, 1.0 / sd)[0]

    def grad(z, h=1e-6):
        return np.array([(f(z + h * e) - f(z - h * e)) / (2 * h) for e in np.eye(n)])

    start = np.linalg.norm(grad(np.zeros(n)))
    assert len(res.history) > 2  # it took several steps: the problem is nonlinear
    assert np.linalg.norm(grad(res.z_map)) < 1e-5 * start
    assert res.objective < f(np.zeros(n))


def test_run_budget_and_rejections_stop_the_search():
    n = 6
    p = _linear_problem(3.0)
    res = p.solve(max_runs=1 + 2 * n + 2 - 1)
    assert res.stop_reason.startswith("run budget") and res.n_runs == p.calls["runs"] == 1 + n
    assert len(res.history) == 1


def test_pareto_k_and_elbo_tell_an_exact_proposal_from_a_narrow_one():
    n = 6
    p = _linear_problem(0.5)
    prior, forward, d, sd = p.prior, p.forward, p.d, p.sd
    res = p.solve()
    rng = np.random.default_rng(7)
    z = res.sample_z(2000, rng, n)
    sims, ok = forward(prior.lnk(z))
    exact = check_draws(z, sims, ok, res.log_q(z), d, 1.0 / sd)
    assert exact.pareto_k < 0.5 and exact.ess > 1900
    # the ELBO of the exact posterior is ln Z for every draw: log target - log q is constant
    lt = log_target(z, sims, d, 1.0 / sd)
    assert np.std(lt - res.log_q(z)) < 1e-8
    narrow = res.__class__(**{**vars(res), "eig": res.eig * 20 + 20})  # too confident
    zn = narrow.sample_z(2000, rng, n)
    sn, okn = forward(prior.lnk(zn))
    bad = check_draws(zn, sn, okn, narrow.log_q(zn), d, 1.0 / sd)
    assert bad.pareto_k > 0.7 and bad.elbo < exact.elbo - 1.0


def test_pareto_k_of_heavy_tails():
    rng = np.random.default_rng(0)
    assert pareto_k(np.log(rng.pareto(1.0 / 0.9, 4000) + 1)) > 0.7
    assert pareto_k(rng.normal(size=4000) * 0.1) < 0.5


def test_refined_flow_draws_give_the_analytic_posterior_and_do_not_count_the_data_twice():
    """A "flow" that is off (biased mean, too wide) or already the exact posterior: refinement ends at the analytic
    posterior either way (mean and sd within 1e-6), never narrower (the data enter once)."""
    from phys_ml.stages.groundwater.refine import refine

    n = 6
    p = _linear_problem(seeds=(8, 9))
    prior, forward, d, sd = p.prior, p.forward, p.d, p.sd
    mean, post = p.posterior()
    post_sd = np.sqrt(np.diag(post))
    exact = p.solve()
    rng = np.random.default_rng(10)
    for flow_z, flow_log_q in (
        (1.0 + 2.0 * rng.standard_normal((500, n)), None),  # a bad flow: N(1, 4 I)
        (exact.sample_z(500, rng, n), None),  # a flow that is already the posterior
    ):
        if flow_log_q is None:
            m, s = flow_z.mean(0), flow_z.std(0)
            flow_log_q = (-0.5 * (((flow_z - m) / s) ** 2).sum(1) - np.log(s).sum() - 0.5 * n * np.log(2 * np.pi))
        res = refine(forward, prior, d, 1.0 / sd, flow_z, flow_log_q[:200], _settings(n_modes=n), rng, 3.0)
        lap = res.laplace
        f = prior.basis @ lap.cov_factor()
        assert np.allclose(prior.lnk(lap.z_map), mean, atol=1e-6)
        assert np.allclose(np.sqrt((f**2).sum(1)), post_sd, atol=1e-6)
    draws = prior.lnk(lap.sample_z(40000, rng, n))
    assert np.allclose(draws.mean(0), mean, atol=4 * post_sd.max() / np.sqrt(40000) * 3)
    assert np.allclose(draws.std(0), post_sd, rtol=0.03)


def test_refinement_falls_back_to_the_flow_when_it_is_not_better():
    from phys_ml.stages.groundwater.refine import refine

    n = 6
    p = _linear_problem(0.3)
    prior, forward, d, sd = p.prior, p.forward, p.d, p.sd
    exact = p.solve()
    rng = np.random.default_rng(1)
    flow_z = exact.sample_z(300, rng, n)
    # the exact posterior as the flow, refined in 2 of 6 modes only: no better, so the flow's draws are kept
    res = refine(forward, prior, d, 1.0 / sd, flow_z, exact.log_q(flow_z[:200]), _settings(n_modes=2), rng, 3.0)
    assert not res.accepted and res.reason.startswith("fallback")
    # a flow shifted by 2 (its density at its own draws: the exact one at the unshifted draws): refined
    res = refine(forward, prior, d, 1.0 / sd, 2.0 + flow_z, exact.log_q(flow_z[:200]), _settings(n_modes=6), rng,
                 3.0)
    assert res.accepted

    # a search that cannot fit the heads (no step allowed) is not kept, whatever its ELBO
    res = refine(forward, prior, d, 1.0 / sd, 2.0 + flow_z, exact.log_q(flow_z[:200]), _settings(n_modes=6, max_iter=0),
                 rng, 1.0)
    assert not res.accepted and "noise sd" in res.reason


def test_rml_members_of_a_linear_problem_are_exact_posterior_draws_and_stay_there():
    """RML on a linear-Gaussian problem: the members start at exact posterior draws (analytic mean and sd within
    their Monte Carlo error) and the updates leave them there (each already minimizes its own objective), so the
    refined ensemble counts the data once whatever the flow was."""
    from phys_ml.stages.groundwater.refine import refine

    n, members = 6, 20000
    p = _linear_problem(seeds=(8, 9))
    mean, post = p.posterior()
    post_sd = np.sqrt(np.diag(post))
    rng = np.random.default_rng(11)
    flow_z = 1.0 + 2.0 * rng.standard_normal((members, n))  # a bad flow: N(1, 4 I)
    flow_log_q = -0.5 * (((flow_z - 1.0) / 2.0) ** 2).sum(1) - n * np.log(2.0) - 0.5 * n * np.log(2 * np.pi)
    res = refine(p.forward, p.prior, p.d, 1.0 / p.sd, flow_z, flow_log_q, _settings(n_modes=n), rng, 3.0,
                 rml_iterations=2)
    assert res.accepted and res.ensemble is not None
    draws = res.ensemble.lnk_samples(p.prior)
    assert len(draws) == members
    assert np.allclose(draws.mean(0), mean, atol=4 * post_sd / np.sqrt(members))
    assert np.allclose(draws.std(0), post_sd, rtol=0.03)
    assert res.n_runs == members + res.laplace.n_runs + members + 2 * members

    # members started far from their minimizers (at the bad flow's draws): one update lands each on its own
    # minimizer, the pull towards its own prior draw included, so the ensemble is the posterior again
    from phys_ml.stages.groundwater.refine import Members, rml_members, rml_update

    m = rml_members(res.laplace, 1.0 / p.sd, members, rng, n)
    m = Members(m.z_prior, m.noise, flow_z)
    sims, ok = p.forward(p.prior.lnk(m.z_start))
    ens = rml_update(p.forward, p.prior, res.laplace, m, sims, ok, p.d, 1.0 / p.sd, 1)
    draws = ens.lnk_samples(p.prior)
    assert ens.accepted == [members]
    assert np.allclose(draws.mean(0), mean, atol=4 * post_sd / np.sqrt(members))
    assert np.allclose(draws.std(0), post_sd, rtol=0.03)


def test_rml_updates_bring_laplace_draws_of_a_nonlinear_problem_onto_the_data():
    """A nonlinear toy problem analysed as the pipeline does (MAP in 3 of 6 modes, the Laplace posterior extended
    with the Jacobian at the prior mean): each member's own objective never rises under the updates, falls
    clearly on average, and the members' heads fit the data better than the Laplace draws they started from."""
    from phys_ml.stages.groundwater.glm import extend_modes, jacobian, predictive_check
    from phys_ml.stages.groundwater.refine import member_objectives, rml_members, rml_update

    n, n_obs = 6, 12
    prior = _prior(n, seed=3)
    rng = np.random.default_rng(4)
    a = rng.normal(size=(n_obs, n))

    def g(lnk):
        return np.tanh(lnk @ a.T / 3) + 0.5 * (lnk @ a.T / 3) ** 2

    forward = lambda lnk: (g(lnk), np.ones(len(lnk), bool))  # noqa: E731
    sd = np.full(n_obs, 0.05)
    w = 1.0 / sd
    d = g(prior.lnk(rng.normal(size=n))[None])[0] + sd * rng.normal(size=n_obs)
    lap = gauss_newton(forward, prior, d, w, np.zeros(n), _settings(n_modes=3, fd_step=1e-7, f_tol=1e-12))
    lap, _ = extend_modes(forward, prior, d, w, lap, jacobian(forward, prior, np.zeros(n), g(prior.mean[None])[0],
                                                              1e-7))
    m = rml_members(lap, w, 400, rng, n)
    sims, ok = forward(prior.lnk(m.z_start))
    f0 = member_objectives(m, m.z_start, sims, ok, d, w)
    ens = rml_update(forward, prior, lap, m, sims, ok, d, w, 4)
    assert np.all(ens.objective <= f0) and np.mean(ens.objective) < 0.5 * np.mean(f0)
    before, after = predictive_check(sims, ok, d, w), predictive_check(ens.sims, ens.ok, d, w)
    assert after.phi_median < 0.5 * before.phi_median
    assert after.predictive_mean_rmse < 0.7 * before.predictive_mean_rmse
    assert np.allclose(ens.sims, g(prior.lnk(ens.z)))  # the heads kept are the members' own
