"""The two-spiral binary classification data (specification: shared/design/thermodynamic-optimizers.md).

t ~ U[0, 1), x = (2 sqrt(t) cos(2 pi turns sqrt(t)), 2 sqrt(t) sin(2 pi turns sqrt(t))); class 0 is x and class 1
is -x (the same t, the spiral rotated by pi); each coordinate gets N(0, noise^2). With turns = 4 the angle is
8 pi sqrt(t), as in the authors' code.
"""

from __future__ import annotations

import numpy as np

from phys_ml.stages.common.errors import UserError


def two_spirals(n: int, noise: float, rng: np.random.Generator, turns: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points (n/2 per class): features (n, 2) float32 and labels (n,) float32 in {0, 1}."""
    if n < 2 or n % 2:
        raise UserError(f"the number of spiral points must be even and >= 2, got {n}")
    if noise < 0:
        raise UserError(f"spiral noise must be >= 0, got {noise}")
    half = n // 2
    s = np.sqrt(rng.random(half))
    angle = 2 * np.pi * turns * s
    arm = np.stack([2 * s * np.cos(angle), 2 * s * np.sin(angle)], axis=1)
    x = np.concatenate([arm, -arm]) + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(half), np.ones(half)])
    return x.astype(np.float32), y.astype(np.float32)
