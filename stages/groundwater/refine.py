"""Amortize, then refine: the flow's posterior starts a short Gauss-Newton search, and a guard keeps the result
only where it is a better posterior than the flow's (pure: arrays and a forward callable in).

1. Start at the flow's posterior mean, projected on the k leading prior modes of the reduced basis.
2. Gauss-Newton / Levenberg-Marquardt (`glm.gauss_newton`) within a run budget, then the Laplace posterior at the
   point reached: N(z_map, (I + H)^-1) in the k modes and the prior on the rest. The flow's draws only choose the
   starting point: the data enter once, through the likelihood of the search, so they are not counted twice
   (on a linear-Gaussian problem the result is the exact posterior wherever the flow started).
3. Guards: the search must reach a MAP whose heads fit the data (RMS misfit at most ``max_misfit`` noise sds:
   a Laplace posterior around a point that does not explain the heads is not a posterior of these data), and
   n_draws draws of each posterior (the flow's and the refined one) run through MODFLOW; the refined
   posterior is kept only if its ELBO (E_q[ln p(d | z) p(z) - ln q(z)], the posterior objective that ranks two
   approximations by their KL divergence to the posterior) is higher than the flow's. Otherwise, or when the
   search cannot run, the flow's draws are kept and the data set counts as a fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .glm import (DrawCheck, Forward, ForwardFailed, GNSettings, Laplace, ReducedPrior, check_draws, extend_modes,
                  gauss_newton)


@dataclass
class Refined:
    laplace: Laplace | None  # None when the search could not run
    accepted: bool  # True: the refined posterior; False: the flow's (a fallback)
    reason: str
    flow_check: DrawCheck
    refined_check: DrawCheck | None
    n_runs: int  # every MODFLOW run of this data set: search, Jacobians, the draws of both checks


def run_draws(forward: Forward, prior: ReducedPrior, z: np.ndarray, log_q: np.ndarray, d: np.ndarray,
              weights: np.ndarray) -> DrawCheck:
    sims, ok = forward(prior.lnk(z))
    return check_draws(z, sims, ok, log_q, d, weights)


def refine(forward: Forward, prior: ReducedPrior, d: np.ndarray, weights: np.ndarray, flow_z: np.ndarray,
           flow_log_q: np.ndarray, cfg: GNSettings, rng: np.random.Generator, max_misfit: float,
           fixed: np.ndarray | None = None) -> Refined:
    """Refine the flow's posterior of one data set.

    ``flow_z`` (S, dim) whitened flow draws; ``flow_log_q`` (n,) ln q of the first n of them, the draws that run
    through MODFLOW for the guard (n = len(flow_log_q); the refined posterior gets as many); ``max_misfit`` the
    largest RMS misfit of the MAP's heads, in noise sds, that the refined posterior may keep.
    """
    n = len(flow_log_q)
    flow_check = run_draws(forward, prior, flow_z[:n], flow_log_q, d, weights)
    try:
        lap = gauss_newton(forward, prior, d, weights, flow_z.mean(0), cfg)
        if fixed is not None:
            lap, _ = extend_modes(forward, prior, d, weights, lap, fixed)
    except ForwardFailed as exc:
        return Refined(None, False, f"fallback: {exc}", flow_check, None, n)
    z = lap.sample_z(n, rng, flow_z.shape[1])
    check = run_draws(forward, prior, z, lap.log_q(z), d, weights)
    runs = n + lap.n_runs + n
    observed = weights > 0
    misfit = float(np.sqrt(np.mean(((lap.sim_map - d) * weights)[observed] ** 2)))  # in noise sds
    if misfit > max_misfit:
        return Refined(lap, False, f"fallback: the MAP misses the heads by {misfit:.1f} noise sd (RMS)",
                       flow_check, check, runs)
    if check.elbo > flow_check.elbo:
        return Refined(lap, True, "refined: its ELBO is above the flow's", flow_check, check, runs)
    return Refined(lap, False, "fallback: the refined ELBO is not above the flow's", flow_check, check, runs)
