"""P-DL training (paper eqs. 3, 4, 7): L = L_D + w L_RRE, full batch or mini-batch.

Scaling (ours; the paper does not state its units): L_D is the mean square of (psi_hat - psi_m) / psi_scale and
L_RRE the mean square of r / r_scale with r_scale = (theta_s - theta_r) / t_end, so both are of order one at the
start. A mini-batch iteration uses ``batch_size`` sensor readings and ``batch_size`` collocation points, each
drawn by walking through a fresh permutation per epoch.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from phys_ml.stages.common.optim import build_optimizer

from .model import PsiNet, autograd_derivatives, residual
from .soil import VanGenuchten


WARMUP = 5  # iterations left out of ms_per_iteration


@dataclass
class TrainData:
    sensors: torch.Tensor  # (Nm, 4) x, y, depth, t
    psi_obs: torch.Tensor  # (Nm,)
    colloc: torch.Tensor  # (Nf, 4)
    soil: VanGenuchten
    t_end: float
    psi_scale: float
    derivatives: str = "taylor"  # taylor: forward-mode (PsiNet.derivatives) | autograd: nested reverse mode
    compile: bool = False  # torch.compile the full-batch training loss (fuses the forward-mode elementwise work)

    @property
    def r_scale(self) -> float:
        return (self.soil.theta_s - self.soil.theta_r) / self.t_end


@dataclass
class TrainResult:
    iterations: int
    loss: list[float] = field(default_factory=list)  # total loss, every ``log_every`` iterations (full set)
    loss_data: list[float] = field(default_factory=list)
    loss_rre: list[float] = field(default_factory=list)
    logged_at: list[int] = field(default_factory=list)
    seconds: float = 0.0  # all iterations, compiling included
    ms_per_iteration: float = 0.0  # after the first WARMUP iterations
    diverged: bool = False


def losses(net: PsiNet, data: TrainData, sensors: torch.Tensor, psi_obs: torch.Tensor, colloc: torch.Tensor,
           weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, L_D, L_RRE) on the given sensor readings and collocation points."""
    l_data = ((net(sensors) - psi_obs) / data.psi_scale).pow(2).mean()
    d = autograd_derivatives(net, colloc) if data.derivatives == "autograd" else net.derivatives(colloc)
    r = residual(d, data.soil) / data.r_scale
    l_rre = r.pow(2).mean()
    return l_data + weight * l_rre, l_data, l_rre


@functools.cache
def _compiled_losses():
    """One compiled ``losses`` per process, so runs with new networks of the same shape reuse its graphs."""
    return torch.compile(losses, dynamic=False)


def train(net: PsiNet, data: TrainData, optimizer: dict, *, iterations: int, batch: str, batch_size: int,
          weight: float, log_every: int, generator: torch.Generator, progress=None) -> TrainResult:
    """Train ``net`` in place. ``batch`` is 'full' or 'mini'; ``progress`` wraps the iteration range."""
    opt = build_optimizer(net, optimizer)
    # compiled for full batches only: on an idle CPU a compiled mini-batch step is also ~2x faster, but its many
    # tiny parallel loops stalled (~100 ms per step) when other jobs shared the cores; eager mini-batch steps do not
    compiled = data.compile and data.derivatives == "taylor" and batch == "full"
    step_losses = _compiled_losses() if compiled else losses
    result = TrainResult(iterations=iterations)
    nm, nf = data.psi_obs.shape[0], data.colloc.shape[0]
    perm_m = perm_f = None
    pos_m = pos_f = 0

    def take(perm, pos, n):
        if perm is None or pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=generator), 0
        return perm, pos + batch_size, perm[pos : pos + batch_size]

    def log(it: int) -> None:
        with torch.no_grad():
            total, ld, lr = losses(net, data, data.sensors, data.psi_obs, data.colloc, weight)
        result.loss.append(float(total))
        result.loss_data.append(float(ld))
        result.loss_rre.append(float(lr))
        result.logged_at.append(it)

    steps = range(1, iterations + 1)
    timed = 0.0
    for it in progress(steps) if progress else steps:
        t0 = time.perf_counter()
        if batch == "full":
            s, p, c = data.sensors, data.psi_obs, data.colloc
        else:
            perm_m, pos_m, im = take(perm_m, pos_m, nm)
            perm_f, pos_f, jf = take(perm_f, pos_f, nf)
            s, p, c = data.sensors[im], data.psi_obs[im], data.colloc[jf]

        def closure():
            opt.zero_grad(set_to_none=True)
            total, _, _ = step_losses(net, data, s, p, c, weight)
            total.backward()
            return total

        total = opt.step(closure)
        elapsed = time.perf_counter() - t0
        result.seconds += elapsed
        if it > WARMUP:  # the first iterations pay for allocation and, if compiled, for compiling
            timed += elapsed
        if total is not None and not torch.isfinite(total):
            result.diverged = True
            result.iterations = it
            break
        if it % log_every == 0 or it == iterations:
            log(it)
    result.ms_per_iteration = 1000.0 * (timed / (result.iterations - WARMUP) if result.iterations > WARMUP
                                        else result.seconds / max(result.iterations, 1))
    return result


def iterations_to_converge(logged_at: list[int], loss: list[float], rel: float = 0.1) -> int | None:
    """First logged iteration whose full-set loss is within a factor (1 + rel) of the final loss."""
    if not loss or not np.isfinite(loss[-1]):
        return None
    final = loss[-1]
    for it, value in zip(logged_at, loss):
        if value <= (1 + rel) * final:
            return it
    return logged_at[-1]
