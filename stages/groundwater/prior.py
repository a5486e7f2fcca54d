"""Gaussian-process prior on y = ln K over the active cells (paper Sec. 3.1: exponential covariance).

C_ij = variance * exp(-|x_i - x_j| / length) between cell centres; exact sampling y = mean + L z with the
Cholesky factor L of C (706 x 706, cheap), z ~ N(0, I).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist


def exponential_covariance(points: np.ndarray, variance: float, length: float) -> np.ndarray:
    """(n, n) covariance variance * exp(-r / length) between the rows of ``points`` (n, 2)."""
    if variance <= 0 or length <= 0:
        raise ValueError(f"variance and length must be positive, got {variance}, {length}")
    return variance * np.exp(-cdist(points, points) / length)


def kl_decomposition(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending, floored at 1e-12) and eigenvectors of ``cov`` (Karhunen-Loeve order), each
    eigenvector with a fixed sign (largest entry positive) so the basis does not depend on LAPACK's choice."""
    lam, phi = np.linalg.eigh(np.asarray(cov, np.float64))
    order = np.argsort(lam)[::-1]
    lam, phi = np.clip(lam[order], 1e-12, None), phi[:, order]
    return lam, phi * np.sign(phi[np.abs(phi).argmax(0), np.arange(phi.shape[1])])


@dataclass(frozen=True)
class GaussianPrior:
    """N(mean, cov) on the parameter vector, with its Cholesky factor for exact sampling and whitening."""

    mean: np.ndarray  # (n,)
    cov: np.ndarray  # (n, n)
    chol: np.ndarray  # (n, n) lower triangular, cov = chol @ chol.T

    @classmethod
    def exponential(cls, points: np.ndarray, mean: float, variance: float, length: float) -> GaussianPrior:
        cov = exponential_covariance(points, variance, length)
        # The exponential kernel is strictly positive definite; a tiny jitter guards round-off only.
        chol = np.linalg.cholesky(cov + 1e-10 * variance * np.eye(len(cov)))
        return cls(np.full(len(points), float(mean)), cov, chol)

    @property
    def dim(self) -> int:
        return len(self.mean)

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, dim) exact draws."""
        z = rng.standard_normal((n, self.dim))
        return self.mean + z @ self.chol.T
