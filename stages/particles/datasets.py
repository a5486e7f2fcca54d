"""Synthetic data sets of the paper's three sub-tasks, drawn with a seeded torch generator (no I/O).

Task 2: n free charges (+-1), inputs at t = 0, targets = positions at t = h, 2h, 3h (paper: h = 0.5).
Task 3: one moving charge (+1) shot from the side of the plane towards roughly the centre, three fixed charges in
[-1, 0] at the corners of a triangle; only the moving particle's positions are kept, sampled every 0.1, with a
variable length prefix (task 3.1 and 3.2) and a variable length continuation (task 3.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .simulator import Physics, simulate

# Fixed charges of task 3 (the original data put them at about +-1.538, see the design note).
FIXED_POSITIONS = ((-1.538, -1.538), (1.538, -1.538), (0.0, 1.538))


@dataclass(frozen=True)
class Task2Spec:
    n_particles: int = 5
    position_std: float = 2.0
    velocity_std: float = 1.0
    horizon_step: float = 0.5
    n_horizons: int = 3


@dataclass(frozen=True)
class Task3Spec:
    start_distance: float = 5.0  # half-width of the square the particle is shot from
    aim_jitter: float = 0.3  # radians around the direction to the centre
    speed_min: float = 0.8
    speed_max: float = 1.2
    charge_min: float = -1.0
    charge_max: float = 0.0
    sample_dt: float = 0.1
    prefix_min: int = 90  # samples in the given part (100 +- 10)
    prefix_max: int = 110
    cont_min: int = 0  # samples in the continuation (task 3.2: 40 +- 20)
    cont_max: int = 0


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)


def make_task2(n: int, spec: Task2Spec, physics: Physics, gen: torch.Generator) -> dict[str, np.ndarray]:
    """n simulations: pos0, vel0 (n, N, 2), charges (n, N), targets (n, n_horizons, N, 2)."""
    shape = (n, spec.n_particles, 2)
    pos0 = spec.position_std * torch.randn(shape, generator=gen, dtype=torch.float64)
    vel0 = spec.velocity_std * torch.randn(shape, generator=gen, dtype=torch.float64)
    charges = torch.where(torch.rand(n, spec.n_particles, generator=gen, dtype=torch.float64) < 0.5, -1.0, 1.0)
    charges = charges.to(torch.float64)
    pos, _ = simulate(pos0, vel0, charges, physics, spec.horizon_step, spec.n_horizons + 1)
    return {
        "pos0": pos0.numpy(),
        "vel0": vel0.numpy(),
        "charges": charges.numpy(),
        "targets": pos[:, 1:].numpy(),
    }


def task3_initial(n: int, spec: Task3Spec, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Start position (n, 2), start velocity (n, 2) of the moving charge and the fixed charges (n, 3)."""
    side = torch.randint(0, 4, (n,), generator=gen)
    along = _uniform(n, -spec.start_distance, spec.start_distance, gen)
    angle_of_side = side.to(torch.float64) * (math.pi / 2)  # 0: right side, 1: top, 2: left, 3: bottom
    normal = torch.stack([torch.cos(angle_of_side), torch.sin(angle_of_side)], -1)
    tangent = torch.stack([-normal[:, 1], normal[:, 0]], -1)
    start = spec.start_distance * normal + along.unsqueeze(-1) * tangent
    heading = torch.atan2(-start[:, 1], -start[:, 0]) + _uniform(n, -spec.aim_jitter, spec.aim_jitter, gen)
    speed = _uniform(n, spec.speed_min, spec.speed_max, gen)
    vel = speed.unsqueeze(-1) * torch.stack([torch.cos(heading), torch.sin(heading)], -1)
    q = spec.charge_min + (spec.charge_max - spec.charge_min) * torch.rand(n, 3, generator=gen, dtype=torch.float64)
    return start, vel, q


def simulate_task3(
    start: torch.Tensor,
    vel: torch.Tensor,
    fixed_charges: torch.Tensor,
    physics: Physics,
    sample_dt: float,
    n_samples: int,
) -> torch.Tensor:
    """Trajectory of the moving charge (+1) among the fixed ones: (n, n_samples, 2)."""
    n = start.shape[0]
    fixed_pos = torch.tensor(FIXED_POSITIONS, dtype=start.dtype).expand(n, 3, 2)
    pos0 = torch.cat([start.unsqueeze(1), fixed_pos], 1)
    vel0 = torch.cat([vel.unsqueeze(1), torch.zeros(n, 3, 2, dtype=start.dtype)], 1)
    charges = torch.cat([torch.ones(n, 1, dtype=start.dtype), fixed_charges], 1)
    fixed = torch.tensor([False, True, True, True]).expand(n, 4)
    pos, _ = simulate(pos0, vel0, charges, physics, sample_dt, n_samples, fixed=fixed)
    return pos[:, :, 0]


def make_task3(n: int, spec: Task3Spec, physics: Physics, gen: torch.Generator) -> dict[str, np.ndarray]:
    """n trajectories: traj (n, T, 2) zero-padded, prefix lengths (n,), continuation lengths (n,), charges (n, 3).

    Sample j of a row is at t = j * sample_dt; the prefix is samples [0, len), the continuation the next
    cont_len samples.
    """
    start, vel, q = task3_initial(n, spec, gen)
    lengths = torch.randint(spec.prefix_min, spec.prefix_max + 1, (n,), generator=gen)
    cont = torch.randint(spec.cont_min, spec.cont_max + 1, (n,), generator=gen)
    total = int((lengths + cont).max())
    traj = simulate_task3(start, vel, q, physics, spec.sample_dt, total)
    valid = torch.arange(total).unsqueeze(0) < (lengths + cont).unsqueeze(1)
    traj = traj.masked_fill(~valid.unsqueeze(-1), 0.0)
    return {
        "traj": traj.numpy(),
        "lengths": lengths.numpy().astype(np.int64),
        "cont_lengths": cont.numpy().astype(np.int64),
        "charges": q.numpy(),
    }
