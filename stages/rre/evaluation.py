"""Metrics of paper eq. 13 and the sensor-interpolation baseline."""

from __future__ import annotations

import numpy as np
import torch

from .model import PsiNet
from .soil import theta


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
    field this is plain depth interpolation. A point later than the last sensor time takes the last readings
    (persistence: the forecast baseline); one between sensor times the latest earlier readings."""
    cols, col_of = np.unique(sensors[:, :2], axis=0, return_inverse=True)
    d2 = ((coords[:, None, :2] - cols[None, :, :]) ** 2).sum(-1)
    nearest = np.argmin(d2, axis=1)
    times = np.unique(sensors[:, 3])
    t_used = times[np.clip(np.searchsorted(times, coords[:, 3], side="right") - 1, 0, times.size - 1)]
    out = np.full(coords.shape[0], np.nan)
    for c in range(cols.shape[0]):
        here = col_of.ravel() == c
        for t in np.unique(sensors[here, 3]):
            sel = here & (sensors[:, 3] == t)
            order = np.argsort(sensors[sel, 2])
            z, p = sensors[sel, 2][order], psi_obs[sel][order]
            target = (nearest == c) & (t_used == t)
            out[target] = np.interp(coords[target, 2], z, p)
    return out


def truth_residual(psi: np.ndarray, spacing: tuple[float, float, float], dt: float, soil, r_scale: float) -> float:
    """Mean square of the scaled RRE residual (eq. 6, r / r_scale) of a solution ``psi`` (nt, nx, ny, nz) on its
    own grid, by central differences at the interior cells and times (one-sided pieces are left out; a horizontal
    axis with fewer than 3 cells contributes no derivative). The floor a perfect network could reach."""
    import torch

    from .model import residual

    dx, dy, dz = spacing
    core = psi[1:-1]
    sl = [slice(None)] * 4
    inner = (slice(1, -1),) + tuple(slice(1, -1) if n >= 3 else slice(None) for n in psi.shape[1:])

    def central(a, axis, h, second=False):
        """Central first (or second) difference along ``axis`` at the interior points, zero elsewhere."""
        if a.shape[axis] < 3:
            return np.zeros_like(a)
        out = np.zeros_like(a)
        s_mid, s_hi, s_lo = list(sl), list(sl), list(sl)
        s_mid[axis], s_hi[axis], s_lo[axis] = slice(1, -1), slice(2, None), slice(None, -2)
        hi, lo = a[tuple(s_hi)], a[tuple(s_lo)]
        out[tuple(s_mid)] = (hi - 2 * a[tuple(s_mid)] + lo) / h**2 if second else (hi - lo) / (2 * h)
        return out

    def d1(a, axis, h):
        return central(a, axis, h)

    def d2(a, axis, h):
        return central(a, axis, h, second=True)

    psi_t = (psi[2:] - psi[:-2]) / (2 * dt)
    d = {"psi": core, "psi_t": psi_t, "psi_x": d1(core, 1, dx), "psi_y": d1(core, 2, dy), "psi_z": d1(core, 3, dz),
         "psi_xx": d2(core, 1, dx), "psi_yy": d2(core, 2, dy), "psi_zz": d2(core, 3, dz)}
    r = residual({k: torch.tensor(np.ascontiguousarray(v)) for k, v in d.items()}, soil).numpy() / r_scale
    return float(np.mean(r[(slice(None),) + inner[1:]] ** 2))


def solver_stats(spec, sol, tab) -> dict:
    """Of a solver run (``spec`` a `cases.CaseSpec`, ``tab`` its long table): steps, iterations and the water
    balance per unit area (cm), whose relative error is the conservation check."""
    area = spec.grid.lx * spec.grid.ly
    return {"steps": sol.steps, "picard_iterations": sol.picard_iterations, "water_lost_cm": sol.water_lost / area,
            "flux_out_cm": sol.flux_out / area,
            "mass_balance_rel_error": abs(sol.water_lost - sol.flux_out) / max(abs(sol.flux_out), 1e-300),
            **{f"{c}_{f.__name__}": float(f(tab[c])) for c in ("psi", "theta") for f in (np.min, np.max)}}


def solution_residual(coords: np.ndarray, psi: np.ndarray, grid: dict, soil, t_end: float) -> float:
    """`truth_residual` of the solver's solution given as a long table (``coords`` (n, 4), ``psi`` (n,)) on the
    grid of params ``rre.generate.grid``; r_scale = (theta_s - theta_r) / t_end, as the network's loss."""
    g = grid
    nt = coords.shape[0] // (g["nx"] * g["ny"] * g["nz"])
    times = np.unique(coords[:, 3])
    return truth_residual(psi.reshape(nt, g["nx"], g["ny"], g["nz"]),
                          (g["lx"] / g["nx"], g["ly"] / g["ny"], g["lz"] / g["nz"]),
                          float(times[1] - times[0]) if times.size > 1 else 1.0, soil,
                          (soil.theta_s - soil.theta_r) / t_end)


def field_errors(pred, psi, th, soil, where) -> dict:
    """re_psi and re_theta (eq. 13) of a prediction over the points ``where``; None for a run without one."""
    if pred is None:
        return {"re_psi": None, "re_theta": None}
    return {"re_psi": relative_l2(pred[where], psi[where]),
            "re_theta": relative_l2(theta(pred[where], soil), th[where])}


def soil_errors(case: str, learned: dict | None, init, soil) -> list[dict]:
    """One row per learned van Genuchten parameter (alpha, n, K_s): start, learned, true, relative error; the
    learned values are None for a diverged (or non-finite) run."""
    return [dict(case=case, parameter=k, init=getattr(init, k), learned=learned[k] if learned else None,
                 true=getattr(soil, k), rel_error=abs(learned[k] - getattr(soil, k)) / getattr(soil, k) if learned else None)
            for k in ("alpha", "n", "k_s")]


def headline(results: list[dict]) -> dict:
    """The flat numbers for `dvc metrics show|diff`: Table 1 re_psi per run without an override, the
    interpolation baseline, and how many runs diverged."""
    out = {}
    for r in results:
        if r["setting"] == "table1" and not r["override"]:
            key = "interpolation" if r["kind"] == "interpolation" else f"{r['optimizer']}-{r['batch']}"
            out[f"{r['case']}.{key}.re_psi"] = r["re_psi"]
    for case in dict.fromkeys(r["case"] for r in results):
        out[f"{case}.diverged_runs"] = sum(1 for r in results if r["case"] == case and r["diverged"])
    return out
