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

Written in realization space with G = dD (N, n_obs) and R = W (D - D_obs) (N, n_obs), the same upgrade is
    Theta <- Theta - scale * [R G^T + M^T] (G G^T + (1 + lambda) I_N)^-1 dTheta
(no SVD truncation: c = 1 + lambda >= 1 regularizes, and a direction with singular value s contributes at most
s / c), where M = dTheta C^+ (Theta - Theta_0)^T is the prior-pull term of the full GLM upgrade (pestpp
``ies_use_approx=false``, Chen & Oliver 2013): C^+ = A A^T is the pseudo-inverse of the prior ensemble's
covariance (pestpp's ``Am``) and Theta_0 each realization's own prior draw, so M = 0 at the first iteration.
With ``use_approx`` (the default, as in pestpp) M is left out.

Localization (PEST++ manual, "localization"; pestpp-ies ``ies_autoadaloc``, ``ies_localizer``, ``ies_loc_type``):
- ``none``.
- ``autoadaloc``: each upgrade, the correlation cc of every parameter-observation pair from the current ensemble
  anomalies; the pair is kept where |cc| > ``autoadaloc_sigma_dist`` x sqrt(1 / (N - 2)), the background level
  of a correlation estimated from N realizations (pestpp's default multiple is 1). Then a local analysis per
  parameter: the same solve with only its kept observations (rows of G and R); a parameter with none is left
  unchanged. Parameters with identical kept sets are solved together (one factorization of the smaller Gram
  matrix per distinct set, for all lambdas at once), which gives exactly the per-parameter result.
- ``distance``: a user localizer (pestpp ``ies_localizer``) made of a Gaspari-Cohn taper T (n_obs, n_par) from
  each observation's well to each cell, applied as a Schur product on the parameter-observation cross-covariance
  of the Kalman-gain form (pestpp ``ies_loc_type=covariance``):
      Theta <- Theta - scale * R (G^T G + c I)^-1 (T o (G^T dTheta))
  Tapering the cross-covariance rather than weighting each parameter's observations keeps one n_obs x n_obs
  factorization per upgrade and a smooth transition (a per-parameter weighting would need 706 local solves);
  with T = 1 (infinite length) it is the unlocalized upgrade exactly (push-through identity).

Where this differs from pestpp-ies:
- no eigenvalue truncation of the local or global solves (see above); pestpp truncates at ``ies_eigthresh``;
- the prior-pull term uses the full realization-space inverse, so the pull also acts on directions the data do
  not inform (pestpp projects it on the retained singular vectors of dD); in local analysis and with the
  distance taper the pull uses the global C^+ (Theta - Theta_0) (pestpp restricts ``Am`` to the local
  parameters) and is not tapered;
- autoadaloc uses plain (not weight-scaled) correlations, which are scale-free anyway, and is not combined with
  a user localizer; pestpp can run both together;
- the ensemble spread statistics (sd of ln K, the share of sds below 5 % of the initial ensemble's) leave out the
  base realization; pestpp reports them per parameter group, here there is one group.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from phys_ml.stages.common.errors import RunFailed

if TYPE_CHECKING:
    from .config import IESConfig

Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


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
    sd_phi: float = float("nan")
    lnk_sd_mean: float = float("nan")  # mean over parameters of the ensemble sd (base realization excluded)
    lnk_sd_collapsed: float = float("nan")  # share of parameters whose sd fell below 5 % of the initial sd
    loc_kept: float = float("nan")  # autoadaloc: share of parameter-observation pairs kept (of the upgrade)

    def line(self) -> str:
        """One log line, as pestpp-ies reports an iteration."""
        return (f"iteration {self.iteration} {'accepted' if self.accepted else 'rejected'} lambda {self.lam:.3g} "
                f"phi mean {self.mean_phi:.4g} sd {self.sd_phi:.3g} min {self.min_phi:.4g} max {self.max_phi:.4g} "
                f"(vs data {self.mean_phi_actual:.4g}); ln K sd mean {self.lnk_sd_mean:.3f}, "
                f"{self.lnk_sd_collapsed:.1%} of sds < 5 % of the prior's"
                + ("" if math.isnan(self.loc_kept) else f"; pairs kept {self.loc_kept:.1%}") + f"; {self.n_runs} runs")


@dataclass
class IESResult:
    theta: np.ndarray  # (N, n_par) posterior ensemble (base realization first when used)
    sim: np.ndarray  # (N, n_obs) simulated data of the posterior ensemble
    has_base: bool
    history: list[IterRecord] = field(default_factory=list)
    n_runs: int = 0
    n_failed: int = 0
    stop_reason: str = ""

    def summary(self, key: str) -> dict:
        """Flat ``<key>_...`` counts of the run and its last iteration, for the stage's ies.json."""
        last = self.history[-1]
        return {f"{key}_n_runs": self.n_runs, f"{key}_n_failed": self.n_failed, f"{key}_iterations": last.iteration,
                f"{key}_final_mean_phi": last.mean_phi_actual, f"{key}_final_phi_mean": last.mean_phi,
                f"{key}_final_phi_sd": last.sd_phi, f"{key}_final_phi_min": last.min_phi,
                f"{key}_final_phi_max": last.max_phi, f"{key}_final_lnk_sd_mean": round(last.lnk_sd_mean, 4),
                f"{key}_final_lnk_sd_collapsed": round(last.lnk_sd_collapsed, 4), f"{key}_stop": self.stop_reason}


def gaspari_cohn(r: np.ndarray, length: float) -> np.ndarray:
    """Gaspari & Cohn (1999) fifth-order taper of distance ``r``: 1 at 0, 0 beyond 2 x ``length``."""
    r = np.asarray(r, float)
    if math.isinf(length):
        return np.ones_like(r)
    z = np.abs(r) / length
    out = np.zeros_like(z)
    a = z <= 1.0
    b = (z > 1.0) & (z < 2.0)
    za, zb = z[a], z[b]
    out[a] = -0.25 * za**5 + 0.5 * za**4 + 0.625 * za**3 - 5.0 / 3.0 * za**2 + 1.0
    out[b] = (zb**5 / 12.0 - 0.5 * zb**4 + 0.625 * zb**3 + 5.0 / 3.0 * zb**2 - 5.0 * zb + 4.0
              - 2.0 / (3.0 * zb))
    return np.clip(out, 0.0, 1.0)


def distance_taper(par_xy: np.ndarray, obs_xy: np.ndarray, length: float) -> np.ndarray:
    """(n_obs, n_par) Gaspari-Cohn weights from each observation location to each parameter location."""
    d = np.sqrt(((np.asarray(obs_xy, float)[:, None, :] - np.asarray(par_xy, float)[None]) ** 2).sum(-1))
    return gaspari_cohn(d, length)


def autoadaloc_mask(theta: np.ndarray, sim: np.ndarray, sigma_dist: float = 1.0) -> np.ndarray:
    """(n_par, n_obs) bool: keep the pair where |corr| > sigma_dist x sqrt(1 / (N - 2)) (pestpp-ies autoadaloc).

    Correlations from the ensemble anomalies; a column without spread correlates with nothing.
    """
    n = len(theta)
    if n < 3:
        raise ValueError("automatic adaptive localization needs at least 3 realizations")

    def standard(x):
        a = x - x.mean(0)
        sd = np.sqrt((a**2).sum(0) / (n - 1))
        return np.divide(a, sd, out=np.zeros_like(a), where=sd > 0)

    cc = standard(np.asarray(theta, float)).T @ standard(np.asarray(sim, float)) / (n - 1)
    return np.abs(cc) > sigma_dist * math.sqrt(1.0 / (n - 2))


def prior_precision_factor(theta0: np.ndarray, eigthresh: float = 1e-6) -> np.ndarray:
    """(n_par, k) A with A A^T the pseudo-inverse of the prior ensemble's covariance (as pestpp's ``Am``)."""
    n = len(theta0)
    d0 = (theta0 - theta0.mean(0)) / math.sqrt(n - 1)
    u, s, _ = np.linalg.svd(d0.T, full_matrices=False)
    keep = s > eigthresh * s[0] if s.size and s[0] > 0 else np.zeros_like(s, dtype=bool)
    return u[:, keep] / s[keep]


def _inverse(g: np.ndarray):
    """Factor (G G^T + c I_N) once; return apply(c, X) = (G G^T + c I)^-1 X for any c > 0.

    Uses the smaller Gram matrix: N x N when n_obs >= N, else n_obs x n_obs with the push-through identity
    (G G^T + c I)^-1 = (I - G (G^T G + c I)^-1 G^T) / c.
    """
    n, o = g.shape
    if o >= n:
        e, v = np.linalg.eigh(g @ g.T)
        e = np.clip(e, 0.0, None)
        return lambda c, x: v @ ((v.T @ x) / (e + c)[:, None])
    e, u = np.linalg.eigh(g.T @ g)
    e = np.clip(e, 0.0, None)
    h = g @ u
    return lambda c, x: (x - h @ ((h.T @ x) / (e + c)[:, None])) / c


def glm_upgrades(theta: np.ndarray, sim: np.ndarray, obs_pert: np.ndarray, weights: np.ndarray,
                 lams: list[float] | tuple[float, ...], *, localization: str = "none",
                 mask: np.ndarray | None = None, taper: np.ndarray | None = None,
                 theta_prior: np.ndarray | None = None, prior_factor: np.ndarray | None = None) -> list[np.ndarray]:
    """The GLM upgrades (N, n_par), one per lambda in ``lams`` (scale 1); see the module docstring.

    localization: "none"; "autoadaloc" (``mask`` (n_par, n_obs) bool: local analysis, each parameter sees only
    its kept observations, parameters grouped by identical observation sets); "distance" (``taper``
    (n_obs, n_par): Schur product on the parameter-observation cross-covariance of the Kalman-gain form).
    With ``theta_prior`` (N, n_par, each realization's prior draw) and ``prior_factor`` (`prior_precision_factor`)
    the prior-pull term of the full upgrade (pestpp ``ies_use_approx=false``) is added.
    """
    n = len(theta)
    d_theta = (theta - theta.mean(0)) / math.sqrt(n - 1)  # (N, p)
    g = (sim - sim.mean(0)) * weights / math.sqrt(n - 1)  # (N, o)
    resid = (sim - obs_pert) * weights  # (N, o)
    cs = [1.0 + lam for lam in lams]
    # prior-pull term in realization space: M = dTheta C^-1 (theta - theta_prior)^T, (N, N)
    m_t = None
    if theta_prior is not None and prior_factor is not None:
        m_t = ((theta - theta_prior) @ prior_factor) @ (d_theta @ prior_factor).T  # = M^T
    out = [np.zeros_like(d_theta) for _ in cs]
    if localization == "none" or (localization == "distance" and taper is None):
        inv = _inverse(g)
        lhs = resid @ g.T if m_t is None else resid @ g.T + m_t  # (N, N)
        for k, c in enumerate(cs):
            out[k] = -(lhs @ inv(c, d_theta))
        return out
    if localization == "distance":
        # Kalman-gain form: dTheta_up = -R (G^T G + c I_o)^-1 (T o (G^T dTheta)); the pull term is not tapered.
        e, u = np.linalg.eigh(g.T @ g)
        e = np.clip(e, 0.0, None)
        cross = u.T @ (np.asarray(taper, float) * (g.T @ d_theta))  # (o, p)
        ru = resid @ u
        inv = _inverse(g) if m_t is not None else None
        for k, c in enumerate(cs):
            out[k] = -(ru @ (cross / (e + c)[:, None]))
            if m_t is not None:
                out[k] -= m_t @ inv(c, d_theta)
        return out
    if localization != "autoadaloc" or mask is None:
        raise ValueError(f"unknown localization {localization!r} (or autoadaloc without a mask)")
    mask = np.asarray(mask, bool)
    keys, group = np.unique(np.packbits(mask, axis=1), axis=0, return_inverse=True)
    group = np.asarray(group).ravel()
    for k_grp in range(len(keys)):
        cols = np.flatnonzero(group == k_grp)
        rows = np.flatnonzero(mask[cols[0]])
        if rows.size == 0:
            continue  # no kept observation: the parameter is left unchanged (as pestpp-ies does)
        g_o = g[:, rows]
        inv = _inverse(g_o)
        dt = d_theta[:, cols]
        lhs = resid[:, rows] @ g_o.T
        if m_t is not None:
            lhs = lhs + m_t
        for k, c in enumerate(cs):
            out[k][:, cols] = -(lhs @ inv(c, dt))
    return out


def glm_upgrade(theta: np.ndarray, sim: np.ndarray, obs_pert: np.ndarray, weights: np.ndarray,
                lam: float, eigthresh: float = 1e-6) -> np.ndarray:
    """The unlocalized approximate GLM upgrade (N, n_par) for one lambda (scale 1)."""
    return glm_upgrades(theta, sim, obs_pert, weights, [lam])[0]


def phi_of(sim: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum of squared weighted residuals per realization."""
    return np.sum(((sim - target) * weights) ** 2, axis=-1)


def run_ies(theta0: np.ndarray, d_obs: np.ndarray, sd: np.ndarray, forward: Forward, settings: IESConfig,
            rng: np.random.Generator, localization: str = "none", base: np.ndarray | None = None,
            on_iteration: Callable[[IterRecord], None] | None = None,
            taper: np.ndarray | None = None) -> IESResult:
    """Condition the prior ensemble ``theta0`` (N, n_par) on ``d_obs`` (n_obs,) with noise sd ``sd``.

    ``settings`` is the params section `config.IESConfig` (its ``localization`` list is the stage's; this run
    uses ``localization``: none, autoadaloc or distance). ``base`` (n_par,), usually the prior mean, is added as
    realization 0 and matched to the noise-free data. ``taper`` (n_obs, n_par) is the localization matrix of
    ``localization == "distance"``.
    """
    d_obs, sd = np.asarray(d_obs, float), np.broadcast_to(np.asarray(sd, float), np.shape(d_obs))
    weights = 1.0 / sd
    if localization not in ("none", "autoadaloc", "distance"):
        raise ValueError(f"unknown localization {localization!r}")
    if localization == "distance" and taper is None:
        raise ValueError("distance localization needs a taper (n_obs, n_par)")
    theta = np.asarray(theta0, float).copy()
    prior_factor = None if settings.use_approx else prior_precision_factor(theta, settings.eigthresh)
    sd_init = theta.std(0, ddof=1)
    obs_pert = d_obs + sd * rng.standard_normal((len(theta), len(d_obs)))
    has_base = base is not None
    if has_base:
        theta = np.vstack([np.asarray(base, float)[None], theta])
        obs_pert = np.vstack([d_obs[None], obs_pert])
    is_base = np.zeros(len(theta), bool)
    is_base[0] = has_base
    theta_prior = theta.copy()

    sim, ok = forward(theta)
    result = IESResult(theta, sim, has_base, n_runs=len(theta), n_failed=int((~ok).sum()))
    theta, sim, obs_pert, is_base, theta_prior = theta[ok], sim[ok], obs_pert[ok], is_base[ok], theta_prior[ok]
    if len(theta) < 3:
        raise RunFailed(f"only {len(theta)} prior realizations ran successfully")
    phi = phi_of(sim, obs_pert, weights)
    lam = settings.initial_lambda
    if lam is None:
        lam = 10.0 ** math.floor(math.log10(max(phi.mean() / (2 * len(d_obs)), 1e-12)))

    kept = [float("nan")]

    def record(it: int, accepted: bool, lam_: float, scale: float) -> None:
        spread = theta[~is_base].std(0, ddof=1) if (~is_base).sum() > 1 else np.full(theta.shape[1], np.nan)
        rec = IterRecord(it, accepted, float(lam_), float(scale), float(phi.mean()), float(phi.min()),
                         float(phi.max()), float(phi_of(sim, d_obs, weights).mean()), len(theta), result.n_runs,
                         sd_phi=float(phi.std(ddof=1)), lnk_sd_mean=float(spread.mean()),
                         lnk_sd_collapsed=float((spread < 0.05 * sd_init).mean()), loc_kept=kept[0])
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
        mask = None
        if localization == "autoadaloc":
            mask = autoadaloc_mask(theta, sim, settings.autoadaloc_sigma_dist)
            kept[0] = float(mask.mean())
        lams = [lam * mult for mult in settings.lambda_mults]
        ups = glm_upgrades(theta, sim, obs_pert, weights, lams, localization=localization, mask=mask,
                           taper=taper, theta_prior=None if settings.use_approx else theta_prior,
                           prior_factor=prior_factor)
        candidates = [(lam_, scale, up) for lam_, up in zip(lams, ups) for scale in settings.scale_facs]
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
                theta_prior = theta_prior[new_ok]
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
