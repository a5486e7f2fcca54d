"""Out-of-distribution check of observed heads against the heads the flow was trained on (`infer`).

A value is flagged when it lies outside the training range of its well and step widened by ``MARGIN_SD``
training standard deviations on each side: the flow has never seen such heads, so its posterior there is an
extrapolation. Models saved before the range was recorded use the training mean +- ``FALLBACK_SD`` sd.
"""

from __future__ import annotations

import numpy as np

from .observations import WELL_NAMES

MARGIN_SD = 1.0
FALLBACK_SD = 6.0


def outside_training_range(heads: np.ndarray, mask: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                           sd: np.ndarray) -> np.ndarray:
    """(wells, steps) bool: observed values outside [lo - MARGIN_SD sd, hi + MARGIN_SD sd]."""
    with np.errstate(invalid="ignore"):
        return mask & ((heads < lo - MARGIN_SD * sd) | (heads > hi + MARGIN_SD * sd))


def training_range(meta: dict, heads_mean: np.ndarray, heads_sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) of the training heads from a model's metadata, or mean +- FALLBACK_SD sd without it."""
    if "heads_min" in meta and "heads_max" in meta:
        return np.asarray(meta["heads_min"], float), np.asarray(meta["heads_max"], float)
    return heads_mean - FALLBACK_SD * heads_sd, heads_mean + FALLBACK_SD * heads_sd


def describe(flags: np.ndarray) -> list[str]:
    """["h03 steps 1-25", "h07 step 4", ...]: the flagged wells and their steps (1-based, runs joined)."""
    out = []
    for w, row in enumerate(flags):
        steps = np.flatnonzero(row) + 1
        if steps.size == 0:
            continue
        runs, start = [], steps[0]
        for a, b in zip(steps, list(steps[1:]) + [None]):
            if b is None or b != a + 1:
                runs.append(f"{start}" if start == a else f"{start}-{a}")
                start = b
        out.append(f"{WELL_NAMES[w]} step{'s' if steps.size > 1 else ''} {', '.join(runs)}")
    return out
