"""Summary tables of the learning curves: mean and sd over runs at chosen epochs (pure)."""

from __future__ import annotations

import numpy as np


def mean_sd(values: np.ndarray) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single run) over the finite values (diverged runs
    are counted separately); None when no run is finite."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    sd = values.std(ddof=1) if values.size > 1 else 0.0
    return round(float(values.mean()), 6), round(float(sd), 6)


def summarize(curves: dict[str, dict[str, np.ndarray]], table_epochs: list[int]) -> dict[str, dict[str, float]]:
    """Per optimizer label: test accuracy and loss (and train accuracy) at each table epoch that was recorded,
    plus the last epoch; keys like ``test_acc_e4000`` and ``test_acc_e4000_sd`` (over the runs that had not
    diverged); ``diverged`` counts runs whose final test loss is not finite, and when it is not 0,
    ``diverged_e4000`` and the like count the runs diverged by each of those epochs."""
    out: dict[str, dict[str, float]] = {}
    for label, c in curves.items():
        epochs = [int(e) for e in c["epochs"]]
        wanted = sorted({e for e in table_epochs if e in epochs} | {epochs[-1]})
        block: dict[str, float] = {}
        for e in wanted:
            row = epochs.index(e)
            for name in ("test_acc", "test_loss", "train_acc"):
                block[f"{name}_e{e}"], block[f"{name}_e{e}_sd"] = mean_sd(c[name][row])
        block["diverged"] = int((~np.isfinite(c["test_loss"][-1])).sum())
        if block["diverged"]:  # how many runs had diverged by each table epoch (their values are NaN)
            for e in wanted:
                block[f"diverged_e{e}"] = int((~np.isfinite(c["test_loss"][epochs.index(e)])).sum())
        block.update(thermostat_means(c))
        out[label] = block
    return out


def thermostat_means(c: dict[str, np.ndarray]) -> dict[str, float]:
    """Time averages over the second half of training (and over runs) of the kinetic temperatures and of the
    first layer's xi, for the thermodynamic optimizers (the arrays are NaN for the others)."""
    out = {}
    late = np.asarray(c["epochs"]) >= c["epochs"][-1] / 2
    for name in ("kin_first", "kin_rest", "xi_first"):
        values = np.asarray(c.get(name, np.full(1, np.nan)))
        if values.ndim == 2 and np.isfinite(values[late]).any():
            out[f"{name}_late"] = float(f"{np.nanmean(values[late]):.6g}")
    return out
