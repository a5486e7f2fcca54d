"""The reference for what a marginal-only loss asks of the flow (issue 24). Pure numpy.

The KL loss (Sec. 2.3.1) compares only the six 1-D marginals, so every transport of the MC that gives the data's
marginals is at its minimum, whatever the correlations. The simplest of them moves each feature alone by its
monotone (quantile) map: x_j -> F_data,j^-1(F_MC,j(x_j)). It keeps the MC's rank correlations exactly, so how far
a KL-trained flow's correlations move beyond this one's comes from how its delta couples the features (delta_j
depending on the other features of x_c) and from its random part, not from the loss.
"""

from __future__ import annotations

import numpy as np


def marginal_transport(x: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Each column of x mapped by the quantile map taking ``source``'s distribution of it to ``target``'s."""
    out = np.empty(x.shape, np.float64)
    for j in range(x.shape[1]):
        src = np.sort(source[:, j])
        level = (np.searchsorted(src, x[:, j], side="left") + np.searchsorted(src, x[:, j], side="right")) / 2.0
        out[:, j] = np.quantile(target[:, j], np.clip(level / len(src), 0.0, 1.0))
    return out


def own_feature_share(x_c: np.ndarray, delta: np.ndarray, bins: int = 50) -> np.ndarray:
    """Per feature j, the share of var(delta_j) that a function of x_c,j alone explains (the mean of delta_j in
    ``bins`` quantile bins of x_c,j): 1 for a per-feature map, lower the more delta_j depends on the other features."""
    share = np.empty(x_c.shape[1])
    for j in range(x_c.shape[1]):
        edges = np.quantile(x_c[:, j], np.linspace(0.0, 1.0, bins + 1)[1:-1])
        which = np.searchsorted(edges, x_c[:, j])
        means = np.bincount(which, delta[:, j], bins) / np.maximum(np.bincount(which, minlength=bins), 1)
        share[j] = np.var(means[which]) / np.var(delta[:, j])
    return share


def noise_share(delta: np.ndarray, delta_noise_free: np.ndarray) -> np.ndarray:
    """Per feature, the share of var(delta) that comes from the base noise: var(delta - delta(z = 0)) / var(delta)."""
    return np.var(delta - delta_noise_free, axis=0) / np.var(delta, axis=0)


def delta_structure(x_c: np.ndarray, delta: np.ndarray, delta_noise_free: np.ndarray) -> dict:
    """Per feature (FEATURES order, flow space): how much of the noise-free delta a function of the feature alone
    explains, and how much of the delta is base noise."""
    from .events import FEATURES

    own, noise = own_feature_share(x_c, delta_noise_free), noise_share(delta, delta_noise_free)
    return {"own_feature_share": dict(zip(FEATURES, own.tolist())), "noise_share": dict(zip(FEATURES, noise.tolist()))}
