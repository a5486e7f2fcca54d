"""Batched simulator of point charges in the plane (pure torch, no I/O).

Unit masses, pairwise softened Coulomb force (like charges repel):

    F_i = k * sum_{j != i} q_i q_j (x_i - x_j) / (|x_i - x_j|^2 + eps^2)^(3/2)

which is minus the gradient of the potential U = k * sum_{i<j} q_i q_j / sqrt(|x_i - x_j|^2 + eps^2), so the
integrator below conserves E = sum |v|^2 / 2 + U up to O(dt^2). Integrator: velocity Verlet (kick-drift-kick),
symplectic and time-reversible. Shapes: B simulations, N particles, positions (B, N, 2), charges (B, N).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Physics:
    """Constants of the force law and the integrator."""

    coupling: float = 1.0  # k
    softening: float = 0.05  # eps (length)
    dt: float = 1e-3  # internal integration step


def _pair_terms(pos: torch.Tensor, softening: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Differences d_ij = x_i - x_j (B, N, N, 2) and softened distances s_ij = sqrt(|d|^2 + eps^2) (B, N, N)."""
    diff = pos.unsqueeze(2) - pos.unsqueeze(1)
    dist = torch.sqrt((diff * diff).sum(-1) + softening**2)
    return diff, dist


def accelerations(
    pos: torch.Tensor, charges: torch.Tensor, physics: Physics, fixed: torch.Tensor | None = None
) -> torch.Tensor:
    """Acceleration of every particle (unit mass), (B, N, 2); particles where ``fixed`` is True get zero.

    Each unordered pair is computed once and applied with opposite signs (Newton's third law).
    """
    n = pos.shape[1]
    i, j = torch.triu_indices(n, n, 1, device=pos.device)
    diff = pos[:, i] - pos[:, j]  # (B, P, 2)
    s2 = (diff * diff).sum(-1) + physics.softening**2
    weight = physics.coupling * charges[:, i] * charges[:, j] / (s2 * torch.sqrt(s2))
    force = weight.unsqueeze(-1) * diff  # force on i from j
    acc = torch.zeros_like(pos)
    acc.index_add_(1, i, force)
    acc.index_add_(1, j, -force)
    if fixed is not None:
        acc = acc.masked_fill(fixed.unsqueeze(-1), 0.0)
    return acc


def potential_energy(pos: torch.Tensor, charges: torch.Tensor, physics: Physics) -> torch.Tensor:
    """U = k sum_{i<j} q_i q_j / s_ij, shape (B,)."""
    _, dist = _pair_terms(pos, physics.softening)
    qq = charges.unsqueeze(2) * charges.unsqueeze(1)
    upper = torch.triu(torch.ones(pos.shape[1], pos.shape[1], dtype=torch.bool, device=pos.device), 1)
    return (physics.coupling * qq / dist).masked_fill(~upper, 0.0).sum((1, 2))


def total_energy(pos: torch.Tensor, vel: torch.Tensor, charges: torch.Tensor, physics: Physics) -> torch.Tensor:
    """Kinetic plus potential energy, shape (B,)."""
    return 0.5 * (vel * vel).sum((1, 2)) + potential_energy(pos, charges, physics)


def total_momentum(vel: torch.Tensor) -> torch.Tensor:
    """Total momentum (unit masses), shape (B, 2)."""
    return vel.sum(1)


def steps_per_sample(sample_dt: float, dt: float) -> int:
    """Number of integrator steps between two samples; sample_dt must be a whole multiple of dt."""
    k = round(sample_dt / dt)
    if k < 1 or abs(k * dt - sample_dt) > 1e-9 * max(1.0, sample_dt):
        raise ValueError(f"sample interval {sample_dt} is not a whole multiple of the step {dt}")
    return k


def simulate(
    pos0: torch.Tensor,
    vel0: torch.Tensor,
    charges: torch.Tensor,
    physics: Physics,
    sample_dt: float,
    n_samples: int,
    fixed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate with velocity Verlet; return positions and velocities at t = 0, sample_dt, ...

    Returns two tensors of shape (B, n_samples, N, 2); sample 0 is the initial state.
    """
    sub = steps_per_sample(sample_dt, physics.dt)
    dt = physics.dt
    pos = pos0.clone()
    vel = vel0.clone()
    if fixed is not None:
        vel = vel.masked_fill(fixed.unsqueeze(-1), 0.0)
    acc = accelerations(pos, charges, physics, fixed)
    out_pos = [pos.clone()]
    out_vel = [vel.clone()]
    for _ in range(n_samples - 1):
        for _ in range(sub):
            vel = vel + 0.5 * dt * acc  # kick
            pos = pos + dt * vel  # drift
            acc = accelerations(pos, charges, physics, fixed)
            vel = vel + 0.5 * dt * acc  # kick
        out_pos.append(pos.clone())
        out_vel.append(vel.clone())
    return torch.stack(out_pos, 1), torch.stack(out_vel, 1)
