"""The field's linear analysis of the inversion (pestpp-glm, pyEMU Schur / FOSM), in the prior's whitened
coordinates and a reduced basis; also the refinement step of amortize-then-refine. Pure: arrays and a forward
callable in, results out.

With a Gaussian prior ln K = mu + B z, B = Phi Lambda^1/2 (Karhunen-Loeve, largest variance first), z ~ N(0, I):
- the reduced basis keeps the leading k modes z_k; the other 706 - k modes stay at their prior N(0, I). The MAP
  is sought in z_k with the rest at 0, the Laplace covariance is (I + H)^-1 in z_k and the prior on the rest.
  What this loses: the data's information on the trailing modes (their share of trace(H), which the Jacobian
  at the prior mean measures, `trace_share`), and any coupling of the trailing modes into the fit.
- objective f(z) = |z|^2 / 2 + |W (d - G(z))|^2 / 2 (W = 1 / sigma per observed value, 0 where missing);
  phi = |W (d - G)|^2.
- Gauss-Newton / Levenberg-Marquardt: with J = dG/dz_k by forward differences (k MODFLOW runs), H = J^T W^2 J,
  each candidate step is delta = ((1 + lambda) I + H)^-1 (J^T W^2 r - z), r = d - G(z); the candidates (one per
  lambda) run together, the best is accepted if it lowers f, else lambda grows; stop when f falls by less than
  ``f_tol`` nats, after ``max_iter`` accepted steps, or when the next iteration would pass ``max_runs``.
  With lambda = 0 on a linear-Gaussian problem one step lands on the exact posterior mean.
- at the MAP (Jacobian recomputed there): covariance (I + H)^-1; information gain 0.5 log det(I + H) nats;
  effective dimension sum e / (1 + e) over H's eigenvalues e; per-cell explained variance
  1 - post var / prior var, the ceiling of the per-cell R^2 any posterior mean can reach in the linear limit.
- reliability: importance weights of Laplace draws against the unnormalized posterior (one MODFLOW run each)
  with the Pareto-k diagnostic of PSIS (Vehtari et al. 2024: k > 0.7 means the Gaussian is not to be trusted),
  and the evidence lower bound ELBO(q) = E_q[ln p(d | z) p(z)] + H(q) (up to the same constant for every q),
  which compares two approximations of one posterior (higher: closer in KL(q || p)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .prior import kl_decomposition

Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # lnk (m, 706) -> heads (m, n_obs), ok (m,)


class ForwardFailed(RuntimeError):
    """A run the analysis cannot do without (the base point or a Jacobian column) did not converge."""


@dataclass(frozen=True)
class GNSettings:
    """Settings of one Gauss-Newton analysis (params: groundwater.glm / groundwater.refine)."""

    n_modes: int  # k: leading prior modes of the reduced basis
    fd_step: float  # forward-difference step in whitened units
    lambdas: tuple[float, ...]  # Levenberg-Marquardt dampings tried together each iteration (0: Gauss-Newton)
    lambda_inc: float  # all dampings x this after an iteration without an improving candidate
    max_iter: int  # accepted steps at most
    max_rejects: int  # stop after this many iterations in a row without an improving candidate
    max_runs: int  # MODFLOW runs of the MAP search and the final Jacobian at most
    f_tol: float  # stop when an accepted step lowers the objective by less than this (nats)


@dataclass(frozen=True)
class ReducedPrior:
    """The prior N(mean, cov) in Karhunen-Loeve coordinates: ln K = mean + basis z, z ~ N(0, I) (all modes)."""

    mean: np.ndarray  # (n,)
    basis: np.ndarray  # (n, n) Phi Lambda^1/2, leading modes first
    var: np.ndarray  # (n,) prior variance per cell

    @classmethod
    def from_cov(cls, mean: np.ndarray, cov: np.ndarray) -> ReducedPrior:
        lam, phi = kl_decomposition(cov)
        return cls(np.asarray(mean, float), phi * np.sqrt(lam), np.diag(np.asarray(cov, float)).copy())

    def lnk(self, z: np.ndarray) -> np.ndarray:
        """ln K of whitened z (..., m) with m <= n leading modes (the rest at 0)."""
        z = np.asarray(z, float)
        return self.mean + z @ self.basis[:, : z.shape[-1]].T

    def z(self, lnk: np.ndarray, k: int | None = None) -> np.ndarray:
        """Whitened coordinates (..., k) of ln K (the basis is orthogonal up to the scales)."""
        b = self.basis if k is None else self.basis[:, :k]
        return (np.asarray(lnk, float) - self.mean) @ b / (b**2).sum(0)


@dataclass
class GNStep:
    iteration: int
    accepted: bool
    lam: float
    objective: float
    phi: float
    prior_term: float  # |z|^2 / 2
    n_runs: int  # cumulative


@dataclass
class Laplace:
    """The MAP and the Laplace posterior of one data set in the reduced basis (rest of the modes: prior)."""

    z_map: np.ndarray  # (k,)
    sim_map: np.ndarray  # (n_obs,) heads at the MAP
    jacobian: np.ndarray  # (n_obs, k) at the MAP
    eig: np.ndarray  # (k,) eigenvalues of H = J^T W^2 J, descending
    eigvec: np.ndarray  # (k, k)
    objective: float
    phi: float
    n_runs: int
    stop_reason: str
    history: list[GNStep] = field(default_factory=list)

    @property
    def k(self) -> int:
        return len(self.z_map)

    def info_gain(self) -> float:
        """0.5 ln det(I + H), nats: what the data say about z in the linear limit."""
        return float(0.5 * np.log1p(self.eig).sum())

    def effective_dim(self) -> float:
        return float(np.sum(self.eig / (1.0 + self.eig)))

    def cov_factor(self) -> np.ndarray:
        """(k, k) F with F F^T = (I + H)^-1."""
        return self.eigvec / np.sqrt(1.0 + self.eig)

    def explained_variance(self, prior: ReducedPrior) -> np.ndarray:
        """(n,) 1 - posterior var / prior var per cell (the linear-limit ceiling of the per-cell R^2)."""
        bv = prior.basis[:, : self.k] @ self.eigvec
        return (bv**2 @ (self.eig / (1.0 + self.eig))) / prior.var

    def sample_z(self, n: int, rng: np.random.Generator, dim: int) -> np.ndarray:
        """(n, dim) whitened draws: N(z_map, (I + H)^-1) in the k modes, N(0, I) in the rest."""
        eps = rng.standard_normal((n, dim))
        eps[:, : self.k] = self.z_map + eps[:, : self.k] @ self.cov_factor().T
        return eps

    def log_q(self, z: np.ndarray) -> np.ndarray:
        """(n,) ln q(z) of whitened draws (n, dim) under this Laplace posterior (prior on the rest)."""
        u = (z[:, : self.k] - self.z_map) @ self.eigvec * np.sqrt(1.0 + self.eig)
        rest = z[:, self.k:]
        return (-0.5 * (u**2).sum(1) + 0.5 * np.log1p(self.eig).sum() - 0.5 * (rest**2).sum(1)
                - 0.5 * z.shape[1] * math.log(2 * math.pi))


def objective(z: np.ndarray, sim: np.ndarray, d: np.ndarray, weights: np.ndarray) -> tuple[float, float, float]:
    """(f, phi, |z|^2 / 2) of whitened z (any number of modes) with simulated heads ``sim``."""
    phi = float(np.sum(((d - sim) * weights) ** 2))
    prior = 0.5 * float(np.dot(z, z))
    return prior + 0.5 * phi, phi, prior


def log_target(z: np.ndarray, sims: np.ndarray, d: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n,) unnormalized ln p(z | d) = -|z|^2 / 2 - phi / 2 of whitened draws (n, dim) with heads (n, n_obs)."""
    return -0.5 * (z**2).sum(1) - 0.5 * (((d - sims) * weights) ** 2).sum(1)


def jacobian(forward: Forward, prior: ReducedPrior, z: np.ndarray, sim: np.ndarray, step: float) -> np.ndarray:
    """(n_obs, k) forward differences dG/dz at whitened z (k,) whose heads are ``sim``: k runs in one batch."""
    k = len(z)
    sims, ok = forward(prior.lnk(z + step * np.eye(k)))
    if not ok.all():
        raise ForwardFailed(f"{int((~ok).sum())} of {k} Jacobian runs did not converge")
    return (sims - sim).T / step


def _laplace(z: np.ndarray, sim: np.ndarray, jac: np.ndarray, d: np.ndarray, weights: np.ndarray, n_runs: int,
             stop: str, history: list[GNStep]) -> Laplace:
    wj = jac * weights[:, None]
    eig, vec = np.linalg.eigh(wj.T @ wj)
    order = np.argsort(eig)[::-1]
    f, phi, _ = objective(z, sim, d, weights)
    return Laplace(z, sim, jac, np.clip(eig[order], 0.0, None), vec[:, order], f, phi, n_runs, stop, history)


def gauss_newton(forward: Forward, prior: ReducedPrior, d: np.ndarray, weights: np.ndarray, z0: np.ndarray,
                 cfg: GNSettings, on_step: Callable[[GNStep], None] | None = None) -> Laplace:
    """MAP of f(z) in the k = ``cfg.n_modes`` leading modes from ``z0`` (its first k entries), then the Laplace
    posterior there (module docstring). ``weights`` (n_obs,) is 1 / sigma per observed value, 0 where missing."""
    d, weights = np.asarray(d, float), np.asarray(weights, float)
    k = cfg.n_modes
    z = np.zeros(k)
    z[: min(k, len(z0))] = np.asarray(z0, float)[:k]
    sims, ok = forward(prior.lnk(z)[None])
    if not ok[0]:
        raise ForwardFailed("the run at the starting point did not converge")
    sim, n_runs = sims[0], 1
    f, phi, pt = objective(z, sim, d, weights)
    history = [GNStep(0, True, float("nan"), f, phi, pt, n_runs)]
    lams = np.asarray(cfg.lambdas, float)
    stop, it, rejects, jac = f"reached {cfg.max_iter} steps", 0, 0, None

    def record(accepted: bool, lam: float) -> None:
        history.append(GNStep(it, accepted, lam, f, phi, pt, n_runs))
        if on_step is not None:
            on_step(history[-1])

    while it < cfg.max_iter:
        if n_runs + (0 if jac is not None else k) + len(lams) + k > cfg.max_runs:  # the final Jacobian must fit
            stop = f"run budget ({cfg.max_runs})"
            break
        if jac is None:  # a new point: a new Jacobian (a rejected step keeps the last one)
            jac = jacobian(forward, prior, z, sim, cfg.fd_step)
            n_runs += k
        wj = jac * weights[:, None]
        a = np.eye(k) + wj.T @ wj
        grad = wj.T @ ((d - sim) * weights) - z  # minus the gradient of f
        # Levenberg damping in whitened units: lambda I shortens the steps along the weakly informed directions
        # (where a Gauss-Newton step of a nonlinear model goes wild) and barely those the data pin down
        cands = np.stack([z + np.linalg.solve(a + lam * np.eye(k), grad) for lam in lams])
        csims, cok = forward(prior.lnk(cands))
        n_runs += len(lams)
        fs = np.array([objective(c, s, d, weights)[0] if good else np.inf for c, s, good in zip(cands, csims, cok)])
        best = int(np.argmin(fs))
        if fs[best] >= f:
            rejects += 1
            record(False, float(lams[best]))
            lams = lams * cfg.lambda_inc + (lams == 0) * 1.0
            if rejects >= cfg.max_rejects:
                stop = f"{rejects} iterations without an improving step"
                break
            continue
        f_old, lam = f, float(lams[best])
        z, sim, jac = cands[best], csims[best], None
        f, phi, pt = objective(z, sim, d, weights)
        it, rejects, lams = it + 1, 0, np.asarray(cfg.lambdas, float)
        record(True, lam)
        if f_old - f < cfg.f_tol:
            stop = f"objective fell by less than {cfg.f_tol:g} nats"
            break
    if jac is None:
        jac = jacobian(forward, prior, z, sim, cfg.fd_step)
        n_runs += k
    return _laplace(z, sim, jac, d, weights, n_runs, stop, history)


def extend_modes(forward: Forward, prior: ReducedPrior, d: np.ndarray, weights: np.ndarray, lap: Laplace,
                 fixed: np.ndarray) -> tuple[Laplace, bool]:
    """The Laplace posterior of ``lap`` (k modes) extended to the K = ``fixed.shape[1]`` modes of a Jacobian
    computed once elsewhere (at the prior mean): its leading k columns are the MAP's own, the others ``fixed``'s,
    so the trailing modes get the information the heads carry on them in the linear limit instead of the prior.
    One undamped Gauss-Newton step over all K modes moves the mean too; it is kept only if a MODFLOW run at the
    new point lowers the objective (the second value returned says whether it did). One run."""
    k, big = lap.k, fixed.shape[1]
    if big <= k:
        return lap, False
    jac = np.hstack([lap.jacobian, fixed[:, k:]])
    z = np.concatenate([lap.z_map, np.zeros(big - k)])
    wj = jac * weights[:, None]
    step = np.linalg.solve(np.eye(big) + wj.T @ wj, wj.T @ ((d - lap.sim_map) * weights) - z)
    sims, ok = forward(prior.lnk(z + step)[None])
    moved = bool(ok[0]) and objective(z + step, sims[0], d, weights)[0] < objective(z, lap.sim_map, d, weights)[0]
    z, sim = (z + step, sims[0]) if moved else (z, lap.sim_map)
    return _laplace(z, sim, jac, d, weights, lap.n_runs + 1, lap.stop_reason, lap.history), moved


def linear_gaussian_posterior(jac: np.ndarray, sim0: np.ndarray, z0: np.ndarray, d: np.ndarray,
                              weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (k,) and covariance (k, k) of the exact posterior of G(z) = sim0 + J (z - z0), z ~ N(0, I)."""
    wj = jac * weights[:, None]
    prec = np.eye(jac.shape[1]) + wj.T @ wj
    rhs = wj.T @ ((d - sim0 + jac @ z0) * weights)
    cov = np.linalg.inv(prec)
    return cov @ rhs, cov


def pareto_k(log_w: np.ndarray) -> float:
    """Pareto-k diagnostic of importance log-weights (PSIS, Vehtari et al. 2024; the generalized Pareto fit of
    Zhang & Stephens 2009 to the largest M = min(n / 5, 3 sqrt(n)) weights, with the weakly informative prior of
    the PSIS reference code). k < 0.5 good, 0.5-0.7 usable, > 0.7 the proposal is unreliable; inf when a few
    draws hold all the weight."""
    lw = np.sort(np.asarray(log_w, float))
    n = len(lw)
    m = int(min(n / 5.0, 3.0 * math.sqrt(n)))
    if m < 5:
        return float("nan")
    x = np.exp(lw[-m:] - lw[-1]) - np.exp(lw[-m - 1] - lw[-1])  # exceedances over the threshold, scaled
    n_t = len(x)
    if np.count_nonzero(x > 0) < n_t // 2 + 1 or x[int(n_t / 4 + 0.5) - 1] <= 0:
        return float("inf")  # a few draws hold all the weight: the tail is heavier than any fit can say
    prior_bs, prior_k = 3.0, 10.0
    m_est = 30 + int(math.sqrt(n_t))
    b_ary = 1.0 - np.sqrt(m_est / (np.arange(1, m_est + 1) - 0.5))
    b_ary = b_ary / (prior_bs * x[int(n_t / 4 + 0.5) - 1]) + 1.0 / x[-1]
    k_ary = np.log1p(-b_ary[:, None] * x).mean(axis=1)
    len_scale = n_t * (np.log(-(b_ary / k_ary)) - k_ary - 1.0)
    weights = 1.0 / np.exp(len_scale - len_scale[:, None]).sum(axis=1)
    real = weights >= 10 * np.finfo(float).eps
    weights = weights[real] / weights[real].sum()
    b_post = float(np.sum(b_ary[real] * weights))
    k_post = float(np.log1p(-b_post * x).mean())
    return (n_t * k_post + prior_k * 0.5) / (n_t + prior_k)  # shrunk towards 0.5 (PSIS reference code)


@dataclass(frozen=True)
class DrawCheck:
    """What MODFLOW runs of posterior draws say about an approximation q of one data set."""

    elbo: float  # E_q[ln p(d | z) p(z) - ln q(z)], up to a constant shared by all q of this data set
    pareto_k: float  # of the importance weights p / q (nan with fewer than 25 draws)
    ess: float  # effective sample size of the self-normalized weights
    predictive_mean_rmse: float  # RMS of (mean heads of the draws - observed), observed values only
    phi_median: float
    n_failed: int


def check_draws(z: np.ndarray, sims: np.ndarray, ok: np.ndarray, log_q: np.ndarray, d: np.ndarray,
                weights: np.ndarray) -> DrawCheck:
    """ELBO, Pareto-k and the posterior predictive fit from draws z (n, dim) of q, their heads and ln q(z).

    The ELBO is the mean of ln p(d | z) p(z) - ln q(z) over the same draws, so modes where q is the prior cancel
    draw by draw. Draws whose run failed are left out (counted): they lie where MODFLOW does not converge."""
    fit = predictive_check(sims, ok, d, weights)
    z, sims, log_q = z[ok], sims[ok], np.asarray(log_q)[ok]
    log_w = log_target(z, sims, d, weights) - log_q
    w = np.exp(log_w - log_w.max())
    return DrawCheck(elbo=float(log_w.mean()), pareto_k=pareto_k(log_w), ess=float(w.sum() ** 2 / (w**2).sum()),
                     predictive_mean_rmse=fit.predictive_mean_rmse, phi_median=fit.phi_median, n_failed=fit.n_failed)


def predictive_check(sims: np.ndarray, ok: np.ndarray, d: np.ndarray, weights: np.ndarray) -> DrawCheck:
    """The posterior predictive fit of draws without a density (an ensemble): RMS of (mean heads - observed) and
    the median phi over the draws whose run converged; ELBO, Pareto-k and ESS are NaN."""
    sims = sims[ok]
    resid = (sims.mean(0) - d)[weights > 0]
    return DrawCheck(elbo=math.nan, pareto_k=math.nan, ess=math.nan,
                     predictive_mean_rmse=float(np.sqrt(np.mean(resid**2))),
                     phi_median=float(np.median((((d - sims) * weights) ** 2).sum(1))), n_failed=int((~ok).sum()))
