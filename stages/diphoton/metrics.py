"""Evaluation metrics (Sec. 3, Table 1): Pearson correlation table, 1-D distances, ROC/AUC. Numpy/scipy only."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata, wasserstein_distance

from .events import COLUMNS, with_mass

# The five pairs correlated in data (Table 1 columns), as indices into COLUMNS (pt1 eta1 phi1 pt2 eta2 phi2 m_gg)
PAIRS = (("pt1", "pt2"), ("eta1", "eta2"), ("phi1", "phi2"), ("m_gg", "pt1"), ("m_gg", "pt2"))
PAIR_LABELS = ("pT1,pT2", "eta1,eta2", "phi1,phi2", "m_gg,pT1", "m_gg,pT2")


def correlation_row(x6: np.ndarray) -> dict[str, float]:
    """Table 1 row: Pearson r of the five pairs and the mean |r| of all other pairs of the 7 columns."""
    c = np.corrcoef(with_mass(x6), rowvar=False)
    idx = {name: i for i, name in enumerate(COLUMNS)}
    row, chosen = {}, set()
    for (a, b), label in zip(PAIRS, PAIR_LABELS):
        row[label] = float(c[idx[a], idx[b]])
        chosen.add(frozenset((idx[a], idx[b])))
    others = [abs(c[i, j]) for i in range(len(COLUMNS)) for j in range(i + 1, len(COLUMNS))
              if frozenset((i, j)) not in chosen]
    row["others"] = float(np.mean(others))
    return row


def correlation_stderr(x6: np.ndarray, n_boot: int = 200, seed: int = 0) -> dict[str, float]:
    """Bootstrap standard error of each entry of the Table 1 row (resampling the events with replacement).

    For a Pearson r it is close to (1 - r^2) / sqrt(n); the difference of two independent samples of the same
    size carries about sqrt(2) times it."""
    rng = np.random.default_rng(seed)
    rows = [correlation_row(x6[rng.integers(0, len(x6), len(x6))]) for _ in range(n_boot)]
    return {k: float(np.std([r[k] for r in rows], ddof=1)) for k in rows[0]}


def wasserstein_per_feature(x6: np.ndarray, ref6: np.ndarray, scale: np.ndarray | None = None) -> dict[str, float]:
    """1-D Wasserstein-1 distance per column (6 features + m_gg), divided by ``scale`` (the data std) if given."""
    a, b = with_mass(x6), with_mass(ref6)
    scale = np.ones(a.shape[1]) if scale is None else scale
    return {name: float(wasserstein_distance(a[:, i], b[:, i]) / scale[i]) for i, name in enumerate(COLUMNS)}


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied ranks averaged)."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray, n_points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) at n_points thresholds spanning the score quantiles."""
    labels = np.asarray(labels).astype(bool)
    thresholds = np.quantile(scores, np.linspace(1.0, 0.0, n_points))
    tpr = np.array([(scores[labels] >= t).mean() for t in thresholds])
    fpr = np.array([(scores[~labels] >= t).mean() for t in thresholds])
    return np.concatenate([[0.0], fpr, [1.0]]), np.concatenate([[0.0], tpr, [1.0]])
