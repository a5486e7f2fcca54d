"""Inversion metrics of paper Sec. 3.5.2 (Table 1), shared by the ensemble smoother and the flow.

All take the true parameters y (n,) and posterior samples (S, n) or posterior mean / sd (n,).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm


def average_relative_error(mean: np.ndarray, truth: np.ndarray) -> float:
    """mean_i |mu_i - y_i| / |y_i| (paper's "average relative error"; large where y_i is near 0)."""
    mean, truth = np.asarray(mean, float), np.asarray(truth, float)
    return float(np.mean(np.abs(mean - truth) / np.abs(truth)))


def relative_error(mean: np.ndarray, truth: np.ndarray) -> float:
    """||mu - y||_2 / ||y||_2 (paper's "relative error")."""
    mean, truth = np.asarray(mean, float), np.asarray(truth, float)
    return float(np.linalg.norm(mean - truth) / np.linalg.norm(truth))


def log_predictive_probability(mean: np.ndarray, sd: np.ndarray, truth: np.ndarray) -> float:
    """LPP = -1/2 sum_i [(y_i - mu_i)^2 / s_i^2 + ln s_i^2 + ln 2 pi], a Gaussian fitted per parameter."""
    mean, sd, truth = (np.asarray(a, float) for a in (mean, sd, truth))
    var = sd**2
    return float(-0.5 * np.sum((truth - mean) ** 2 / var + np.log(var) + np.log(2 * np.pi)))


def covered(samples: np.ndarray, truth: np.ndarray, level: float = 0.95, gaussian: bool = False) -> np.ndarray:
    """(n,) bool: truth inside the central ``level`` credible interval (sample quantiles, or mean +- z sd)."""
    samples, truth = np.asarray(samples, float), np.asarray(truth, float)
    alpha = (1.0 - level) / 2
    if gaussian:
        z = norm.ppf(1 - alpha)
        mu, sd = samples.mean(0), samples.std(0, ddof=1)
        lo, hi = mu - z * sd, mu + z * sd
    else:
        lo, hi = np.quantile(samples, [alpha, 1 - alpha], axis=0)
    return (truth >= lo) & (truth <= hi)


def coverage(samples: np.ndarray, truth: np.ndarray, level: float = 0.95, gaussian: bool = False) -> float:
    """Share of parameters whose true value lies in the central credible interval."""
    return float(covered(samples, truth, level, gaussian).mean())


def r2_per_parameter(means: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """(n,) coefficient of determination of posterior mean vs truth over many test sets (paper Fig. 8).

    means, truths: (n_sets, n). R^2_i = 1 - sum_k (y_ki - mu_ki)^2 / sum_k (y_ki - mean_k y_ki)^2.
    """
    means, truths = np.asarray(means, float), np.asarray(truths, float)
    ss_res = np.sum((truths - means) ** 2, axis=0)
    ss_tot = np.sum((truths - truths.mean(0)) ** 2, axis=0)
    return 1.0 - ss_res / ss_tot


def summarize(samples: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Table-1 metrics plus coverage from posterior samples (S, n) of one data set."""
    samples = np.asarray(samples, float)
    mean, sd = samples.mean(0), samples.std(0, ddof=1)
    return {
        "average_relative_error": average_relative_error(mean, truth),
        "relative_error": relative_error(mean, truth),
        "lpp": log_predictive_probability(mean, sd, truth),
        "coverage95": coverage(samples, truth),
    }


def coverage_curve(samples: np.ndarray, truth: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """(len(levels),) share of parameters inside the central credible interval at each level (calibration)."""
    samples, truth = np.asarray(samples, float), np.asarray(truth, float)
    levels = np.asarray(levels, float)
    q = np.quantile(samples, np.concatenate([(1 - levels) / 2, (1 + levels) / 2]), axis=0)
    lo, hi = q[: len(levels)], q[len(levels):]
    return ((truth >= lo) & (truth <= hi)).mean(axis=1)
