"""rre speed figures: time per P-DL training iteration (full batch / mini-batch 128; forward-mode derivatives,
compiled with torch.compile or eager, vs nested autograd; full batch also with the 2,000 boundary points the
default training adds; the default study network with its physics points, compiled vs eager) and
Richards-solver time for the 20 x 20 x 10 x 30 benchmark.

    python benchmarks/rre_bench.py [--iterations 30] [--no-solver]   (threads: torch's default, or OMP_NUM_THREADS)

Reports wall time and process CPU time per iteration (median of repeats); on a shared machine the CPU time is
the fairer figure. Paper (GPU, TensorFlow): 124 ms full batch, 94 ms mini-batch per Adam iteration.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
import torch

from phys_ml.stages.rre.cases import CaseSpec, run_case
from phys_ml.stages.rre.model import PsiNet
from phys_ml.stages.rre.soil import VanGenuchten
from phys_ml.stages.rre.solver import Grid, Stepping
from phys_ml.stages.rre.train import Boundary, Initial, MassBalance, TrainData, _compiled_losses, losses

SOIL = VanGenuchten()
HI = [25.0, 25.0, 5.0, 3250.0]


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``fn()``."""
    fn()
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(1e3 * (time.perf_counter() - w))
        cpus.append(1e3 * (time.process_time() - c))
    return statistics.median(walls), statistics.median(cpus)


def study_data(g: torch.Generator, hi: torch.Tensor, sensors, psi_obs, bnd: Boundary) -> TrainData:
    """The default study network's physics points: 3,000 collocation, the 2,000 boundary points, 1,000 t = 0 points
    and 300 x 16 water-balance points, the residual time-weighted (rre.train.physics)."""
    t0 = torch.rand(1000, 4, generator=g) * hi
    t0[:, 3] = 0.0
    mass = MassBalance(torch.rand(4800, 4, generator=g) * hi, torch.linspace(0.001, 0.01, 16), -1.0)
    return TrainData(sensors, psi_obs, torch.rand(3000, 4, generator=g) * hi, SOIL, 3250.0, 28.0, boundary=bnd,
                     initial=Initial(t0, -1.0), mass=mass, time_weight=(1.0, 0.5))


def iteration(net, data, opt, sensors, psi_obs, colloc, how: str):
    """One Adam step; ``how``: compiled | eager (forward-mode) | nested (nested reverse-mode autograd)."""
    loss_fn = _compiled_losses() if how == "compiled" else losses
    if how == "nested":
        data = dataclasses.replace(data, derivatives="autograd")

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net, data, sensors, psi_obs, colloc, 1.0, data.boundary, None, data.initial)[0].backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--no-solver", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    hi = torch.tensor(HI)
    sensors = torch.rand(2250, 4, generator=g) * hi
    psi_obs = -30 + 20 * torch.rand(2250, generator=g)
    colloc = torch.rand(10_000, 4, generator=g) * hi
    pts = torch.rand(2000, 4, generator=g) * hi
    pts[:1000, 2] = 0.0  # top face
    bnd = Boundary(pts, torch.full((2000,), 2, dtype=torch.long), torch.full((2000,), 0.75 / 3600), 5.0)
    plain = TrainData(sensors, psi_obs, colloc, SOIL, 3250.0, 28.0)
    with_bnd = dataclasses.replace(plain, boundary=bnd)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float32, network 4-10x5-1")
    for mode, n_m, n_f, data in (("full batch (2,250 + 10,000)", 2250, 10_000, plain),
                                 ("full + 2,000 boundary points", 2250, 10_000, with_bnd),
                                 ("mini-batch 128 (+128 colloc.)", 128, 128, plain)):
        for how in ("compiled", "eager", "nested"):
            net = PsiNet(10, 5, [0, 0, 0, 0], HI, -30.0, 28.0)
            opt = torch.optim.Adam(net.parameters(), 1e-3)
            wall, cpu = timed(iteration(net, data, opt, sensors[:n_m], psi_obs[:n_m], colloc[:n_f], how),
                              args.iterations)
            label = {"compiled": "forward-mode, torch.compile", "eager": "forward-mode, eager",
                     "nested": "nested autograd"}[how]
            print(f"{mode:32s} {label:28s} wall {wall:7.2f} ms   cpu {cpu:7.2f} ms per Adam iteration")
    study = study_data(g, hi, sensors, psi_obs, dataclasses.replace(bnd, axis=torch.arange(2000) % 3))
    for how in ("compiled", "eager"):
        net = PsiNet(20, 4, [0, 0, 0, 0], HI, -30.0, 28.0, log_time=1.0)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        wall, cpu = timed(iteration(net, study, opt, sensors, psi_obs, study.colloc, how), args.iterations)
        label = {"compiled": "forward-mode, torch.compile", "eager": "forward-mode, eager"}[how]
        print(f"{'study net 4x20, default physics':32s} {label:28s} wall {wall:7.2f} ms   cpu {cpu:7.2f} ms per "
              "Adam iteration")
    if not args.no_solver:
        spec = CaseSpec(Grid(20, 20, 10, 25.0, 25.0, 5.0), SOIL, -1.0, 0.75, 3250.0, 30)
        for name, stepping in (("tight", Stepping.tight()), ("mrst-like", Stepping.mrst())):
            w, c = time.perf_counter(), time.process_time()
            sol = run_case(spec, "evaporation", stepping)
            print(f"solver 20x20x10x30 {name:10s} wall {time.perf_counter() - w:6.2f} s   cpu "
                  f"{time.process_time() - c:6.2f} s   {sol.steps} steps, {sol.picard_iterations} Picard iterations")
    print(f"numpy {np.__version__}")


if __name__ == "__main__":
    main()
