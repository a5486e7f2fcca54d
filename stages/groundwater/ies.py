"""Iterative ensemble smoother in the GLM form of pestpp-ies (Chen & Oliver 2013; White 2018).

The paper's baseline "PEST-IES". With N realizations Theta (N, n_par), simulated data D (N, n_obs), perturbed
observations D_obs (N, n_obs) and weights W = 1 / sigma:
    dTheta = (Theta - mean) / sqrt(N - 1),  dD = W (D - mean) / sqrt(N - 1),  dD^T = U S V^T (truncated SVD)
    Theta <- Theta - scale * dTheta^T V S (S^2 + (1 + lambda) I)^-1 U^T W (D - D_obs)
(the "approximate" upgrade that pestpp-ies uses by default; with lambda = 0 and one step it is the ensemble
smoother, i.e. the Kalman update with ensemble covariances). The Levenberg-Marquardt lambda and a step scale are
chosen on a random subset of realizations, the winner is accepted if its mean phi is within ``accept_phi_fac``
of the previous one, then lambda shrinks; otherwise lambda grows and the iteration is retried.

The forward model is a callable ``forward(theta (n, n_par)) -> (D (n, n_obs), ok (n,))``; realizations whose run
fails are dropped from the ensemble (as pestpp-ies does) and counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from phys_ml.stages.common.errors import RunFailed

Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class IESSettings:
    n_iter: int = 10
    lambda_mults: tuple[float, ...] = (0.1, 1.0, 10.0)
    scale_facs: tuple[float, ...] = (0.75, 1.0, 1.1)
    subset_frac: float = 0.1
    min_subset: int = 4
    accept_phi_fac: float = 1.05
    lambda_dec: float = 0.75
    lambda_inc: float = 10.0
    eigthresh: float = 1e-6
    initial_lambda: float | None = None
    phi_rel_tol: float = 0.01  # stop after `n_stall` accepted iterations each improving mean phi less than this
    n_stall: int = 2
    max_rejects: int = 4
    stop_at_noise_level: bool = True  # stop once mean phi against the real data is <= n_obs (fit to noise)


@dataclass
class IterRecord:
    iteration: int
    accepted: bool
    lam: float
    scale: float
    mean_phi: float  # against each realization's perturbed observations ("measured" phi)
    min_phi: float
    max_phi: float
    mean_phi_actual: float  # against the unperturbed observations
    n_real: int
    n_runs: int  # cumulative model runs


@dataclass
class IESResult:
    theta: np.ndarray  # (N, n_par) posterior ensemble (base realization first when used)
    sim: np.ndarray  # (N, n_obs) simulated data of the posterior ensemble
    has_base: bool
    history: list[IterRecord] = field(default_factory=list)
    n_runs: int = 0
    n_failed: int = 0
    stop_reason: str = ""


def glm_upgrade(theta: np.ndarray, sim: np.ndarray, obs_pert: np.ndarray, weights: np.ndarray,
                lam: float, eigthresh: float = 1e-6) -> np.ndarray:
    """The GLM parameter upgrade (N, n_par) for one lambda (scale 1); see the module docstring."""
    n = len(theta)
    d_theta = (theta - theta.mean(0)) / math.sqrt(n - 1)
    d_sim = (sim - sim.mean(0)) * weights / math.sqrt(n - 1)
    u, s, vt = np.linalg.svd(d_sim.T, full_matrices=False)
    keep = s > eigthresh * s[0] if s.size and s[0] > 0 else np.zeros_like(s, dtype=bool)
    u, s, vt = u[:, keep], s[keep], vt[keep]
    resid = ((sim - obs_pert) * weights).T  # (n_obs, N)
    # -(dTheta^T V diag U^T R)^T, multiplied right to left so no N x N matrix is formed.
    core = u @ ((s / (s**2 + 1.0 + lam))[:, None] * (vt @ d_theta))  # (n_obs, n_par)
    return -(resid.T @ core)


def phi_of(sim: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum of squared weighted residuals per realization."""
    return np.sum(((sim - target) * weights) ** 2, axis=-1)


def run_ies(theta0: np.ndarray, d_obs: np.ndarray, sd: np.ndarray, forward: Forward, settings: IESSettings,
            rng: np.random.Generator, base: np.ndarray | None = None,
            on_iteration: Callable[[IterRecord], None] | None = None) -> IESResult:
    """Condition the prior ensemble ``theta0`` (N, n_par) on ``d_obs`` (n_obs,) with noise sd ``sd``.

    ``base`` (n_par,), usually the prior mean, is added as realization 0 and matched to the noise-free data.
    """
    d_obs, sd = np.asarray(d_obs, float), np.broadcast_to(np.asarray(sd, float), np.shape(d_obs))
    weights = 1.0 / sd
    theta = np.asarray(theta0, float).copy()
    obs_pert = d_obs + sd * rng.standard_normal((len(theta), len(d_obs)))
    has_base = base is not None
    if has_base:
        theta = np.vstack([np.asarray(base, float)[None], theta])
        obs_pert = np.vstack([d_obs[None], obs_pert])
    is_base = np.zeros(len(theta), bool)
    is_base[0] = has_base

    sim, ok = forward(theta)
    result = IESResult(theta, sim, has_base, n_runs=len(theta), n_failed=int((~ok).sum()))
    theta, sim, obs_pert, is_base = theta[ok], sim[ok], obs_pert[ok], is_base[ok]
    if len(theta) < 3:
        raise RunFailed(f"only {len(theta)} prior realizations ran successfully")
    phi = phi_of(sim, obs_pert, weights)
    lam = settings.initial_lambda
    if lam is None:
        lam = 10.0 ** math.floor(math.log10(max(phi.mean() / (2 * len(d_obs)), 1e-12)))

    def record(it: int, accepted: bool, lam_: float, scale: float) -> None:
        rec = IterRecord(it, accepted, float(lam_), float(scale), float(phi.mean()), float(phi.min()),
                         float(phi.max()), float(phi_of(sim, d_obs, weights).mean()), len(theta), result.n_runs)
        result.history.append(rec)
        if on_iteration:
            on_iteration(rec)

    record(0, True, lam, 1.0)
    rejects = stalls = 0
    result.stop_reason = f"reached {settings.n_iter} iterations"
    for it in range(1, settings.n_iter + 1):
        n = len(theta)
        n_sub = min(n, max(settings.min_subset, math.ceil(settings.subset_frac * n)))
        subset = np.sort(rng.choice(n, size=n_sub, replace=False))
        # Candidate upgrades: every lambda multiplier x every scale factor, tried on the subset.
        candidates = []
        for mult in settings.lambda_mults:
            upgrade = glm_upgrade(theta, sim, obs_pert, weights, lam * mult, settings.eigthresh)
            candidates += [(lam * mult, scale, upgrade) for scale in settings.scale_facs]
        trial = np.concatenate([theta[subset] + scale * up[subset] for _, scale, up in candidates])
        trial_sim, trial_ok = forward(trial)
        result.n_runs += len(trial)
        result.n_failed += int((~trial_ok).sum())
        trial_phi = np.where(trial_ok, phi_of(trial_sim, np.tile(obs_pert[subset], (len(candidates), 1)), weights),
                             np.inf).reshape(len(candidates), n_sub)
        cand_mean = np.array([row[np.isfinite(row)].mean() if np.isfinite(row).any() else np.inf
                              for row in trial_phi])
        best = int(np.argmin(cand_mean))
        best_lam, best_scale, best_up = candidates[best]
        prev_mean = phi.mean()
        if cand_mean[best] <= settings.accept_phi_fac * phi[subset].mean():
            new_theta = theta + best_scale * best_up
            new_sim = np.empty_like(sim)
            new_ok = np.ones(n, bool)
            sl = slice(best * n_sub, (best + 1) * n_sub)
            new_sim[subset], new_ok[subset] = trial_sim[sl], trial_ok[sl]
            rest = np.setdiff1d(np.arange(n), subset)
            if rest.size:
                rest_sim, rest_ok = forward(new_theta[rest])
                result.n_runs += rest.size
                result.n_failed += int((~rest_ok).sum())
                new_sim[rest], new_ok[rest] = rest_sim, rest_ok
            new_phi = phi_of(new_sim[new_ok], obs_pert[new_ok], weights)
            if new_ok.sum() >= 3 and new_phi.mean() <= settings.accept_phi_fac * prev_mean:
                theta, sim, obs_pert, is_base = new_theta[new_ok], new_sim[new_ok], obs_pert[new_ok], is_base[new_ok]
                phi = new_phi
                lam = best_lam * settings.lambda_dec if phi.mean() < prev_mean else best_lam
                rejects = 0
                record(it, True, best_lam, best_scale)
                stalls = stalls + 1 if (prev_mean - phi.mean()) < settings.phi_rel_tol * prev_mean else 0
                if settings.stop_at_noise_level and result.history[-1].mean_phi_actual <= len(d_obs):
                    result.stop_reason = "mean phi reached the noise level (n_obs)"
                    break
                if stalls >= settings.n_stall:
                    result.stop_reason = (f"mean phi improved less than {settings.phi_rel_tol:.0%} "
                                          f"{settings.n_stall} times in a row")
                    break
                continue
        lam = best_lam * settings.lambda_inc
        rejects += 1
        record(it, False, best_lam, best_scale)
        if rejects >= settings.max_rejects:
            result.stop_reason = f"{rejects} upgrades rejected in a row"
            break
    order = np.argsort(~is_base, kind="stable")  # base realization (if it survived) first
    result.theta, result.sim = theta[order], sim[order]
    result.has_base = bool(is_base.any())
    return result
