"""P-DL training (paper eqs. 3, 4, 7): L = L_D + w L_RRE, full batch or mini-batch.

Scaling (ours; the paper does not state its units): L_D is the mean square of (psi_hat - psi_m) / psi_scale and
L_RRE the mean square of r / r_scale with r_scale = (theta_s - theta_r) / t_end, so both are of order one at the
start (with ``time_weight``, r at time t is weighted ((t + t_c) / (t_end + t_c))^p: the early drainage
transient, whose terms are 10-100x those of the slow drying, no longer drowns it). When boundary points are given,
L_RRE also holds the mean square of the boundary flux residual
(K (psi_z - 1) - E on the top face, where E is the known evaporation flux; zero normal flux on the bottom and the
sides; scaled by r_scale * lz): without it the RRE residual is blind to the forcing that drives the problem. With
initial points, it also holds the mean square of (psi(x, 0) - psi0) / psi_scale: the initial condition the solver
starts from. With a ``MassBalance``, it also holds the integral form of eq. 6 over the box: the mean water content
at a few times equals the initial one minus what the known top flux removed (no flow through the other faces),
scaled by theta_s - theta_r (r_scale integrated over the run). Without it a network can balance the evaporation
with water drawn in through the no-flow faces or a residual spread thin over the box, and stay near its initial
state (see the report). Without sensors L_D is 0 (the physics-only forward problem).
With ``soil`` a ``SoilParams`` module, alpha, n and K_s are learned jointly with the network. A mini-batch
iteration uses ``batch_size`` sensor readings, collocation and boundary points, each drawn by walking through a
fresh permutation per epoch.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from phys_ml.stages.common.divergence import DivergenceGuard
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.optim import AdamThenLBFGS, build_optimizer, line_search_counts

from .model import PsiNet, autograd_derivatives, residual
from .soil import VanGenuchten, conductivity, theta


WARMUP = 5  # iterations left out of ms_per_iteration
# a full-batch L-BFGS step that leaves the weights where they were (failed line search) repeats itself exactly
# (same point, gradient and history), so after this many such steps in a row the run stops: the rest of its
# budget would cost up to max_eval loss evaluations per iteration and change nothing
LBFGS_STALL = 10


@dataclass
class Boundary:
    """Boundary points: coordinates (Nb, 4), the derivative axis of each face's normal (0 x, 1 y, 2 depth) and the
    prescribed outward flux (cm/s; the evaporation on the top face, 0 elsewhere)."""

    points: torch.Tensor
    axis: torch.Tensor  # (Nb,) long
    flux: torch.Tensor  # (Nb,)
    lz: float

    def subset(self, idx: torch.Tensor) -> "Boundary":
        return Boundary(self.points[idx], self.axis[idx], self.flux[idx], self.lz)


class SoilParams(torch.nn.Module):
    """Learned van Genuchten alpha, n, K_s (log alpha, log(n - 1), log K_s); theta_s and theta_r stay known."""

    def __init__(self, init: VanGenuchten) -> None:
        super().__init__()
        self.theta_s, self.theta_r = init.theta_s, init.theta_r
        self.log_alpha = torch.nn.Parameter(torch.tensor(float(np.log(init.alpha))))
        self.log_n1 = torch.nn.Parameter(torch.tensor(float(np.log(init.n - 1))))
        self.log_ks = torch.nn.Parameter(torch.tensor(float(np.log(init.k_s))))

    def soil(self) -> VanGenuchten:
        return VanGenuchten(alpha=self.log_alpha.exp(), n=1 + self.log_n1.exp(), theta_s=self.theta_s,
                            theta_r=self.theta_r, k_s=self.log_ks.exp())

    def values(self) -> dict[str, float]:
        with torch.no_grad():
            return {"alpha": float(self.log_alpha.exp()), "n": float(1 + self.log_n1.exp()),
                    "k_s": float(self.log_ks.exp())}


@dataclass
class Initial:
    """Initial-condition points: coordinates (Ni, 4) at t = 0 and the known initial pressure head psi0 (cm): one
    value, or one per point (Ni,)."""

    points: torch.Tensor
    psi0: float | torch.Tensor

    def subset(self, idx: torch.Tensor) -> "Initial":
        return Initial(self.points[idx], self.psi0[idx] if isinstance(self.psi0, torch.Tensor) else self.psi0)


@dataclass
class MassBalance:
    """The box's water balance: ``points`` (Nt * Nq, 4), Nq space points at each of Nt times (time-major), the
    water (cm^3 per cm^3 of box) the known top flux has removed by each time (Nt,), and psi0 (cm), the initial
    state whose water content (under the soil being used, learned or known) it is removed from."""

    points: torch.Tensor
    removed: torch.Tensor
    psi0: float

    def misfit(self, net: PsiNet, soil: VanGenuchten, unsaturated: bool = False) -> torch.Tensor:
        """(mean theta of the network at each time - target) / (theta_s - theta_r), (Nt,). ``unsaturated``: psi
        kept below 0 (a learned soil's gradient in n is NaN at psi = 0)."""
        psi = net(self.points)
        th = theta(psi.clamp(max=-1e-3) if unsaturated else psi, soil).reshape(self.removed.shape[0], -1).mean(dim=1)
        th0 = theta(torch.full_like(self.removed, self.psi0), soil)
        return (th - th0 + self.removed) / (soil.theta_s - soil.theta_r)


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
    boundary: Boundary | None = None  # flux conditions added to the physics term
    initial: Initial | None = None  # the initial condition psi(x, 0) = psi0, added to the physics term
    mass: MassBalance | None = None  # the box's water balance, added to the physics term
    # (t_c, p): the residual at time t weighted ((t + t_c) / (t_end + t_c))^p (p = 1: eq. 6 written in the time
    # feature log(1 + t / t_c)); None: unweighted
    time_weight: tuple[float, float] | None = None

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
    diverged: bool = False  # the shared DivergenceGuard's rule; the run stopped there
    stalled: bool = False  # L-BFGS stopped moving the weights (LBFGS_STALL steps in a row); the run stopped there
    divergence: str | None = None  # why (the guard's reason)
    soil: dict[str, list[float]] = field(default_factory=dict)  # learned alpha, n, k_s at each logged iteration
    line_search: dict[str, int] | None = None  # L-BFGS iterations, evaluations and moves (optim.line_search_counts)


def boundary_residual(net: PsiNet, bnd: Boundary, soil: VanGenuchten, derivatives: str,
                      unsaturated: bool = False) -> torch.Tensor:
    """Outward-flux misfit on the boundary faces: K (psi_z - 1) - E on z faces (upward Darcy flux with z the
    depth), K psi_x or K psi_y on the sides (prescribed 0)."""
    if derivatives == "autograd":
        d = autograd_derivatives(net, bnd.points)
        psi, normal = d["psi"], torch.stack([d["psi_x"], d["psi_y"], d["psi_z"]]).gather(0, bnd.axis[None]).squeeze(0)
    else:
        psi, normal = net.normal_derivative(bnd.points, bnd.axis)
    g = torch.where(bnd.axis == 2, normal - 1.0, normal)
    psi = psi.clamp(max=-1e-3) if unsaturated else psi
    return conductivity(psi, soil) * g - bnd.flux


def losses(net: PsiNet, data: TrainData, sensors: torch.Tensor, psi_obs: torch.Tensor, colloc: torch.Tensor,
           weight: float, boundary: Boundary | None = None, soil: VanGenuchten | None = None,
           initial: Initial | None = None, physics=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, L_D, L_RRE) on the given sensor readings, collocation, boundary and initial points. L_D is 0
    without sensors (the physics-only forward problem). ``physics``: the function computing
    ``physics_terms`` (its compiled form, or None for the eager one)."""
    l_data = _data_term(net, data, sensors, psi_obs)
    l_rre, ini = (physics or physics_terms)(net, data, colloc, boundary, soil, initial)
    l_rre = l_rre + ini / data.psi_scale**2  # psi(x, 0) = psi0, scaled like L_D
    return l_data + weight * l_rre, l_data, l_rre


def physics_terms(net: PsiNet, data: TrainData, colloc: torch.Tensor, boundary: Boundary | None = None,
                  soil: VanGenuchten | None = None, initial: Initial | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_RRE without its initial-condition term, the mean square of psi(x, 0) - psi0 in cm^2, 0 without initial
    points). Nothing here depends on the sensors, so one compiled form serves every sensor set."""
    learned = soil is not None
    soil = data.soil if soil is None else soil
    d = autograd_derivatives(net, colloc) if data.derivatives == "autograd" else net.derivatives(colloc)
    if learned:  # d u^(n-1) / dn = u^(n-1) ln u is NaN at u = 0: keep a learned soil's psi unsaturated
        d = {**d, "psi": d["psi"].clamp(max=-1e-3)}
    r = residual(d, soil) / data.r_scale
    if data.time_weight is not None:
        t_c, p = data.time_weight
        r = r * ((colloc[:, 3] + t_c) / (data.t_end + t_c)) ** p
    l_rre = r.pow(2).mean()
    if boundary is not None:
        b = boundary_residual(net, boundary, soil, data.derivatives, learned) / (data.r_scale * boundary.lz)
        l_rre = l_rre + b.pow(2).mean()
    if data.mass is not None:
        l_rre = l_rre + data.mass.misfit(net, soil, learned).pow(2).mean()
    ini = torch.zeros_like(l_rre) if initial is None else (net(initial.points) - initial.psi0).pow(2).mean()
    return l_rre, ini


def _data_term(net, data, sensors, psi_obs):
    if sensors.shape[0] == 0:
        return torch.zeros((), dtype=data.colloc.dtype, device=data.colloc.device)
    return ((net(sensors) - psi_obs) / data.psi_scale).pow(2).mean()


def _data_losses(net, data, sensors, psi_obs, colloc, weight, boundary=None, soil=None, initial=None):
    l_data = _data_term(net, data, sensors, psi_obs)
    return l_data, l_data, torch.zeros(())


def require_cxx() -> None:
    """torch.compile's CPU backend builds C++: fail early and clearly where no compiler works."""
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception as exc:  # InvalidCxxCompiler
        raise UserError("rre.train.compile is true but torch.compile found no working C++ compiler "
                        "(install g++ or set rre.train.compile: false)") from exc


@functools.cache
def _compiled_losses():
    """One compiled physics term per process, so runs with new networks of the same shape reuse its graphs: the
    data term (a plain forward pass) and the weights stay outside it, so a new sensor set, scale or w does not
    recompile; a new set of physics points (or a learned soil) compiles once more."""
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 32)
    physics = torch.compile(physics_terms, dynamic=False)

    def compiled(net, data, sensors, psi_obs, colloc, weight, boundary=None, soil=None, initial=None):
        return losses(net, data, sensors, psi_obs, colloc, weight, boundary, soil, initial, physics=physics)

    return compiled


def train(net: PsiNet, data: TrainData, optimizer: dict, *, iterations: int, batch: str, batch_size: int,
          weight: float, log_every: int, generator: torch.Generator, progress=None,
          soil: SoilParams | None = None, lr_decay: float = 1.0, warmup: int = 0, run: str = "rre run"
          ) -> TrainResult:
    """Train ``net`` (and ``soil``, if given) in place. ``batch`` is 'full' or 'mini'; ``progress`` wraps the
    iteration range. ``lr_decay``: the learning rate falls exponentially to this fraction of its value by the
    last iteration (1: constant). ``warmup``: the first iterations fit the data alone (w = 0; the soil
    parameters get no gradient then), within the same budget. A run that diverges (the shared
    ``DivergenceGuard`` rule on the step loss; a new objective after the warm-up starts a new reference) stops
    there with ``diverged`` set and the reason in ``divergence``; ``run`` names it. A run whose L-BFGS no longer
    moves the weights (``LBFGS_STALL`` steps in a row) stops there with ``stalled`` set."""
    opt = build_optimizer(net if soil is None else torch.nn.ModuleList([net, soil]), optimizer)
    gamma = lr_decay ** (1.0 / iterations)
    # compiled for full batches only: on an idle CPU a compiled mini-batch step is also ~2x faster, but its many
    # tiny parallel loops stalled (~100 ms per step) when other jobs shared the cores; eager mini-batch steps do not
    compiled = data.compile and data.derivatives == "taylor" and batch == "full"
    step_losses = _compiled_losses() if compiled else losses
    physics_losses = step_losses
    result = TrainResult(iterations=iterations)
    nm, nf = data.psi_obs.shape[0], data.colloc.shape[0]
    bnd, ini = data.boundary, data.initial
    nb = bnd.points.shape[0] if bnd is not None else 0
    ni = ini.points.shape[0] if ini is not None else 0
    perm_m = perm_f = perm_b = perm_i = None
    pos_m = pos_f = pos_b = pos_i = 0
    if soil is not None:
        result.soil = {"alpha": [], "n": [], "k_s": []}

    def take(perm, pos, n):
        if perm is None or pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=generator), 0
        return perm, pos + batch_size, perm[pos : pos + batch_size]

    def log(it: int) -> None:
        with torch.no_grad():
            total, ld, lr = losses(net, data, data.sensors, data.psi_obs, data.colloc, weight, bnd,
                                   None if soil is None else soil.soil(), ini)
        if soil is not None:
            for key, value in soil.values().items():
                result.soil[key].append(value)
        result.loss.append(float(total))
        result.loss_data.append(float(ld))
        result.loss_rre.append(float(lr))
        result.logged_at.append(it)

    steps = range(1, iterations + 1)
    timed = 0.0
    guard = DivergenceGuard(run)
    moved, unmoved = None, 0
    carried = {"iterations": 0, "evaluations": 0}  # L-BFGS counts from before a restart
    for it in progress(steps) if progress else steps:
        t0 = time.perf_counter()
        if batch == "full":
            s, p, c, b, i0 = data.sensors, data.psi_obs, data.colloc, bnd, ini
        else:
            perm_m, pos_m, im = take(perm_m, pos_m, nm)
            perm_f, pos_f, jf = take(perm_f, pos_f, nf)
            s, p, c = data.sensors[im], data.psi_obs[im], data.colloc[jf]
            b = None
            if bnd is not None:
                perm_b, pos_b, jb = take(perm_b, pos_b, nb)
                b = bnd.subset(jb)
            i0 = None
            if ini is not None:
                perm_i, pos_i, ji = take(perm_i, pos_i, ni)
                i0 = ini.subset(ji)

        # a data-only step (w = 0, or during the warm-up): the physics term would be multiplied by 0, so it is
        # not computed
        step_losses = _data_losses if weight == 0 or it <= warmup else physics_losses
        if it == warmup + 1 and weight != 0:  # L_D + w L_RRE from here on: a new reference loss, L-BFGS starts a
            guard, unmoved = DivergenceGuard(run), 0  # new history (its pairs were of L_D alone) and can move again
            restart_lbfgs(opt, carried)

        def closure():
            opt.zero_grad(set_to_none=True)
            total, _, _ = step_losses(net, data, s, p, c, weight, b, None if soil is None else soil.soil(), i0)
            total.backward()
            return total

        total = opt.step(closure)
        if soil is not None and not all(bool(torch.isfinite(q).all()) for q in soil.parameters()):
            total = torch.tensor(float("nan"))
        if gamma != 1.0:
            for group in opt.param_groups:
                if "lr" in group:
                    group["lr"] *= gamma
        elapsed = time.perf_counter() - t0
        result.seconds += elapsed
        if it > WARMUP:  # the first iterations pay for allocation and, if compiled, for compiling
            timed += elapsed
        if total is not None and guard.diverged(float(total.detach()), it):
            result.diverged, result.divergence = True, guard.reason
            result.iterations = it
            break
        counts = line_search_counts(opt)
        if counts is not None and counts["iterations"] > 0:  # L-BFGS is stepping
            unmoved = unmoved + 1 if counts["moved"] == moved else 0
            moved = counts["moved"]
        if unmoved >= LBFGS_STALL and (it > warmup or weight == 0):  # the last objective of the run
            result.stalled, result.iterations = True, it
            log(it)
            break
        if it % log_every == 0 or it == iterations:
            log(it)
    counts = line_search_counts(opt)
    result.line_search = None if counts is None else {**counts, **{k: counts[k] + v for k, v in carried.items()}}
    result.ms_per_iteration = 1000.0 * (timed / (result.iterations - WARMUP) if result.iterations > WARMUP
                                        else result.seconds / max(result.iterations, 1))
    return result


def restart_lbfgs(opt, carried: dict[str, int]) -> None:
    """Restart L-BFGS (``lbfgs``, or the L-BFGS part of ``adam_lbfgs``) from a fresh history when the objective
    changes (after the data-only warm-up): curvature pairs of another function mislead the next steps (the first
    step after the change jumped to NaN). Its iteration and evaluation counts so far are added to ``carried``."""
    lbfgs = opt.lbfgs if isinstance(opt, AdamThenLBFGS) else opt
    if isinstance(lbfgs, torch.optim.LBFGS):
        state = lbfgs.state[lbfgs._params[0]]
        carried["iterations"] += state.get("n_iter", 0)
        carried["evaluations"] += state.get("func_evals", 0)
        state.clear()


def iterations_to_converge(logged_at: list[int], loss: list[float], rel: float = 0.1) -> int | None:
    """First logged iteration whose full-set loss is within a factor (1 + rel) of the final loss."""
    if not loss or not np.isfinite(loss[-1]):
        return None
    final = loss[-1]
    for it, value in zip(logged_at, loss):
        if value <= (1 + rel) * final:
            return it
    return logged_at[-1]


def converged(logged_at: list[int], loss: list[float], window: float = 0.25, rel: float = 0.1) -> bool:
    """The convergence rule (reads only the training loss): over the last ``window`` of the run the best loss
    improved by less than ``rel`` (relative). A run whose loss is still falling faster is marked not converged."""
    if len(loss) < 2 or not np.isfinite(loss[-1]):
        return False
    cut = logged_at[-1] * (1 - window)
    before = [v for it, v in zip(logged_at, loss) if it <= cut]
    if not before:
        return False
    return min(loss) >= (1 - rel) * min(before)
