"""The rre figures: each function takes data and returns a matplotlib figure (the pipeline saves it)."""

from __future__ import annotations

import numpy as np

from phys_ml.stages.common.figures import new_figure

from .config import TrainCfg
from .soil import conductivity, theta

STYLE = {"pdl": ("P-DL (w by protocol)", "o-"), "data": ("data-only (w = 0)", "s--"),
         "interpolation": ("sensor interpolation", "^:")}


def run_label(r: dict) -> str:
    """'adam-full', or 'adam-full-w0.25' for a run with its own residual weight."""
    name = f"{r['optimizer']}-{r['batch']}" + ("" if r["network"] == "paper" else "-study")
    return f"{name}-w{r['residual_weight']:g}" if r["override"] else name


def loss_figure(case: str, runs: list[dict], history: list[dict]):
    """Training loss of the Table 1 runs, mini-batch and full batch (paper Fig. 2a, b)."""
    fig, ax = new_figure(1, 2, size=(9, 3.4))
    for j, mode in enumerate(("mini", "full")):
        for r in (r for r in runs if r["batch"] == mode):
            h = [x for x in history if x["run"] == r["run"]]
            label = r["optimizer"] if not r["override"] else f"{r['optimizer']} w={r['residual_weight']:g}"
            ax[0, j].semilogy([x["iteration"] for x in h], [x["loss"] for x in h],
                              label=label + (" (diverged)" if r["diverged"] else ""))
        ax[0, j].set(title=f"{case}: {mode} batch (cf. paper Fig. 2{'ab'[j]})", xlabel="iteration", ylabel="loss L")
        ax[0, j].legend()
    return fig


def wrc_hcf_figure(psi: np.ndarray, th: np.ndarray, soil, preds: dict[str, np.ndarray]):
    """Recovered WRC and HCF (paper Fig. 2c, d): the networks' psi mapped through van Genuchten."""
    fig, ax = new_figure(1, 2, size=(9, 3.4))
    grid = -np.logspace(0, np.log10(max(2.0, -psi.min() * 1.5)), 200)
    ax[0, 0].plot(-grid, theta(grid, soil), "k-", lw=2, alpha=0.3, label="van Genuchten")
    ax[0, 1].loglog(-grid, conductivity(grid, soil), "k-", lw=2, alpha=0.3, label="van Genuchten")
    ax[0, 0].plot(-psi[::97], th[::97], "k.", ms=2, label="truth")
    for name, p in preds.items():
        pp = np.minimum(p[::97], -1e-3)
        ax[0, 0].plot(-pp, theta(pp, soil), ".", ms=2, label=name)
        ax[0, 1].loglog(-pp, conductivity(pp, soil), ".", ms=2, label=name)
    ax[0, 0].set(xscale="log", xlabel="-psi (cm)", ylabel="theta", title="water retention curve")
    ax[0, 1].set(xlabel="-psi (cm)", ylabel="K (cm/s)", title="hydraulic conductivity")
    ax[0, 0].legend(markerscale=4, fontsize=7)
    return fig


def theta_map_figure(th: np.ndarray, preds: dict[str, np.ndarray], soil, g: dict, map_time: int):
    """theta at output time ``map_time`` (paper Fig. 3): truth, the adam full-batch prediction, |error|."""
    nt = th.size // (g["nx"] * g["ny"] * g["nz"])
    k = min(map_time, nt) - 1
    shape = (nt, g["nx"], g["ny"], g["nz"])
    name = "adam-full" if "adam-full" in preds else next(iter(preds), None)
    truth = th.reshape(shape)[k]
    pred = theta(preds[name], soil).reshape(shape)[k] if name else np.full_like(truth, np.nan)
    fig, ax = new_figure(2, 3, size=(11, 6))
    for row, (cut, label, extent) in enumerate((
        (lambda a: a[:, :, 0].T, "top layer (x, y)", [0, g["lx"], 0, g["ly"]]),
        (lambda a: a[:, g["ny"] // 2, :].T, "x-depth section at mid y", [0, g["lx"], g["lz"], 0]),
    )):
        lo, hi = truth.min(), truth.max()
        for col, (data, title) in enumerate(((truth, "truth"), (pred, name), (np.abs(pred - truth), "|error|"))):
            im = ax[row, col].imshow(cut(data), origin="lower" if row == 0 else "upper", extent=extent,
                                     aspect="auto", vmin=None if col == 2 else lo, vmax=None if col == 2 else hi)
            ax[row, col].set(title=f"theta {title}, {label}", xlabel="x (cm)", ylabel="y (cm)" if row == 0 else "depth (cm)")
            ax[row, col].grid(False)
            fig.colorbar(im, ax=ax[row, col])
    return fig


def study_sensors_figure(results: list[dict], cfg: TrainCfg):
    """re_psi against the number of sensor probes: the sparse settings (first initialization) and Table 1's full
    set (the paper's network, Adam full batch)."""
    cases = list(dict.fromkeys(r["case"] for r in results))
    fig, ax = new_figure(1, len(cases), size=(4.6 * len(cases), 3.4))
    names = [f"sparse-{s.locations}x{s.layers}" for s in cfg.studies.sparse]
    for j, case in enumerate(cases):
        rows = [r for r in results if r["case"] == case]
        paper = [r for r in rows if r["setting"] == "table1" and r["kind"] == "run" and r["network"] == "paper"]
        full = {"pdl": [r for r in paper if not r["override"] and (r["optimizer"], r["batch"]) == ("adam", "full")],
                "data": [r for r in paper if r["override"]
                         and (r["optimizer"], r["batch"], r["residual_weight"]) == ("adam", "full", 0.0)],
                "interpolation": [r for r in rows if r["setting"] == "table1" and r["kind"] == "interpolation"]}
        for kind, (label, fmt) in STYLE.items():
            pts = [(r["probes"], r["re_psi"]) for r in rows if r["setting"] in names and r["kind"] == kind
                   and r.get("init", 0) == 0]
            pts += [(r["probes"], r["re_psi"]) for r in full[kind]]
            pts = sorted(p for p in pts if p[1] is not None)
            if pts:
                ax[0, j].semilogy(*zip(*pts), fmt, label=label)
        ax[0, j].set(title=f"{case}: error vs sensors", xlabel="sensor probes (locations x layers)", ylabel="re_psi")
        ax[0, j].legend(fontsize=7)
    return fig


def study_forecast_figure(studies: dict):
    """re_psi at each time after the forecast's last training reading."""
    cases = list(studies)
    fig, ax = new_figure(1, len(cases), size=(4.6 * len(cases), 3.4))
    for j, case in enumerate(cases):
        h = studies[case]["horizon"]
        for kind, (label, fmt) in STYLE.items():
            if kind in h:
                ax[0, j].semilogy(np.asarray(h["t"]) - h["t_split"], h[kind], fmt, ms=3, label=label)
        ax[0, j].set(title=f"{case}: forecast", xlabel="time after the last training reading (s)", ylabel="re_psi at t")
        ax[0, j].legend(fontsize=7)
    return fig


def study_soil_figure(studies: dict):
    """The learned soil curves against the solver's (shaded: the psi range of the data)."""
    cases = list(studies)
    fig, ax = new_figure(1, 2, size=(9, 3.4))
    for case in cases:
        s = studies[case]["soil"]
        if s is None:
            continue
        grid = -np.logspace(-0.5, np.log10(max(2.0, -s["psi_range"][0] * 1.5)), 200)
        if case == cases[0]:
            ax[0, 0].plot(-grid, theta(grid, s["true"]), "k-", lw=3, alpha=0.3, label="solver's soil")
            ax[0, 1].loglog(-grid, conductivity(grid, s["true"]), "k-", lw=3, alpha=0.3, label="solver's soil")
        ax[0, 0].plot(-grid, theta(grid, s["learned"]), "--", label=f"learned ({case})")
        ax[0, 1].loglog(-grid, conductivity(grid, s["learned"]), "--", label=f"learned ({case})")
        for a in ax[0]:
            a.axvspan(-s["psi_range"][1], -s["psi_range"][0], color="0.9", zorder=0)
    ax[0, 0].set(xscale="log", xlabel="-psi (cm)", ylabel="theta", title="water retention (shaded: psi range of the data)")
    ax[0, 1].set(xlabel="-psi (cm)", ylabel="K (cm/s)", title="hydraulic conductivity")
    ax[0, 0].legend(fontsize=7)
    return fig
