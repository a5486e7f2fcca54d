"""Richards equation solver: mixed form, cell-centred finite volumes, backward Euler, modified Picard.

    d theta(psi)/dt = div( K(psi) grad(psi + z_elev) )                      (paper eq. 1)

Cartesian grid of nx x ny x nz cells; depth is measured downward from the top face, the elevation head is
lz - depth, so the hydraulic head is h = psi + lz - depth. Two-point fluxes with the arithmetic mean of K at
faces. Each time step solves the mixed form with Celia et al.'s (1990) modified Picard iteration:

    V C^m / dt * d  +  L(T^m) d  =  -[ V (theta^m - theta^n) / dt  -  F(psi^m) ]

where F is the net inflow through the faces (plus boundary sources), L the transmissibility Laplacian and
psi^(m+1) = psi^m + d. Because theta itself (not C psi_t) is differenced, water is conserved up to the
Picard tolerance. Boundaries: no flow on sides and bottom unless a Dirichlet bottom head is given; a
prescribed outward flux (evaporation, cm/s) per top column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.linalg import solve_banded

from phys_ml.stages.common.errors import RunFailed, UserError

from .soil import VanGenuchten, capacity, conductivity, theta


@dataclass(frozen=True)
class Grid:
    """nx x ny x nz cells over lx x ly x lz cm; arrays are indexed [ix, iy, iz] with iz = 0 at the top."""

    nx: int
    ny: int
    nz: int
    lx: float
    ly: float
    lz: float

    def __post_init__(self) -> None:
        if min(self.nx, self.ny, self.nz) < 1:
            raise UserError(f"grid needs at least one cell per axis, got {self.nx} x {self.ny} x {self.nz}")
        if min(self.lx, self.ly, self.lz) <= 0:
            raise UserError("grid lengths must be > 0")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.nx, self.ny, self.nz)

    @property
    def size(self) -> int:
        return self.nx * self.ny * self.nz

    @property
    def spacing(self) -> tuple[float, float, float]:
        return (self.lx / self.nx, self.ly / self.ny, self.lz / self.nz)

    @property
    def cell_volume(self) -> float:
        dx, dy, dz = self.spacing
        return dx * dy * dz

    def centres(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """1-D arrays of cell-centre x, y and depth."""
        dx, dy, dz = self.spacing
        return ((np.arange(self.nx) + 0.5) * dx, (np.arange(self.ny) + 0.5) * dy, (np.arange(self.nz) + 0.5) * dz)

    def elevation(self) -> np.ndarray:
        """Elevation head lz - depth of every cell, shape (nx, ny, nz)."""
        depth = self.centres()[2]
        return np.broadcast_to(self.lz - depth, self.shape).copy()


@dataclass(frozen=True)
class Stepping:
    """Time-step and Picard control. ``tight()`` is the converged reference, ``mrst()`` mimics MRST's run."""

    tol: float = 1e-6  # max |psi change| (cm) in one Picard iteration to accept a step
    max_iter: int = 25
    accept_unconverged: bool = False  # MRST style: take the step after max_iter anyway
    dt_init: float = 0.01  # s
    dt_max: float = 20.0  # s
    dt_min: float = 1e-6
    linear_rtol: float = 1e-10  # relative residual of the preconditioned CG solve
    grow: float = 1.3  # dt factor when a step took <= iter_grow iterations
    iter_grow: int = 5
    shrink: float = 0.7  # dt factor when a step took >= iter_shrink iterations
    iter_shrink: int = 12

    @staticmethod
    def tight(dt_max: float = 20.0, tol: float = 1e-6) -> "Stepping":
        """The reference: psi change <= 1e-6 cm at convergence; dt <= 20 s changes psi by ~5e-6 (relative)."""
        return Stepping(dt_max=dt_max, tol=tol)

    @staticmethod
    def mrst() -> "Stepping":
        """Loose test (max head change <= 1 cm, at most 10 iterations), dt from 0.01 s, x1.3 / x0.7."""
        return Stepping(tol=1.0, max_iter=10, accept_unconverged=True, dt_max=np.inf, iter_grow=3, iter_shrink=7)


@dataclass(frozen=True)
class Problem:
    grid: Grid
    soil: VanGenuchten
    psi0: np.ndarray  # (nx, ny, nz) initial pressure head, cm
    top_flux: np.ndarray  # (nx, ny) outward flux through the top face, cm/s (evaporation > 0)
    bottom_psi: float | None = None  # Dirichlet pressure head on the bottom face; None = no flow


@dataclass(frozen=True)
class Solution:
    times: np.ndarray  # (n_out,) s
    psi: np.ndarray  # (n_out, nx, ny, nz) cm
    steps: int
    picard_iterations: int
    unconverged_steps: int
    water_lost: float  # cm^3, initial minus final water volume
    flux_out: float  # cm^3, integrated outward boundary flux


class _Operator:
    """Face lists of the grid and a fixed CSR pattern, refilled each Picard iteration."""

    def __init__(self, grid: Grid) -> None:
        idx = np.arange(grid.size).reshape(grid.shape)
        dx, dy, dz = grid.spacing
        pairs, geoms = [], []
        for axis, geom in ((0, dy * dz / dx), (1, dx * dz / dy), (2, dx * dy / dz)):
            lo = np.take(idx, np.arange(idx.shape[axis] - 1), axis=axis).ravel()
            hi = np.take(idx, np.arange(1, idx.shape[axis]), axis=axis).ravel()
            pairs.append(np.stack([lo, hi]))
            geoms.append(np.full(lo.size, geom))
        self.n_lateral = pairs[0].shape[1] + pairs[1].shape[1]  # z faces come last; i + 1 == j for them
        self.i, self.j = np.concatenate(pairs, axis=1)
        self.geom = np.concatenate(geoms)
        self.top = idx[:, :, 0].ravel()
        self.bottom = idx[:, :, -1].ravel()
        self.area_top = dx * dy
        self.geom_bottom = dx * dy / (dz / 2)
        n = grid.size
        rows = np.concatenate([self.i, self.j, self.i, self.j, np.arange(n)])
        cols = np.concatenate([self.j, self.i, self.i, self.j, np.arange(n)])
        keys, self.slot = np.unique(rows * n + cols, return_inverse=True)
        self.n = n
        self.indices = (keys % n).astype(np.int32)
        self.indptr = np.searchsorted(keys // n, np.arange(n + 1)).astype(np.int32)

    def matrix(self, trans: np.ndarray, diag: np.ndarray) -> sp.csr_matrix:
        """diag(diag) + L(trans), L the Laplacian with face transmissibilities ``trans``."""
        data = np.concatenate([-trans, -trans, trans, trans, diag])
        values = np.bincount(self.slot, weights=data, minlength=self.indices.size)
        return sp.csr_matrix((values, self.indices, self.indptr), shape=(self.n, self.n))

    def solve(self, trans: np.ndarray, diag: np.ndarray, rhs: np.ndarray, rtol: float) -> np.ndarray:
        """Solve (diag + L) x = rhs by conjugate gradients preconditioned with the exact column (vertical)
        tridiagonal part: cells of a column are consecutive, and vertical coupling dominates the lateral."""
        mat = self.matrix(trans, diag)
        band = np.zeros((3, self.n))
        band[1] = mat.diagonal()
        zt = trans[self.n_lateral :]
        zi = self.i[self.n_lateral :]
        band[0, zi + 1] = -zt  # upper diagonal (row i, column i + 1)
        band[2, zi] = -zt  # lower diagonal (row i + 1, column i)
        if self.n_lateral == 0:
            return solve_banded((1, 1), band, rhs)
        precond = spla.LinearOperator(mat.shape, matvec=lambda r: solve_banded((1, 1), band, r), dtype=float)
        x, info = spla.cg(mat, rhs, rtol=rtol, atol=0.0, M=precond, maxiter=500)
        if info != 0:
            return np.full_like(rhs, np.nan)
        return x


def solve(problem: Problem, output_times: np.ndarray, stepping: Stepping = Stepping()) -> Solution:
    """Integrate from t = 0 and return psi at ``output_times`` (increasing, > 0)."""
    grid, soil = problem.grid, problem.soil
    out_t = np.asarray(output_times, dtype=float)
    if out_t.ndim != 1 or out_t.size == 0 or out_t[0] <= 0 or np.any(np.diff(out_t) <= 0):
        raise UserError("output times must be a non-empty increasing sequence of positive times")
    if problem.psi0.shape != grid.shape or problem.top_flux.shape != grid.shape[:2]:
        raise UserError("initial psi must have the grid's shape and the top flux its (nx, ny) shape")

    op = _Operator(grid)
    vol = grid.cell_volume
    elev = grid.elevation().ravel()
    q_top = -problem.top_flux.ravel() * op.area_top  # inflow through the top face, cm^3/s per column
    psi = problem.psi0.astype(float).ravel().copy()

    def boundary(p: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boundary inflow per cell at pressure head p (conductivity k), and the boundary transmissibility
        (for the matrix diagonal)."""
        src = np.zeros(grid.size)
        src[op.top] += q_top
        diag = np.zeros(grid.size)
        if problem.bottom_psi is not None:
            kb = 0.5 * (k[op.bottom] + conductivity(np.array(problem.bottom_psi), soil))
            tb = kb * op.geom_bottom
            h_bottom = problem.bottom_psi + 0.0  # elevation of the bottom face is 0
            src[op.bottom] += tb * (h_bottom - (p[op.bottom] + elev[op.bottom]))
            diag[op.bottom] += tb
        return src, diag

    t, dt = 0.0, stepping.dt_init
    frames, steps, iters_total, unconverged = [], 0, 0, 0
    water0 = theta(psi, soil).sum() * vol
    flux_out = 0.0
    for t_next in out_t:
        while t < t_next - 1e-12 * t_next:
            h_dt = min(dt, stepping.dt_max, t_next - t)
            theta_n = theta(psi, soil)
            psi_it = psi.copy()
            converged = False
            for it in range(1, stepping.max_iter + 1):
                k = conductivity(psi_it, soil)
                trans = op.geom * 0.5 * (k[op.i] + k[op.j])
                head = psi_it + elev
                flow = trans * (head[op.i] - head[op.j])  # from i to j
                src, bdiag = boundary(psi_it, k)
                net_in = np.bincount(op.j, flow, grid.size) - np.bincount(op.i, flow, grid.size) + src
                resid = vol * (theta(psi_it, soil) - theta_n) / h_dt - net_in
                diag = vol * capacity(psi_it, soil) / h_dt + bdiag
                delta = op.solve(trans, diag, -resid, rtol=stepping.linear_rtol)
                psi_it = psi_it + delta
                if not np.all(np.isfinite(psi_it)):
                    break
                if np.max(np.abs(delta)) <= stepping.tol:
                    converged = True
                    break
            if not converged and (not stepping.accept_unconverged or not np.all(np.isfinite(psi_it))):
                dt = h_dt * 0.5
                if dt < stepping.dt_min:
                    raise RunFailed(f"Richards solver: Picard did not converge at t = {t:.4g} s even with dt = {h_dt:.3g} s")
                continue
            unconverged += not converged
            k = conductivity(psi_it, soil)
            src, _ = boundary(psi_it, k)
            flux_out -= src.sum() * h_dt
            psi, t = psi_it, t + h_dt
            steps += 1
            iters_total += it
            if it <= stepping.iter_grow:
                dt = min(dt * stepping.grow, stepping.dt_max) if h_dt >= dt else dt
            elif it >= stepping.iter_shrink:
                dt = h_dt * stepping.shrink
        frames.append(psi.reshape(grid.shape).copy())
    water_lost = water0 - theta(psi, soil).sum() * vol
    return Solution(
        times=out_t,
        psi=np.stack(frames),
        steps=steps,
        picard_iterations=iters_total,
        unconverged_steps=unconverged,
        water_lost=float(water_lost),
        flux_out=float(flux_out),
    )
