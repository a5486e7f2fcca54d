"""Per-step cost of each optimizer relative to Adam on the two-spiral network (prints a table).

    OMP_NUM_THREADS=1 python benchmarks/thermo_bench.py [--steps 500] [--repeats 7] [--members 1 10]

A step is optimizer.step(closure) with the closure computing the BCE of a batch of 25 and its gradients; the
"optimizer only" column subtracts the cost of the closure alone (the thermodynamic optimizers, like Adam and
SGD, evaluate the closure once per step). members > 1 times the batched ensemble of
the thermo task (one network per seed), members = 1 a single 2-100-1 network.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from phys_ml.stages.common.optim import parse_optimizer
from phys_ml.stages.thermo.model import EnsembleMLP
from phys_ml.stages.thermo.train import make_optimizer

SPECS = {"adam": {"name": "adam", "lr": 0.005}, "sgd": {"name": "sgd", "lr": 0.1}, "langevin": {"name": "langevin"},
         "overdamped": {"name": "overdamped"}, "adlala": {"name": "adlala"}, "lol": {"name": "lol"},
         "lala": {"name": "lala"}}


def make_runner(members: int, spec: dict | None):
    """A function doing one step (the closure alone when spec is None)."""
    model = EnsembleMLP(members)
    model.reset([torch.Generator().manual_seed(s) for s in range(members)])
    x, y = torch.randn(members, 25, 2), (torch.rand(members, 25) > 0.5).float()
    opt = make_optimizer(model, parse_optimizer(spec or {"name": "sgd"}), torch.Generator().manual_seed(0))

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(x), y, reduction="none").mean(dim=1).sum()
        loss.backward()
        return loss

    return closure if spec is None else (lambda: opt.step(closure))


def time_all(members: int, steps: int, repeats: int) -> dict[str, float]:
    """Microseconds per step, the best of ``repeats`` rounds; rounds interleave all optimizers, so a change in
    the machine's load hits them alike."""
    runners = {"closure": make_runner(members, None)} | {n: make_runner(members, s) for n, s in SPECS.items()}
    best = dict.fromkeys(runners, float("inf"))
    for run in runners.values():  # warm-up
        for _ in range(steps // 10):
            run()
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(steps):
                run()
            best[name] = min(best[name], (time.perf_counter() - start) / steps * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 10])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, batch 25, network 2-100-1, "
          f"best of {args.repeats} x {args.steps} steps")
    for members in args.members:
        times = time_all(members, args.steps, args.repeats)
        base = times.pop("closure")
        print(f"\nmembers {members}: closure alone (forward + backward) {base:.0f} us")
        print(f"{'optimizer':<11} {'us/step':>8} {'vs adam':>8} {'optimizer only (us)':>20} {'vs adam':>8}")
        for name, t in times.items():
            own, adam_own = t - base, times["adam"] - base
            print(f"{name:<11} {t:8.0f} {t / times['adam']:8.2f} {own:20.0f} {own / adam_own:8.2f}")


if __name__ == "__main__":
    main()
