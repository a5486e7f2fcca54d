"""Figures of the groundwater task (saved through phys_ml.stages.common.figures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phys_ml.stages.common.figures import new_figure, save_png

from . import freyberg


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


def field_panels(truth, mean, sd, inside, title: str, path: Path) -> Path:
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
    return save_png(fig, path)


def head_bands(sim, clean, observed, title: str, path: Path) -> Path:
    """Posterior predictive 95 % band and median of heads at the 13 wells, with truth and noisy data."""
    return head_band_panels({"posterior": (sim, "tab:blue")}, clean, observed, title, path)


def head_band_panels(bands: dict[str, tuple[np.ndarray, str]], clean, observed, title: str, path: Path) -> Path:
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
    return save_png(fig, path)


def phi_history(histories: dict[str, list[dict]], path: Path) -> Path:
    """Mean phi (against the perturbed and the real data) per smoother iteration, with the min-max range."""
    fig, axes = new_figure(1, len(histories), size=(4.5 * len(histories), 3.4))
    for ax, (name, hist) in zip(axes.flat, histories.items()):
        acc = [h for h in hist if h["accepted"]]
        it = [h["iteration"] for h in acc]
        ax.fill_between(it, [h["min_phi"] for h in acc], [h["max_phi"] for h in acc], color="0.85",
                        label="min-max")
        ax.plot(it, [h["mean_phi"] for h in acc], "o-", label="mean phi (perturbed data)")
        ax.plot(it, [h["mean_phi_actual"] for h in acc], "s--", label="mean phi (observed data)")
        rej = [h for h in hist if not h["accepted"]]
        if rej:
            ax.plot([h["iteration"] for h in rej], [h["mean_phi"] for h in rej], "x", color="tab:red",
                    label="rejected upgrade")
        ax.axhline(freyberg.N_PERIODS * len(freyberg.OBS_CELLS), color="black", lw=0.8, ls=":",
                   label="n_obs (noise level)")
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("phi")
        ax.set_title(name)
        ax.legend(fontsize=6)
    return save_png(fig, path)


def ies_history(histories: dict[str, list[dict]], path: Path) -> Path:
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
    return save_png(fig, path)
