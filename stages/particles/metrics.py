"""Error measures used in the paper's tables (numpy, no I/O)."""

from __future__ import annotations

import numpy as np


def rmse(pred: np.ndarray, target: np.ndarray) -> float:
    """Root of the mean squared error over every coordinate (the paper's RMSE = sqrt(torch MSELoss))."""
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(target)) ** 2)))


def r2(pred: np.ndarray, target: np.ndarray) -> float:
    """Coefficient of determination over (samples, outputs): 1 - SS_res / SS_tot, each output centred on its mean.

    Equals sklearn's ``r2_score(..., multioutput="variance_weighted")`` on the flattened outputs.
    """
    y = np.asarray(target).reshape(len(target), -1)
    p = np.asarray(pred).reshape(len(pred), -1)
    ss_res = np.sum((y - p) ** 2)
    ss_tot = np.sum((y - y.mean(0)) ** 2)
    return float(1.0 - ss_res / ss_tot)


def masked_mse(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared error over the valid steps of padded sequences (pred, target (n, T, 2); mask (n, T))."""
    err = ((np.asarray(pred) - np.asarray(target)) ** 2).mean(-1)
    m = np.asarray(mask, dtype=bool)
    return float(err[m].mean())


def per_row_masked_mse(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean squared error of each sequence over its valid steps, shape (n,)."""
    err = ((np.asarray(pred) - np.asarray(target)) ** 2).mean(-1)
    m = np.asarray(mask, dtype=np.float64)
    return (err * m).sum(1) / np.maximum(m.sum(1), 1.0)
