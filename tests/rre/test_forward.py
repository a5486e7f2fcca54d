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
from phys_ml.stages.rre.train import Boundary, Initial, TrainData, train

SOIL = VanGenuchten()
LX, LY, LZ, T_END, TABLE = 2.0, 2.0, 5.0, 600.0, 10.0
EVAPORATION = 0.75 / 3600  # cm/s
LOG_TIME = None  # time enters linearly (the solution is smooth)
# re_psi against the solver that the physics-only network must reach (measured: 0.04; without the initial
# condition 1.5)
TOLERANCE = 0.1


@pytest.fixture(scope="module")
def column():
    """The solver's psi on a 1 x 1 x 10 column at 6 times (the grid instances the network is scored on)."""
    g = Grid(1, 1, 10, LX, LY, LZ)
    times = np.arange(1, 7) * T_END / 6
    z = (np.arange(10) + 0.5) * LZ / 10
    sol = solve(Problem(g, SOIL, np.broadcast_to(z - TABLE, g.shape).copy(), np.full((1, 1), EVAPORATION)), times,
                Stepping.tight(2.0))
    tt, zz = np.meshgrid(times, z, indexing="ij")
    coords = np.stack([np.full(tt.size, LX / 2), np.full(tt.size, LY / 2), zz.ravel(), tt.ravel()], axis=1)
    return coords, sol.psi[:, 0, 0, :].ravel()


def physics_only(initial: bool, seed: int = 0) -> PsiNet:
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=(400, 4))
    colloc = np.c_[u[:, :3] * [LX, LY, LZ], spread_in_time(u[:, 3], T_END, LOG_TIME)]
    bnd = boundary_points(200, (LX, LY, LZ), T_END, np.full((1, 1), EVAPORATION), rng)
    bxyz = np.stack([bnd["x"], bnd["y"], bnd["z"], spread_in_time(rng.uniform(size=200), T_END, LOG_TIME)], 1)
    f = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    at0 = np.c_[rng.uniform(size=(100, 3)) * [LX, LY, LZ], np.zeros(100)]
    ic = Initial(f(at0), f(at0[:, 2] - TABLE)) if initial else None
    data = TrainData(f(np.zeros((0, 4))), f(np.zeros(0)), f(colloc), SOIL, T_END, 1.0, "taylor", False,
                     Boundary(f(bxyz), torch.tensor(bnd["axis"]), f(bnd["flux"]), LZ), ic)
    torch.manual_seed(seed)
    # an output scaling that does not hold the answer: psi = -30 + 10 N
    net = PsiNet(16, 2, [0, 0, 0, 0], [LX, LY, LZ, T_END], -30.0, 10.0, "linear", LOG_TIME)
    spec = {"name": "adam_lbfgs", "lr": 0.01, "adam_steps": 400,
            "lbfgs": {"max_iter": 1, "max_eval": 20, "history_size": 50}}
    train(net, data, spec, iterations=1200, batch="full", batch_size=128, weight=1.0, log_every=1200,
          generator=torch.Generator().manual_seed(seed))
    return net


@pytest.mark.slow
def test_the_physics_only_network_solves_the_forward_problem(column):
    coords, psi = column
    assert relative_l2(predict(physics_only(initial=True), coords), psi) < TOLERANCE


@pytest.mark.slow
def test_without_the_initial_condition_it_does_not(column):
    coords, psi = column
    assert relative_l2(predict(physics_only(initial=False), coords), psi) > TOLERANCE
