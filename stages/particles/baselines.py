"""Non-learned baselines of the three sub-tasks (torch/numpy, no I/O).

- Task 2: constant velocity, x_t = x_0 + v_0 t (the paper's "simple linear baseline").
- Task 3.1: least squares on the force law. Accelerations from central second differences,
  a_t ~ (x_{t+1} - 2 x_t + x_{t-1}) / dt^2, are linear in the fixed charges, a_t = sum_j q_j b_j(x_t), with
  b_j(x) = k (x - p_j) / (|x - p_j|^2 + eps^2)^(3/2) (moving charge +1); solve the normal equations per trajectory.
- Task 3.2: linear extrapolation x_{n+s} = x_n + s (x_n - x_{n-1}) (paper, Fig. 21), and a physics roll-out that
  fits the charges as above and integrates the force law forward from the last given point.
"""

from __future__ import annotations

import numpy as np
import torch

from .datasets import FIXED_POSITIONS, simulate_task3
from .simulator import Physics


def constant_velocity(pos0: np.ndarray, vel0: np.ndarray, t: float) -> np.ndarray:
    """Task-2 baseline: positions at time t assuming no forces."""
    return pos0 + vel0 * t


def force_basis(x: torch.Tensor, physics: Physics) -> torch.Tensor:
    """b_j(x) for the three fixed charges: (..., 2) -> (..., 3, 2)."""
    p = torch.tensor(FIXED_POSITIONS, dtype=x.dtype)
    d = x.unsqueeze(-2) - p
    s3 = ((d * d).sum(-1) + physics.softening**2) ** 1.5
    return physics.coupling * d / s3.unsqueeze(-1)


def least_squares_charges(
    traj: np.ndarray,
    lengths: np.ndarray,
    sample_dt: float,
    physics: Physics,
    clip: tuple[float, float] | None,
    min_distance: float = 1.0,
) -> np.ndarray:
    """Charges (n, 3) that best explain the finite-difference accelerations of each zero-padded trajectory.

    Samples whose three-point stencil comes closer than ``min_distance`` to a fixed charge are left out: there
    the acceleration changes faster than the 0.1 sampling resolves and the second difference is far off.
    """
    x = torch.as_tensor(traj, dtype=torch.float64)
    n, t_max, _ = x.shape
    acc = (x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]) / sample_dt**2  # at samples 1 .. T-2
    basis = force_basis(x[:, 1:-1], physics)  # (n, T-2, 3, 2)
    idx = torch.arange(1, t_max - 1)
    mask = idx.unsqueeze(0) < torch.as_tensor(lengths).unsqueeze(1) - 1  # needs sample t+1
    dist = torch.cdist(x, torch.tensor(FIXED_POSITIONS, dtype=x.dtype).expand(n, 3, 2)).min(-1).values
    near = torch.stack([dist[:, 2:], dist[:, 1:-1], dist[:, :-2]], -1).min(-1).values
    mask = (mask & (near >= min_distance)).to(x.dtype)
    gram = torch.einsum("ntid,ntjd,nt->nij", basis, basis, mask)
    rhs = torch.einsum("ntid,ntd,nt->ni", basis, acc, mask)
    # a tiny ridge towards the middle of the prior range guards a trajectory with no usable sample
    prior = 0.0 if clip is None else 0.5 * (clip[0] + clip[1])
    q = torch.linalg.solve(gram + 1e-8 * torch.eye(3, dtype=x.dtype), rhs + 1e-8 * prior)
    if clip is not None:
        q = q.clamp(clip[0], clip[1])
    return q.numpy()


def last_two(traj: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The last and second-to-last given positions of each trajectory, (n, 2) each."""
    rows = np.arange(len(traj))
    return traj[rows, lengths - 1], traj[rows, lengths - 2]


def linear_extrapolation(traj: np.ndarray, lengths: np.ndarray, horizon: int) -> np.ndarray:
    """Task-3.2 baseline: keep the last step, (n, horizon, 2)."""
    last, prev = last_two(traj, lengths)
    steps = np.arange(1, horizon + 1, dtype=np.float64)[None, :, None]
    return last[:, None] + steps * (last - prev)[:, None]


def physics_rollout(
    traj: np.ndarray,
    lengths: np.ndarray,
    horizon: int,
    sample_dt: float,
    physics: Physics,
    clip: tuple[float, float] | None,
    min_distance: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit the charges on the given part, then integrate the force law on: (predictions (n, horizon, 2), charges)."""
    q = least_squares_charges(traj, lengths, sample_dt, physics, clip, min_distance)
    last, prev = last_two(traj, lengths)
    x = torch.as_tensor(last)
    qt = torch.as_tensor(q)
    acc = (force_basis(x, physics) * qt.unsqueeze(-1)).sum(-2)
    # x_{n-1} = x_n - v_n dt + a_n dt^2 / 2 + O(dt^3)  =>  v_n = (x_n - x_{n-1}) / dt + a_n dt / 2
    vel = (x - torch.as_tensor(prev)) / sample_dt + 0.5 * sample_dt * acc
    path = simulate_task3(x, vel, qt, physics, sample_dt, horizon + 1)
    return path[:, 1:].numpy(), q
