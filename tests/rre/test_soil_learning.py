"""Unknown soil: with exact sensors and a tiny network, alpha, n and K_s learned jointly with the network move
toward the solver's values; and with the solver's own derivatives (finite differences) they reach them."""

import numpy as np
import torch

from phys_ml.stages.rre.cases import CM_PER_H
from phys_ml.stages.rre.model import PsiNet
from phys_ml.stages.rre.soil import VanGenuchten
from phys_ml.stages.rre.solver import Grid, Problem, Stepping, solve
from phys_ml.stages.rre.train import Boundary, SoilParams, TrainData, train

SOIL = VanGenuchten()


def test_jointly_learned_soil_moves_toward_the_truth():
    torch.manual_seed(0)
    g = Grid(1, 1, 20, 25.0, 25.0, 5.0)
    times = np.arange(1, 11) * 325.0
    sol = solve(Problem(g, SOIL, np.full(g.shape, -1.0), np.full((1, 1), 0.75 * CM_PER_H)), times,
                Stepping.tight(dt_max=10.0))
    z = (np.arange(20) + 0.5) * 0.25
    tt, zz = np.meshgrid(times, z, indexing="ij")
    pts = np.stack([np.full(tt.size, 12.5), np.full(tt.size, 12.5), zz.ravel(), tt.ravel()], 1)
    f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    psi = sol.psi[:, 0, 0, :].ravel()  # exact sensors at every cell and output time
    rng = np.random.default_rng(0)
    top = np.stack([np.full(50, 12.5), np.full(50, 12.5), np.zeros(50), rng.uniform(0, 3250, 50)], 1)
    bnd = Boundary(f(top), torch.full((50,), 2), torch.full((50,), 0.75 * CM_PER_H), 5.0)
    scale = float((psi.max() - psi.min()) / 2)
    net = PsiNet(8, 2, [0, 0, 0, 0], [25, 25, 5, 3250], float((psi.max() + psi.min()) / 2), scale)
    data = TrainData(f(pts), f(psi), f(pts), SOIL, 3250.0, scale, boundary=bnd)
    start = VanGenuchten(alpha=0.045, n=1.7, theta_s=SOIL.theta_s, theta_r=SOIL.theta_r, k_s=0.006)
    soil = SoilParams(start)
    res = train(net, data, {"name": "adam", "lr": 0.01}, iterations=1800, batch="full", batch_size=128, weight=1.0,
                log_every=100, generator=torch.Generator().manual_seed(0), soil=soil,
                warmup=1500)
    learned = soil.values()
    dist = lambda p: sum(abs(np.log(p[k] / getattr(SOIL, k))) for k in ("alpha", "n", "k_s"))  # noqa: E731
    # the data-only warm-up (1,500 cheap iterations) fits the network first; then 300 joint iterations. alpha and
    # K_s move toward the solver's values and the summed log-distance falls; n, the least determined by a network
    # this small, may drift (it does here: 1.7 -> about 1.6, true 2)
    assert dist(learned) < 0.8 * dist({"alpha": 0.045, "n": 1.7, "k_s": 0.006})
    assert abs(np.log(learned["alpha"] / SOIL.alpha)) < abs(np.log(0.045 / SOIL.alpha))
    assert abs(np.log(learned["k_s"] / SOIL.k_s)) < abs(np.log(0.006 / SOIL.k_s))
    assert len(res.soil["alpha"]) == 18


def test_soil_from_the_solver_solution_reaches_the_truth():
    """No network: eq. 6 on finite differences of a fine solver solution; minimising the residual over alpha, n,
    K_s from a wrong start recovers alpha and n within a few per cent (K_s is the flattest direction)."""
    from phys_ml.stages.rre.model import residual

    g = Grid(1, 1, 20, 25.0, 25.0, 5.0)
    times = np.arange(1, 31) * 3250.0 / 30
    psi = solve(Problem(g, SOIL, np.full(g.shape, -1.0), np.full((1, 1), 0.75 * CM_PER_H)), times,
                Stepping.tight(dt_max=10.0)).psi[:, 0, 0, :]
    dz, dt = 0.25, times[1] - times[0]
    mid = psi[1:-1, 1:-1]
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    zero = t(np.zeros_like(mid))
    d = {"psi": t(mid), "psi_t": t((psi[2:, 1:-1] - psi[:-2, 1:-1]) / (2 * dt)),
         "psi_z": t((psi[1:-1, 2:] - psi[1:-1, :-2]) / (2 * dz)),
         "psi_zz": t((psi[1:-1, 2:] - 2 * mid + psi[1:-1, :-2]) / dz**2),
         "psi_x": zero, "psi_y": zero, "psi_xx": zero, "psi_yy": zero}
    soil = SoilParams(VanGenuchten(alpha=0.045, n=1.7, k_s=0.006)).double()
    opt = torch.optim.Adam(soil.parameters(), 0.01)
    for _ in range(400):
        opt.zero_grad()
        (residual(d, soil.soil()) / 8.2e-5).pow(2).mean().backward()
        opt.step()
    v = soil.values()
    assert abs(v["alpha"] / SOIL.alpha - 1) < 0.06 and abs(v["n"] / SOIL.n - 1) < 0.03
    assert abs(np.log(v["k_s"] / SOIL.k_s)) < abs(np.log(0.006 / SOIL.k_s))
