"""Figures of the groundwater task: each function takes data and returns a matplotlib figure (the pipeline
saves it with `figures.save_png`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from phys_ml.stages.common.figures import new_figure

from . import freyberg
from .metrics import covered

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _grid(values: np.ndarray) -> np.ndarray:
    """706 active-cell values -> (40, 20) grid with NaN at inactive cells."""
    grid = np.full(freyberg.NROW * freyberg.NCOL, np.nan)
    grid[freyberg.active_index()] = values
    return grid.reshape(freyberg.NROW, freyberg.NCOL)


def _show(ax, values, title, cmap="viridis", vmin=None, vmax=None, marks=True):
    extent = (0, freyberg.NCOL * freyberg.DELR / 1000, 0, freyberg.NROW * freyberg.DELR / 1000)
    im = ax.imshow(_grid(values), cmap=cmap, vmin=vmin, vmax=vmax, extent=extent, interpolation="nearest")
    if marks:
        for r, c in freyberg.OBS_CELLS:
            ax.plot((c - 0.5) * 0.25, 10 - (r - 0.5) * 0.25, "o", ms=3, mfc="none", mec="red")
        for r, c in freyberg.WELLS:
            ax.plot((c - 0.5) * 0.25, 10 - (r - 0.5) * 0.25, "x", ms=3, color="black")
    ax.set_title(title)
    ax.set_xlabel("x (km)")
    ax.grid(False)
    return im


def field_panels(truth, mean, sd, inside, title: str) -> Figure:
    """True ln K, posterior mean, posterior sd, 95 % coverage map (yellow inside, red outside)."""
    from matplotlib.colors import ListedColormap

    fig, axes = new_figure(1, 4, size=(12, 5.2))
    vmin, vmax = np.percentile(np.concatenate([truth, mean]), [1, 99])
    fig.colorbar(_show(axes[0, 0], truth, "true ln K", vmin=vmin, vmax=vmax), ax=axes[0, 0], shrink=0.7)
    fig.colorbar(_show(axes[0, 1], mean, "posterior mean", vmin=vmin, vmax=vmax), ax=axes[0, 1], shrink=0.7)
    fig.colorbar(_show(axes[0, 2], sd, "posterior sd", cmap="magma"), ax=axes[0, 2], shrink=0.7)
    _show(axes[0, 3], inside.astype(float), f"in 95 % interval: {inside.mean():.0%}",
          cmap=ListedColormap(["tab:red", "gold"]), vmin=0, vmax=1, marks=False)
    axes[0, 0].set_ylabel("y (km)")
    fig.suptitle(title)
    return fig


def head_bands(sim, clean, observed, title: str) -> Figure:
    """Posterior predictive 95 % band and median of heads at the 13 wells, with truth and noisy data."""
    return head_band_panels({"posterior": (sim, "tab:blue")}, clean, observed, title)


def head_band_panels(bands: dict[str, tuple[np.ndarray, str]], clean, observed, title: str) -> Figure:
    """One panel per well: for each ``label -> (simulated heads (N, 325), colour)`` its 95 % band and median,
    with the true heads and the noisy observations."""
    n_w, n_t = len(freyberg.OBS_CELLS), freyberg.N_PERIODS
    clean, observed = clean.reshape(n_w, n_t), observed.reshape(n_w, n_t)
    t = np.cumsum(freyberg.PERIOD_DAYS)
    stats = {label: (np.percentile(sim.reshape(len(sim), n_w, n_t), [2.5, 50, 97.5], axis=0), color)
             for label, (sim, color) in bands.items()}
    fig, axes = new_figure(4, 4, size=(13, 10))
    for w in range(16):
        ax = axes.flat[w]
        if w >= n_w:
            ax.axis("off")
            continue
        for label, ((lo, med, hi), color) in stats.items():
            ax.fill_between(t, lo[w], hi[w], color=color, alpha=0.3, label=f"{label} 95 % band")
            ax.plot(t, med[w], color=color, lw=1, label=f"{label} median")
        ax.plot(t, clean[w], color="black", lw=1, ls="--", label="true")
        ax.plot(t, observed[w], ".", color="tab:red", ms=3, label="observed")
        r, c = freyberg.OBS_CELLS[w]
        ax.set_title(f"well {w + 1} (row {r}, col {c})", fontsize=8)
        if w % 4 == 0:
            ax.set_ylabel("head (m)")
        if w >= 12:
            ax.set_xlabel("time (d)")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(title)
    return fig


def ies_history(histories: dict[str, list[dict]]) -> Figure:
    """Per-iteration records of every smoother run ("<setting> <ref>" -> history), as pestpp-ies reports them.

    Panels: phi mean with its +-1 sd band and min-max marks (accepted iterations, against the perturbed data),
    the ensemble's mean sd of ln K, and the share of parameters whose sd fell below 5 % of the prior's.
    """
    fig, axes = new_figure(1, 3, size=(14, 3.8))
    ax_phi, ax_sd, ax_col = axes.flat
    colors = {}
    for key, hist in histories.items():
        setting, _, ref = key.partition(" ")
        color = colors.setdefault(setting, f"C{len(colors)}")
        ls = "-" if ref.endswith("1") else "--"
        acc = [h for h in hist if h["accepted"]]
        it = np.array([h["iteration"] for h in acc])
        mean = np.array([h["mean_phi"] for h in acc])
        sd = np.array([h.get("sd_phi", np.nan) for h in acc])
        ax_phi.plot(it, mean, ls, marker="o", ms=3, color=color, label=key)
        ax_phi.fill_between(it, np.maximum(mean - sd, [h["min_phi"] for h in acc]), mean + sd, color=color,
                            alpha=0.12)
        ax_phi.plot(it, [h["min_phi"] for h in acc], "v", ms=2.5, color=color)
        ax_phi.plot(it, [h["max_phi"] for h in acc], "^", ms=2.5, color=color)
        ax_sd.plot(it, [h.get("lnk_sd_mean", np.nan) for h in acc], ls, marker="o", ms=3, color=color, label=key)
        ax_col.plot(it, [100 * h.get("lnk_sd_collapsed", np.nan) for h in acc], ls, marker="o", ms=3, color=color,
                    label=key)
    ax_phi.axhline(freyberg.N_PERIODS * len(freyberg.OBS_CELLS), color="black", lw=0.8, ls=":",
                   label="n_obs (noise level)")
    ax_phi.set_yscale("log")
    ax_phi.set_ylabel("phi (mean, +-1 sd, min / max)")
    ax_sd.set_ylabel("mean ensemble sd of ln K")
    ax_col.set_ylabel("% of parameters with sd < 5 % of the prior's")
    for ax in axes.flat:
        ax.set_xlabel("iteration")
    ax_phi.legend(fontsize=6)
    fig.suptitle("iterative ensemble smoother: per-iteration records")
    return fig


def field_panels_flow(truth: np.ndarray, samples: np.ndarray, title: str) -> Figure:
    """True ln K, posterior mean, sd and 95 % coverage map of the flow's samples (same panels as the smoother's)."""
    return field_panels(truth, samples.mean(0), samples.std(0, ddof=1), covered(samples, truth), title)


def head_bands_compare(flow_sim, ies_sim, clean, observed, title: str) -> Figure:
    """95 % posterior-predictive bands of the flow (blue) and, when given, the smoother (orange) at the wells."""
    bands = {"flow": (flow_sim, "tab:blue")}
    if ies_sim is not None:
        bands["smoother"] = (ies_sim, "tab:orange")
    return head_band_panels(bands, clean, observed, title)


def training_curve(history: dict[str, list]) -> Figure:
    fig, axes = new_figure(1, 1, size=(5, 3.4))
    ax = axes[0, 0]
    ax.plot(history["epoch"], history["train_loss"], label="training (fresh noise, truncation)")
    ax.plot(history["epoch"], history["val_loss"], label="validation")
    best = int(np.argmin(history["val_loss"]))
    ax.axvline(history["epoch"][best], color="black", lw=0.8, ls=":", label="best (kept)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative log-likelihood of whitened ln K")
    ax.legend(fontsize=7)
    return fig


def calibration(levels: np.ndarray, curves: np.ndarray) -> Figure:
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
    return fig


def r2_map(r2: np.ndarray) -> Figure:
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
    return fig


def errors_vs_steps(errors: dict[int, np.ndarray]) -> Figure:
    """Relative L2 error of ln K with fewer observed steps, one trained model (paper Fig. 14)."""
    steps = sorted(errors)
    fig, axes = new_figure(1, 1, size=(4.5, 3.4))
    ax = axes[0, 0]
    ax.boxplot([errors[s] for s in steps], positions=steps, widths=0.6, showfliers=False)
    ax.plot(steps, [errors[s].mean() for s in steps], "o-", color="tab:blue", label="mean over test data sets")
    ax.set_xlabel("observed time steps")
    ax.set_ylabel("relative L2 error of ln K")
    ax.legend(fontsize=7)
    return fig
