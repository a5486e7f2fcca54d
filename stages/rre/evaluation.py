"""Metrics of paper eq. 13 and the sensor-interpolation baseline."""

from __future__ import annotations

import numpy as np
import torch

from .model import PsiNet, residual
from .soil import capacity, theta


def relative_l2(pred: np.ndarray, true: np.ndarray) -> float:
    """||pred - true||_2 / ||true||_2 over the whole space-time domain (paper eq. 13). numpy's pairwise sum, not
    a BLAS norm: a threaded BLAS splits the sum by thread count, and these values are stage outputs (solver.json)."""
    def norm(x: np.ndarray) -> float:
        return float(np.sqrt(np.sum(np.square(x))))
    return norm(np.asarray(pred) - np.asarray(true)) / norm(np.asarray(true))


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


def truth_residual(psi: np.ndarray, spacing: tuple[float, float, float], dt: float, soil, r_scale: float
                   ) -> tuple[float, float]:
    """`residual_sizes` (L_RRE and normalized L_RRE) of a solution ``psi`` (nt, nx, ny, nz) on its own grid, by
    central differences at the interior cells and times (one-sided pieces are left out; a horizontal axis with
    fewer than 3 cells contributes no derivative). The floor a perfect network could reach."""
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
    d = {k: torch.tensor(np.ascontiguousarray(v)[(slice(None),) + inner[1:]]) for k, v in d.items()}
    return residual_sizes(d, soil, r_scale)


def residual_sizes(d: dict, soil, r_scale: float) -> tuple[float, float]:
    """(L_RRE, normalized L_RRE) of derivatives ``d``: the mean square of r / r_scale, and mean(r^2) /
    mean(S^2 + T^2) with r = S - T, S = C psi_t the storage term and T the transport term of eq. 6 (0: the
    equation holds; 1: r as large as its terms)."""
    with torch.no_grad():
        r = residual(d, soil)
        storage = capacity(d["psi"], soil) * d["psi_t"]
        r, storage = r.double().numpy(), storage.double().numpy()
    transport = storage - r
    size = float(np.mean(storage**2 + transport**2))
    return float(np.mean((r / r_scale) ** 2)), float(np.mean(r**2) / size) if size > 0 else float("nan")


def network_residual(net: PsiNet, coords: np.ndarray, soil, r_scale: float, chunk: int = 20_000
                     ) -> tuple[float, float]:
    """`residual_sizes` of a network's exact derivatives at physical points ``coords`` (the solver's grid
    instances), computed in chunks; a learned-soil network is scored with ``soil`` as given."""
    parts = []
    with torch.no_grad():
        for i in range(0, coords.shape[0], chunk):
            d = net.derivatives(torch.as_tensor(coords[i : i + chunk], dtype=torch.float32))
            parts.append({k: v.double().numpy() for k, v in d.items()})
    d = {k: torch.tensor(np.concatenate([p[k] for p in parts])) for k in parts[0]}
    return residual_sizes(d, soil, r_scale)


def solver_stats(spec, sol, tab) -> dict:
    """Of a solver run (``spec`` a `cases.CaseSpec`, ``tab`` its long table): steps, iterations and the water
    balance per unit area (cm), whose relative error is the conservation check."""
    area = spec.grid.lx * spec.grid.ly
    return {"steps": sol.steps, "picard_iterations": sol.picard_iterations, "water_lost_cm": sol.water_lost / area,
            "flux_out_cm": sol.flux_out / area,
            "mass_balance_rel_error": abs(sol.water_lost - sol.flux_out) / max(abs(sol.flux_out), 1e-300),
            **{f"{c}_{f.__name__}": float(f(tab[c])) for c in ("psi", "theta") for f in (np.min, np.max)}}


def solution_residual(coords: np.ndarray, psi: np.ndarray, grid: dict, soil, t_end: float) -> tuple[float, float]:
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


def errors_by_half(pred, psi, times: np.ndarray, t_end: float) -> dict:
    """re_psi over the output times up to ``t_end`` / 2 and after it: where in time a network's error sits."""
    if pred is None:
        return {"re_psi_early": None, "re_psi_late": None}
    early = times <= t_end / 2
    return {"re_psi_early": relative_l2(pred[early], psi[early]), "re_psi_late": relative_l2(pred[~early], psi[~early])}


def soil_errors(case: str, learned: dict | None, init, soil, initialization: int) -> list[dict]:
    """One row per learned van Genuchten parameter (alpha, n, K_s): start, learned, true, relative error; the
    learned values are None for a diverged (or non-finite) run. ``initialization``: the network's."""
    return [dict(case=case, initialization=initialization, parameter=k, init=getattr(init, k),
                 learned=learned[k] if learned else None,
                 true=getattr(soil, k),
                 rel_error=abs(learned[k] - getattr(soil, k)) / getattr(soil, k) if learned else None)
            for k in ("alpha", "n", "k_s")]


def mark_kept_forward(results: list[dict]) -> list[dict]:
    """The records with ``kept`` set on the forward check's rows: per case, the candidate (output range and
    initialization) whose final training L_RRE is lowest is kept; the others are False. The rule reads only the
    training loss (every candidate of a case trains on the same physics points)."""
    best = {}
    for r in results:
        if r["setting"] == "forward" and not r["diverged"] and r["final_l_rre"] is not None:
            if r["case"] not in best or r["final_l_rre"] < best[r["case"]]["final_l_rre"]:
                best[r["case"]] = r
    return [{**r, "kept": (r is best.get(r["case"])) if r["setting"] == "forward" else None} for r in results]


def headline(results: list[dict], studies: list[dict]) -> dict:
    """The flat numbers for `dvc metrics show|diff`: Table 1 re_psi per run without an override, the
    interpolation baseline, the physics-only forward check, the study settings where P-DL met the target, and
    how many runs diverged."""
    out = {}
    for r in results:
        if r["setting"] == "table1" and not r["override"]:
            key = "interpolation" if r["kind"] == "interpolation" else f"{r['optimizer']}-{r['batch']}"
            key += "" if r.get("network", "paper") == "paper" else "-study"
            out[f"{r['case']}.{key}.re_psi"] = r["re_psi"]
        if r["setting"] == "forward" and r.get("kept"):
            out[f"{r['case']}.forward.re_psi"] = r["re_psi"]
    out["studies.target_met"] = sum(s["target"] for s in studies)
    out["studies.settings"] = len(studies)
    for case in dict.fromkeys(r["case"] for r in results):
        out[f"{case}.diverged_runs"] = sum(1 for r in results if r["case"] == case and r["diverged"])
    return out


def mean_sd(values: list) -> tuple[float | None, float | None]:
    v = np.array([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return None, None
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def study_summary(results: list[dict]) -> list[dict]:
    """One row per case and study setting (sparse, forecast): P-DL and data-only re_psi over the seeds
    (initializations) as mean and sd, the interpolation baseline, and the paired difference P-DL minus
    data-only per seed (mean and sd). ``pdl_better``: the mean difference is negative and larger than its sd;
    ``target``: also at least 2x below both the data-only mean and interpolation. A diverged run leaves its pair out."""
    out = []
    keys = dict.fromkeys((r["case"], r["setting"]) for r in results if r["kind"] == "pdl")
    for case, setting in keys:
        rows = [r for r in results if (r["case"], r["setting"]) == (case, setting)]
        by = {(r["kind"], r["init"]): r for r in rows if r["kind"] in ("pdl", "data")}
        inits = sorted({i for _, i in by})
        pairs = [(by[("pdl", i)], by[("data", i)]) for i in inits if ("pdl", i) in by and ("data", i) in by
                 and by[("pdl", i)]["re_psi"] is not None and by[("data", i)]["re_psi"] is not None]
        interp = next(r for r in rows if r["kind"] == "interpolation")
        pdl, pdl_sd = mean_sd([p["re_psi"] for p, _ in pairs])
        data, data_sd = mean_sd([d["re_psi"] for _, d in pairs])
        diff, diff_sd = mean_sd([p["re_psi"] - d["re_psi"] for p, d in pairs])
        gain = min(data, interp["re_psi"]) / pdl if pdl else None
        better = diff is not None and diff < 0 and -diff > diff_sd
        first = next(iter(by.values()))
        out.append(dict(
            case=case, setting=setting, seeds=len(pairs), probes=first["probes"], t_split=first["t_split"],
            w=by[("pdl", inits[0])]["residual_weight"], pdl_mean=pdl, pdl_sd=pdl_sd, data_mean=data, data_sd=data_sd,
            interpolation=interp["re_psi"], diff_mean=diff, diff_sd=diff_sd, gain=gain, pdl_better=better,
            target=bool(better and gain is not None and gain >= 2),
            pdl_theta=mean_sd([p["re_theta"] for p, _ in pairs])[0],
            data_theta=mean_sd([d["re_theta"] for _, d in pairs])[0], interpolation_theta=interp["re_theta"],
            pdl_l_rre_norm=mean_sd([p["l_rre_norm"] for p, _ in pairs])[0],
            data_l_rre_norm=mean_sd([d["l_rre_norm"] for _, d in pairs])[0]))
    return out
