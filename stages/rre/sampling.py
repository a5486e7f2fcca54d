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


def boundary_points(n: int, lengths: tuple[float, float, float], t_end: float, top_flux: np.ndarray,
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` points on the faces of the box at uniform times in (0, t_end]: half on the top face (depth 0, with
    the prescribed outward flux of the top cell they lie in, ``top_flux`` (nx, ny) cm/s), a fifth on the bottom
    face and the rest on the four sides (zero flux). Returns columns x, y, z, t, axis (0 x, 1 y, 2 depth), flux."""
    lx, ly, lz = lengths
    n_top, n_bottom = n // 2, n // 5
    n_side = n - n_top - n_bottom
    xyz = rng.uniform(0.0, 1.0, size=(n, 3)) * np.array([lx, ly, lz])
    axis = np.empty(n, dtype=np.int64)
    xyz[:n_top, 2], axis[:n_top] = 0.0, 2
    xyz[n_top : n_top + n_bottom, 2], axis[n_top : n_top + n_bottom] = lz, 2
    side = np.arange(n_top + n_bottom, n)
    face = rng.integers(0, 4, size=n_side)  # x = 0, x = lx, y = 0, y = ly
    xyz[side[face < 2], 0] = np.where(face[face < 2] == 0, 0.0, lx)
    xyz[side[face >= 2], 1] = np.where(face[face >= 2] == 2, 0.0, ly)
    axis[side] = np.where(face < 2, 0, 1)
    nx, ny = top_flux.shape
    ix = np.minimum((xyz[:n_top, 0] / lx * nx).astype(int), nx - 1)
    iy = np.minimum((xyz[:n_top, 1] / ly * ny).astype(int), ny - 1)
    flux = np.zeros(n)
    flux[:n_top] = top_flux[ix, iy]
    t = rng.uniform(0.0, 1.0, size=n) * t_end
    return {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "t": t, "axis": axis, "flux": flux}
