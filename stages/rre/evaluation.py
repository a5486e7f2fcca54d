"""Metrics of paper eq. 13 and the sensor-interpolation baseline."""

from __future__ import annotations

import numpy as np
import torch

from .model import PsiNet


def relative_l2(pred: np.ndarray, true: np.ndarray) -> float:
    """||pred - true||_2 / ||true||_2 over the whole space-time domain (paper eq. 13)."""
    return float(np.linalg.norm(pred - true) / np.linalg.norm(true))


def predict(net: PsiNet, coords: np.ndarray, chunk: int = 40_000) -> np.ndarray:
    """psi_hat at (N, 4) physical coordinates, float64 out."""
    out = []
    with torch.no_grad():
        for i in range(0, coords.shape[0], chunk):
            x = torch.as_tensor(coords[i : i + chunk], dtype=torch.float32)
            out.append(net(x).double().numpy())
    return np.concatenate(out)


def sensor_interpolation(coords: np.ndarray, sensors: np.ndarray, psi_obs: np.ndarray) -> np.ndarray:
    """Baseline: at each point take the nearest sensor column (in x, y) and interpolate its readings linearly
    in depth at the same time (constant beyond the shallowest and deepest sensor). For a horizontally uniform
    field this is plain depth interpolation."""
    cols, col_of = np.unique(sensors[:, :2], axis=0, return_inverse=True)
    d2 = ((coords[:, None, :2] - cols[None, :, :]) ** 2).sum(-1)
    nearest = np.argmin(d2, axis=1)
    out = np.empty(coords.shape[0])
    for c in range(cols.shape[0]):
        here = col_of.ravel() == c
        for t in np.unique(sensors[here, 3]):
            sel = here & (sensors[:, 3] == t)
            order = np.argsort(sensors[sel, 2])
            z, p = sensors[sel, 2][order], psi_obs[sel][order]
            target = (nearest == c) & (coords[:, 3] == t)
            out[target] = np.interp(coords[target, 2], z, p)
    return out
