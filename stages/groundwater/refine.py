"""Amortize, then refine: the flow's posterior starts a short Gauss-Newton search, a guard keeps the result only
where it is a better posterior than the flow's, and randomized maximum likelihood (RML) moves the draws onto the
heads (pure: arrays and a forward callable in).

1. Start at the flow's posterior mean, projected on the k leading prior modes of the reduced basis.
2. Gauss-Newton / Levenberg-Marquardt (`glm.gauss_newton`) within a run budget, then the Laplace posterior at the
   point reached: N(z_map, (I + H)^-1) in the k modes and the prior on the rest. The flow's draws only choose the
   starting point: the data enter once, through the likelihood of the search, so they are not counted twice
   (on a linear-Gaussian problem the result is the exact posterior wherever the flow started).
3. Guards: the search must reach a MAP whose heads fit the data (RMS misfit at most ``max_misfit`` noise sds:
   a Laplace posterior around a point that does not explain the heads is not a posterior of these data), and
   n_draws draws of each posterior (the flow's and the Laplace one) run through MODFLOW; the refinement is kept
   only if the Laplace posterior's ELBO (E_q[ln p(d | z) p(z) - ln q(z)], the posterior objective that ranks two
   approximations by their KL divergence to the posterior) is higher than the flow's. Otherwise, or when the
   search cannot run, the flow's draws are kept and the data set counts as a fallback.
4. RML (Oliver et al. 1996; Kitanidis 1995): member j draws a prior sample z_p,j and a noise sample e_j and
   minimizes f_j(z) = |z - z_p,j|^2 / 2 + |W (d + e_j - G(z))|^2 / 2. Linearized at the MAP, its minimizer
   z_map + (I + H)^-1 (z_p,j + J^T W^2 e_j) is a Laplace draw, so the draws of step 3 are the members' starting
   points; each of ``rml_iterations`` Gauss-Newton updates with the MAP's Jacobian J (no new Jacobian: one run per
   member) then moves every member towards the minimizer of its own f_j, kept only where f_j falls (a Levenberg
   damping per member grows after a rejected update). The prior pull is against each member's own independent
   prior draw, so the data are not counted twice; on a linear-Gaussian problem the members are exact posterior
   draws from the start. Where the heads are nonlinear in ln K, the Laplace draws spread over directions the
   heads rule out (their heads miss the data by several noise sds); the members' updates bring them back.
   The refined posterior is the ensemble of members (n_draws of them, like the smoother's ensemble).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .glm import (DrawCheck, Forward, ForwardFailed, GNSettings, Laplace, ReducedPrior, check_draws, extend_modes,
                  gauss_newton, predictive_check)


@dataclass
class Ensemble:
    """RML members of one data set after their updates."""

    z: np.ndarray  # (n, dim) whitened members
    sims: np.ndarray  # (n, n_obs) their heads (NaN where the run failed)
    ok: np.ndarray  # (n,) the member's current run converged
    objective: np.ndarray  # (n,) f_j at the members' current points (inf where the run failed)
    accepted: list[int]  # members whose update was kept, per iteration

    def lnk_samples(self, prior: ReducedPrior) -> np.ndarray:
        """(m, n_cells) ln K of the members whose run converged (the others lie where MODFLOW fails)."""
        return prior.lnk(self.z[self.ok])


@dataclass
class Refined:
    laplace: Laplace | None  # None when the search could not run
    accepted: bool  # True: the refined posterior; False: the flow's (a fallback)
    reason: str
    flow_check: DrawCheck
    refined_check: DrawCheck | None  # the Laplace draws (the members' starting points)
    n_runs: int  # every MODFLOW run of this data set: search, Jacobians, the draws of both checks, RML updates
    ensemble: Ensemble | None = None  # the RML members (accepted refinements only)
    ensemble_check: DrawCheck | None = None  # their posterior predictive fit (no density: no ELBO, Pareto-k)

    @property
    def kept_check(self) -> DrawCheck:
        """The draw check of the posterior kept: the RML members', the Laplace draws', or the flow's (fallback)."""
        if not self.accepted:
            return self.flow_check
        return self.ensemble_check or self.refined_check


def run_draws(forward: Forward, prior: ReducedPrior, z: np.ndarray, log_q: np.ndarray, d: np.ndarray,
              weights: np.ndarray) -> DrawCheck:
    sims, ok = forward(prior.lnk(z))
    return check_draws(z, sims, ok, log_q, d, weights)


@dataclass
class Members:
    """The RML members' perturbations: prior draws z_p (n, dim) and noise draws e (n, n_obs), and their starts."""

    z_prior: np.ndarray
    noise: np.ndarray
    z_start: np.ndarray  # (n, dim) linearized minimizers at the MAP: draws of the Laplace posterior


def rml_members(lap: Laplace, weights: np.ndarray, n: int, rng: np.random.Generator, dim: int) -> Members:
    """n members: z_p ~ N(0, I) in every mode, e ~ N(0, W^-2) on the observed values (0 where missing), and
    their starting points z_map + (I + H)^-1 (z_p + J^T W^2 e) in the k modes, z_p on the rest (the prior's modes
    of the Laplace posterior): distributed exactly as `Laplace.sample_z`."""
    k, observed = lap.k, weights > 0
    z_prior = rng.standard_normal((n, dim))
    noise = np.zeros((n, len(weights)))
    noise[:, observed] = rng.standard_normal((n, int(observed.sum()))) / weights[observed]
    wj = lap.jacobian * weights[:, None]
    start = z_prior.copy()
    start[:, :k] = lap.z_map + _solve(lap, z_prior[:, :k] + (noise * weights) @ wj, np.zeros(n))
    return Members(z_prior, noise, start)


def _solve(lap: Laplace, rhs: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Rows of ((1 + lam_j) I + H)^-1 rhs_j, through H's eigen-decomposition (one per data set)."""
    coef = (rhs @ lap.eigvec) / (1.0 + lam[:, None] + lap.eig)
    return coef @ lap.eigvec.T


def member_objectives(members: Members, z: np.ndarray, sims: np.ndarray, ok: np.ndarray, d: np.ndarray,
                      weights: np.ndarray) -> np.ndarray:
    """(n,) f_j = |z_j - z_p,j|^2 / 2 + |W (d + e_j - G(z_j))|^2 / 2; inf where the run failed."""
    resid = np.where(ok[:, None], (d + members.noise - np.nan_to_num(sims)) * weights, 0.0)
    f = 0.5 * ((z - members.z_prior) ** 2).sum(1) + 0.5 * (resid**2).sum(1)
    return np.where(ok, f, np.inf)


def rml_update(forward: Forward, prior: ReducedPrior, lap: Laplace, members: Members, sims: np.ndarray,
               ok: np.ndarray, d: np.ndarray, weights: np.ndarray, n_iter: int) -> Ensemble:
    """``n_iter`` Gauss-Newton updates of every member with the MAP's Jacobian (n runs each), from the starting
    points whose heads are ``sims`` (module docstring, step 4). A member whose run failed is pulled halfway to
    the MAP; a rejected update keeps the member and multiplies its damping by 10."""
    k = lap.k
    z, sims, ok = members.z_start.copy(), np.array(sims, float), np.array(ok, bool)
    f = member_objectives(members, z, sims, ok, d, weights)
    lam = np.zeros(len(z))
    wj = lap.jacobian * weights[:, None]
    accepted = []
    for _ in range(n_iter):
        resid = np.where(ok[:, None], (d + members.noise - np.nan_to_num(sims)) * weights, 0.0)
        step = _solve(lap, resid @ wj - (z[:, :k] - members.z_prior[:, :k]), lam)
        cand = z.copy()
        cand[:, :k] = np.where(ok[:, None], z[:, :k] + step, 0.5 * (z[:, :k] + lap.z_map))
        csims, cok = forward(prior.lnk(cand))
        cf = member_objectives(members, cand, csims, cok, d, weights)
        better = cok & (cf < f)
        z[better], sims[better], ok[better], f[better] = cand[better], csims[better], True, cf[better]
        lam = np.where(better, np.where(lam >= 1.0, lam / 10.0, 0.0), np.maximum(1.0, 10.0 * lam))
        accepted.append(int(better.sum()))
    return Ensemble(z, sims, ok, f, accepted)


def refine(forward: Forward, prior: ReducedPrior, d: np.ndarray, weights: np.ndarray, flow_z: np.ndarray,
           flow_log_q: np.ndarray, cfg: GNSettings, rng: np.random.Generator, max_misfit: float,
           fixed: np.ndarray | None = None, rml_iterations: int = 0) -> Refined:
    """Refine the flow's posterior of one data set.

    ``flow_z`` (S, dim) whitened flow draws; ``flow_log_q`` (n,) ln q of the first n of them, the draws that run
    through MODFLOW for the guard (n = len(flow_log_q); the Laplace posterior gets as many, the RML members);
    ``max_misfit`` the largest RMS misfit of the MAP's heads, in noise sds, that the refined posterior may keep;
    ``rml_iterations`` the RML updates of the members (0: the refined posterior is the Laplace one).
    """
    n = len(flow_log_q)
    flow_check = run_draws(forward, prior, flow_z[:n], flow_log_q, d, weights)
    try:
        lap = gauss_newton(forward, prior, d, weights, flow_z.mean(0), cfg)
        if fixed is not None:
            lap, _ = extend_modes(forward, prior, d, weights, lap, fixed)
    except ForwardFailed as exc:
        return Refined(None, False, f"fallback: {exc}", flow_check, None, n)
    members = rml_members(lap, weights, n, rng, flow_z.shape[1])
    sims, ok = forward(prior.lnk(members.z_start))
    check = check_draws(members.z_start, sims, ok, lap.log_q(members.z_start), d, weights)
    runs = n + lap.n_runs + n
    observed = weights > 0
    misfit = float(np.sqrt(np.mean(((lap.sim_map - d) * weights)[observed] ** 2)))  # in noise sds
    if misfit > max_misfit:
        return Refined(lap, False, f"fallback: the MAP misses the heads by {misfit:.1f} noise sd (RMS)",
                       flow_check, check, runs)
    if check.elbo <= flow_check.elbo:
        return Refined(lap, False, "fallback: the refined ELBO is not above the flow's", flow_check, check, runs)
    if rml_iterations == 0:
        return Refined(lap, True, "refined: its ELBO is above the flow's", flow_check, check, runs)
    ens = rml_update(forward, prior, lap, members, sims, ok, d, weights, rml_iterations)
    return Refined(lap, True, f"refined: its ELBO is above the flow's; {rml_iterations} RML updates",
                   flow_check, check, runs + n * rml_iterations, ens,
                   predictive_check(ens.sims, ens.ok, d, weights))
