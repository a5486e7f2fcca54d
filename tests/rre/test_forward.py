"""The physics-only forward problem (no sensors): the P-DL network trained on L_RRE alone (eq. 6, the boundary
fluxes and the initial condition) reproduces the solver on a tiny evaporation column, and without the initial
condition it does not (nothing else fixes how much water the column holds). The column starts in hydrostatic
equilibrium with a water table 10 cm below its top (psi0 = z - 10 cm, z the depth), so the solution is smooth;
the pipeline's benchmark starts from psi0 = -1 cm everywhere, far from equilibrium (see the report)."""

import numpy as np
import pytest
import torch

from phys_ml.stages.rre.evaluation import predict, relative_l2
from phys_ml.stages.rre.fitting import spread_in_time
from phys_ml.stages.rre.model import PsiNet
from phys_ml.stages.rre.sampling import boundary_points
from phys_ml.stages.rre.soil import VanGenuchten
from phys_ml.stages.rre.solver import Grid, Problem, Stepping, solve
from phys_ml.stages.rre.train import Boundary, Initial, MassBalance, TrainData, train

SOIL = VanGenuchten()
LX, LY, LZ, T_END, TABLE = 2.0, 2.0, 5.0, 600.0, 10.0
EVAPORATION = 0.75 / 3600  # cm/s
LOG_TIME = None  # time enters linearly (the solution is smooth)
# re_psi against the solver that the physics-only network must reach (measured: 0.04; without the initial
# condition 1.5)
TOLERANCE = 0.1


def solved_column(width: float, t_end: float, n_times: int, psi0: np.ndarray):
    """The solver's psi on a 1 x 1 x 10 column at n_times times (the grid instances the network is scored on)."""
    g = Grid(1, 1, 10, width, width, LZ)
    times = np.arange(1, n_times + 1) * t_end / n_times
    z = (np.arange(10) + 0.5) * LZ / 10
    sol = solve(Problem(g, SOIL, np.broadcast_to(psi0(z), g.shape).copy(), np.full((1, 1), EVAPORATION)), times,
                Stepping.tight(2.0))
    tt, zz = np.meshgrid(times, z, indexing="ij")
    coords = np.stack([np.full(tt.size, width / 2), np.full(tt.size, width / 2), zz.ravel(), tt.ravel()], axis=1)
    return coords, sol.psi[:, 0, 0, :].ravel()


@pytest.fixture(scope="module")
def column():
    return solved_column(LX, T_END, 6, lambda z: z - TABLE)


def physics_data(seed: int, width: float, t_end: float, log_time: float | None, psi0):
    """The physics-only problem on a width x width x LZ column: 400 collocation points, 200 boundary points, 100
    initial points with psi0(depth), no sensors; and the generator for anything drawn after."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=(400, 4))
    colloc = np.c_[u[:, :3] * [width, width, LZ], spread_in_time(u[:, 3], t_end, log_time)]
    bnd = boundary_points(200, (width, width, LZ), t_end, np.full((1, 1), EVAPORATION), rng)
    bxyz = np.stack([bnd["x"], bnd["y"], bnd["z"], spread_in_time(rng.uniform(size=200), t_end, log_time)], 1)
    at0 = np.c_[rng.uniform(size=(100, 3)) * [width, width, LZ], np.zeros(100)]
    data = TrainData(f32(np.zeros((0, 4))), f32(np.zeros(0)), f32(colloc), SOIL, t_end, 1.0, "taylor", False,
                     Boundary(f32(bxyz), torch.tensor(bnd["axis"]), f32(bnd["flux"]), LZ),
                     Initial(f32(at0), f32(psi0(at0[:, 2]))))
    return data, rng


def f32(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float32)


def fit(net: PsiNet, data: TrainData, adam_steps: int, iterations: int, seed: int) -> PsiNet:
    spec = {"name": "adam_lbfgs", "lr": 0.01, "adam_steps": adam_steps,
            "lbfgs": {"max_iter": 1, "max_eval": 20, "history_size": 50}}
    train(net, data, spec, iterations=iterations, batch="full", batch_size=128, weight=1.0, log_every=iterations,
          generator=torch.Generator().manual_seed(seed))
    return net


def physics_only(initial: bool, seed: int = 0) -> PsiNet:
    data, _ = physics_data(seed, LX, T_END, LOG_TIME, lambda z: z - TABLE)
    if not initial:
        data.initial = None
    torch.manual_seed(seed)
    # an output scaling that does not hold the answer: psi = -30 + 10 N
    net = PsiNet(16, 2, [0, 0, 0, 0], [LX, LY, LZ, T_END], -30.0, 10.0, "linear", LOG_TIME)
    return fit(net, data, 400, 1200, seed)


@pytest.mark.slow
def test_the_physics_only_network_solves_the_forward_problem(column):
    coords, psi = column
    assert relative_l2(predict(physics_only(initial=True), coords), psi) < TOLERANCE


@pytest.mark.slow
def test_without_the_initial_condition_it_does_not(column):
    coords, psi = column
    assert relative_l2(predict(physics_only(initial=False), coords), psi) > TOLERANCE


# ---- the pipeline's benchmark start: psi0 = -1 cm everywhere, far from equilibrium ----
WIDE = 25.0  # cm, the benchmark's box width: the side faces hold as much water in check as the top face
DRY_T_END = 3250.0
# re_psi the physics-only network must reach with the water balance and the time-weighted residual (measured:
# 0.15; without them 0.90: psi stays near the hydrostatic state, water drawn in through the side faces)
DRY_TOLERANCE = 0.3


@pytest.fixture(scope="module")
def draining_column():
    return solved_column(WIDE, DRY_T_END, 10, lambda z: np.full(z.shape, -1.0))


def physics_only_draining(balance: bool, seed: int = 0) -> PsiNet:
    """The study network's physics (log-time input, t_c = 1 s) on the draining column, with or without the water
    balance (200 points x 10 times) and the residual weighted ((t + 1 s) / (t_end + 1 s))^0.5."""
    log_time, psi0 = 1.0, -1.0
    data, rng = physics_data(seed, WIDE, DRY_T_END, log_time, lambda z: np.full(z.shape, psi0))
    if balance:
        times = spread_in_time((np.arange(10) + 1.0) / 10, DRY_T_END, log_time)
        xyz = rng.uniform(size=(200, 3)) * [WIDE, WIDE, LZ]
        points = np.concatenate([np.c_[xyz, np.full(200, t)] for t in times])
        data.mass = MassBalance(f32(points), f32(EVAPORATION * times / LZ), psi0)
        data.time_weight = (log_time, 0.5)
    torch.manual_seed(seed)
    net = PsiNet(20, 4, [0, 0, 0, 0], [WIDE, WIDE, LZ, DRY_T_END], psi0, 1.0, "linear", log_time)
    return fit(net, data, 1000, 2000, seed)


@pytest.mark.slow
@pytest.mark.parametrize("balance", [True, False])
def test_the_water_balance_decides_whether_the_network_follows_the_draining_column(draining_column, balance):
    coords, psi = draining_column
    error = relative_l2(predict(physics_only_draining(balance), coords), psi)
    assert (error < DRY_TOLERANCE) == balance, error
