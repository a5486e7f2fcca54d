"""Figures of the amortized inference (flow); the map helpers come from `plots.py`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phys_ml.stages.common.figures import new_figure, save_png

from .metrics import covered
from .plots import _show, field_panels, head_band_panels


def field_panels_flow(truth: np.ndarray, samples: np.ndarray, title: str, path: Path) -> Path:
    """True ln K, posterior mean, sd and 95 % coverage map of the flow's samples (same panels as the smoother's)."""
    return field_panels(truth, samples.mean(0), samples.std(0, ddof=1), covered(samples, truth), title, path)


def head_bands_compare(flow_sim, ies_sim, clean, observed, title: str, path: Path) -> Path:
    """95 % posterior-predictive bands of the flow (blue) and, when given, the smoother (orange) at the wells."""
    bands = {"flow": (flow_sim, "tab:blue")}
    if ies_sim is not None:
        bands["smoother"] = (ies_sim, "tab:orange")
    return head_band_panels(bands, clean, observed, title, path)


def training_curve(history: dict[str, list], path: Path) -> Path:
    fig, axes = new_figure(1, 1, size=(5, 3.4))
    ax = axes[0, 0]
    ax.plot(history["epoch"], history["train_loss"], label="training (fresh noise, truncation)")
    ax.plot(history["epoch"], history["val_loss"], label="validation")
    best = int(np.argmin(history["val_loss"]))
    ax.axvline(history["epoch"][best], color="black", lw=0.8, ls=":", label="best (kept)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative log-likelihood of whitened ln K")
    ax.legend(fontsize=7)
    return save_png(fig, path)


def calibration(levels: np.ndarray, curves: np.ndarray, path: Path) -> Path:
    """Empirical vs nominal coverage over the test split: the mean curve and the 10-90 % range of data sets."""
    fig, axes = new_figure(1, 1, size=(4.2, 4))
    ax = axes[0, 0]
    lo, hi = np.percentile(curves, [10, 90], axis=0)
    ax.fill_between(levels, lo, hi, color="tab:blue", alpha=0.25, label="10-90 % of test data sets")
    ax.plot(levels, curves.mean(0), "o-", color="tab:blue", label="mean over test data sets")
    ax.plot([0, 1], [0, 1], color="black", lw=0.8, ls="--", label="nominal")
    ax.set_xlabel("credible level")
    ax.set_ylabel("share of parameters inside")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return save_png(fig, path)


def r2_map(r2: np.ndarray, path: Path) -> Path:
    """Per-parameter R^2 of the posterior mean over the test split (paper Fig. 8): map and histogram."""
    fig, axes = new_figure(1, 2, size=(8, 5))
    fig.colorbar(_show(axes[0, 0], np.clip(r2, -0.5, 1), "R^2 of posterior mean", cmap="viridis", vmin=-0.5,
                       vmax=1), ax=axes[0, 0], shrink=0.7)
    ax = axes[0, 1]
    ax.hist(r2, bins=np.linspace(min(-0.5, r2.min()), 1, 31), color="tab:blue")
    ax.axvline(0.8, color="black", ls=":", lw=0.8)
    ax.set_xlabel("R^2")
    ax.set_ylabel("parameters")
    ax.set_title(f"{np.mean(r2 > 0.8):.0%} of parameters above 0.8")
    return save_png(fig, path)


def errors_vs_steps(errors: dict[int, np.ndarray], path: Path) -> Path:
    """Relative L2 error of ln K with fewer observed steps, one trained model (paper Fig. 14)."""
    steps = sorted(errors)
    fig, axes = new_figure(1, 1, size=(4.5, 3.4))
    ax = axes[0, 0]
    ax.boxplot([errors[s] for s in steps], positions=steps, widths=0.6, showfliers=False)
    ax.plot(steps, [errors[s].mean() for s in steps], "o-", color="tab:blue", label="mean over test data sets")
    ax.set_xlabel("observed time steps")
    ax.set_ylabel("relative L2 error of ln K")
    ax.legend(fontsize=7)
    return save_png(fig, path)
