"""The benchmark cases: MRST's waterEvaporation3D (design note rre.md) and a truly 3-D patch variant.

evaporation: 25 x 25 x 5 cm, 20 x 20 x 10 cells, psi0 = -1 cm, 0.75 cm/h leaving through the whole top face,
             30 outputs over 3,250 s. Every column is the same: the solution is psi(z, t).
patch:       the same soil and grid, but evaporation only through a rectangle of the top face (by default
             x in [0, 15], y in [5, 17.5] cm at 1.5 cm/h), so psi depends on x, y, z and t and lateral flow
             matters: sensors at 15 columns no longer give the field by interpolation in depth alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .soil import VanGenuchten, conductivity, theta
from .solver import Grid, Problem, Solution, Stepping, solve

CM_PER_H = 1.0 / 3600.0  # cm/h -> cm/s
CASES = ("evaporation", "patch")


@dataclass(frozen=True)
class CaseSpec:
    grid: Grid
    soil: VanGenuchten
    psi0: float
    evaporation_cm_per_h: float
    t_end: float
    n_times: int
    patch_x: tuple[float, float] = (0.0, 15.0)
    patch_y: tuple[float, float] = (5.0, 17.5)
    patch_evaporation_cm_per_h: float = 1.5

    def output_times(self) -> np.ndarray:
        """t_k = k t_end / n_times, k = 1..n_times (t = 0 is not an output)."""
        return np.arange(1, self.n_times + 1) * self.t_end / self.n_times


def top_flux(spec: CaseSpec, case: str) -> np.ndarray:
    """Outward flux through each top cell (cm/s), shape (nx, ny)."""
    g = spec.grid
    if case == "evaporation":
        return np.full((g.nx, g.ny), spec.evaporation_cm_per_h * CM_PER_H)
    if case == "patch":
        x, y, _ = g.centres()
        inside = ((x >= spec.patch_x[0]) & (x <= spec.patch_x[1]))[:, None] & (
            (y >= spec.patch_y[0]) & (y <= spec.patch_y[1])
        )[None, :]
        return np.where(inside, spec.patch_evaporation_cm_per_h * CM_PER_H, 0.0)
    raise ValueError(f"unknown case {case!r}")


def problem(spec: CaseSpec, case: str) -> Problem:
    g = spec.grid
    return Problem(grid=g, soil=spec.soil, psi0=np.full(g.shape, spec.psi0), top_flux=top_flux(spec, case))


def run_case(spec: CaseSpec, case: str, stepping: Stepping) -> Solution:
    return solve(problem(spec, case), spec.output_times(), stepping)


def long_table(spec: CaseSpec, sol: Solution) -> dict[str, np.ndarray]:
    """One row per (time, x, y, depth) cell instance: x, y, z (depth, cm), t (s), psi (cm), theta, K (cm/s)."""
    x, y, z = spec.grid.centres()
    t = sol.times
    tt, xx, yy, zz = np.meshgrid(t, x, y, z, indexing="ij")
    psi = sol.psi.ravel()
    return {
        "x": xx.ravel(),
        "y": yy.ravel(),
        "z": zz.ravel(),
        "t": tt.ravel(),
        "psi": psi,
        "theta": theta(psi, spec.soil),
        "K": conductivity(psi, spec.soil),
    }
