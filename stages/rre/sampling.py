"""Sensors and collocation points (paper section 3).

Sensors: ``locations`` random columns of the xy grid (without replacement) x the given cell layers (5 equally
spaced depths) x every output time, with Gaussian noise of sd ``noise_sd`` (cm) added to psi.
Collocation: ``n`` of the space-time instances, drawn without replacement.
"""

from __future__ import annotations

import numpy as np

from phys_ml.stages.common.errors import UserError


def sensor_rows(shape_txyz: tuple[int, int, int, int], locations: int, layers: list[int],
                rng: np.random.Generator) -> np.ndarray:
    """Row indices (into the t-major long table) of the sensor readings, sorted."""
    nt, nx, ny, nz = shape_txyz
    if locations > nx * ny:
        raise UserError(f"rre sensors: {locations} locations but only {nx * ny} grid columns")
    if any(not 0 <= k < nz for k in layers):
        raise UserError(f"rre sensors: layers must lie in 0..{nz - 1}, got {layers}")
    cols = rng.choice(nx * ny, size=locations, replace=False)
    ix, iy = np.divmod(cols, ny)
    t, c, k = np.meshgrid(np.arange(nt), np.arange(locations), np.asarray(layers), indexing="ij")
    rows = ((t * nx + ix[c]) * ny + iy[c]) * nz + k
    return np.sort(rows.ravel())


def noisy(psi: np.ndarray, noise_sd: float, rng: np.random.Generator) -> np.ndarray:
    return psi + rng.normal(0.0, noise_sd, size=psi.shape)


def collocation_rows(n_rows: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if n > n_rows:
        raise UserError(f"rre collocation: {n} points requested but the domain has {n_rows} instances")
    return np.sort(rng.choice(n_rows, size=n, replace=False))
