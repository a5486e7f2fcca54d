"""The paper's losses (Sec. 2.3-2.4) in TensorFlow: KL on 1-D marginals via Gaussian KDEs, MMD, MDMM.

All inputs are standardized features, shape (n, d).
"""

from __future__ import annotations

from . import tfenv  # noqa: F401

from collections.abc import Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

KDE_FLOOR = 1e-12  # keeps log(p / q) finite where a KDE underflows


def silverman_bandwidths(x: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """Per-feature Gaussian KDE bandwidths, Silverman's rule 0.9 min(std, IQR/1.34) n^(-1/5), times ``factor``."""
    std = x.std(axis=0)
    iqr = np.subtract(*np.percentile(x, [75, 25], axis=0))
    spread = np.minimum(std, np.where(iqr > 0, iqr / 1.34, std))
    return (factor * 0.9 * spread * len(x) ** -0.2).astype(np.float32)


def kde_grid(x: np.ndarray, n_grid: int, pad: float = 0.5) -> np.ndarray:
    """(d, n_grid) evaluation grid per feature spanning the 0.05-99.95 % range of x plus ``pad`` std."""
    lo, hi = np.percentile(x, [0.05, 99.95], axis=0)
    span = pad * x.std(axis=0)
    return np.linspace(lo - span, hi + span, n_grid, axis=1).astype(np.float32)


def kde_on_grid(x, grid, bandwidth):
    """Gaussian KDE of each feature of x (n, d) on grid (d, g), normalized to sum 1 over the grid: (d, g)."""
    x = tf.convert_to_tensor(x, tf.float32)
    u = (tf.expand_dims(grid, 0) - tf.expand_dims(x, -1)) / bandwidth[None, :, None]  # (n, d, g)
    dens = tf.reduce_mean(tf.exp(-0.5 * u * u), axis=0)  # (d, g)
    return dens / tf.reduce_sum(dens, axis=-1, keepdims=True)


def kde_on_grid_chunked(x: np.ndarray, grid: np.ndarray, bandwidth: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    """The same KDE for a large sample (the precomputed data KDEs), in chunks to bound memory."""
    total = np.zeros(grid.shape, np.float64)
    for start in range(0, len(x), chunk):
        part = tf.convert_to_tensor(x[start:start + chunk], tf.float32)
        u = (tf.expand_dims(grid, 0) - tf.expand_dims(part, -1)) / bandwidth[None, :, None]
        total += tf.reduce_sum(tf.exp(-0.5 * u * u), axis=0).numpy()
    return (total / total.sum(axis=-1, keepdims=True)).astype(np.float32)


def kde_kl(p_data, x_gen, grid, bandwidth):
    """Sec. 2.3.1: mean over features of KL(P_data || Q_gen) between 1-D KDEs on the grid (eq. 1)."""
    q = kde_on_grid(x_gen, grid, bandwidth)
    p = tf.convert_to_tensor(p_data, tf.float32)
    kl = tf.reduce_sum(p * (tf.math.log(p + KDE_FLOOR) - tf.math.log(q + KDE_FLOOR)), axis=-1)
    return tf.reduce_mean(kl)


def _kernel_mean(a, b, sigma):
    """Mean of exp(-|a_i - b_j|^2 / sigma) over all pairs, the squared distance averaged over the d features.
    ``sigma`` a bandwidth or a sequence of them: the kernel is then the mean of their Gaussian kernels."""
    d2 = (tf.reduce_sum(a * a, -1)[:, None] + tf.reduce_sum(b * b, -1)[None, :]
          - 2.0 * tf.matmul(a, b, transpose_b=True))
    d2 = tf.maximum(d2, 0.0) / tf.cast(tf.shape(a)[-1], a.dtype)
    sigmas = tuple(sigma) if isinstance(sigma, (list, tuple)) else (sigma,)
    return tf.add_n([tf.reduce_mean(tf.exp(-d2 / s)) for s in sigmas]) / len(sigmas)


def mmd(x, y, sigma: float | Sequence[float] = 0.1, form: str = "standard"):
    """Sec. 2.3.2 with the Gaussian kernel k = exp(-|x1 - x2|^2 / sigma) (biased V-statistic); several widths
    ``sigma``: the mean of their kernels.

    form="standard": K_xx + K_yy - 2 K_xy (MMD^2 of Gretton et al.; zero iff the distributions agree).
    form="paper":    K_xx + K_yy - K_xy (the paper's eq. 2 as printed, a single cross term).
    """
    x = tf.convert_to_tensor(x, tf.float32)
    y = tf.convert_to_tensor(y, tf.float32)
    cross = 2.0 if form == "standard" else 1.0
    return _kernel_mean(x, x, sigma) + _kernel_mean(y, y, sigma) - cross * _kernel_mean(x, y, sigma)


def mmd_unbiased(x, y, sigma: float | Sequence[float]):
    """Unbiased MMD^2 with the same kernel (U-statistic of Gretton et al. 2012, eq. 3): the i = j terms of K_xx and
    K_yy (each exactly 1) are left out, so two samples of one distribution give 0 on average at any size."""
    x = tf.convert_to_tensor(x, tf.float32)
    y = tf.convert_to_tensor(y, tf.float32)
    n, m = float(x.shape[0]), float(y.shape[0])
    within = [(n * n * _kernel_mean(a, a, sigma) - k) / (k * (k - 1.0)) for a, k in ((x, n), (y, m))]
    return within[0] + within[1] - 2.0 * _kernel_mean(x, y, sigma)


def kl_per_feature(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(P || Q) of each feature between KDEs on a grid, (d, g) each -> (d,) (the KL loss's eq. 1, in numpy)."""
    return np.sum(p * (np.log(p + KDE_FLOOR) - np.log(q + KDE_FLOOR)), axis=-1)


def mdmm_lagrangian(l1, l2, lam, epsilon: float, damping: float):
    """Eq. 3: L = L1 - lambda (eps - L2) + delta (eps - L2)^2."""
    gap = epsilon - l2
    return l1 - lam * gap + damping * gap * gap


def mdmm_lambda_step(lam: float, l2: float, epsilon: float, lr: float, nonnegative: bool = True) -> float:
    """Gradient ascent on lambda: dL/dlambda = L2 - eps, so lambda grows while the constraint L2 <= eps is
    violated and shrinks once it holds; clipped at 0 for the inequality constraint."""
    new = lam + lr * (l2 - epsilon)
    return max(new, 0.0) if nonnegative else new
