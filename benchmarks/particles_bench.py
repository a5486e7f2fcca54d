"""Speed figures of the particle study: simulations per second and training time per epoch.

Run: OMP_NUM_THREADS=1 python benchmarks/particles_bench.py [--threads N] [--device cpu|cuda]
Prints one line per figure; nothing is written.
"""

from __future__ import annotations

import argparse
import time

import torch

from phys_ml.stages.common.runtime import resolve_device
from phys_ml.stages.particles import fitting
from phys_ml.stages.particles.datasets import Task2Spec, Task3Spec, make_task2, make_task3
from phys_ml.stages.particles.simulator import Physics


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    gen = torch.Generator().manual_seed(0)

    # ---- simulation throughput (float64, dt = 1e-3, the default params)
    n2 = 2000
    d2, t = _timed(lambda: make_task2(n2, Task2Spec(velocity_std=1.5), Physics(coupling=1.5), gen))
    print(f"task 2 simulation (5 charges, t = 1.5, 1500 steps): {n2 / t:,.0f} simulations/s ({t:.2f} s for {n2})")
    spec3 = Task3Spec(start_distance=3.0, speed_min=0.3, speed_max=0.6, cont_min=20, cont_max=60)
    n3 = 200
    d3, t = _timed(lambda: make_task3(n3, spec3, Physics(softening=0.1), gen))
    steps = d3["traj"].shape[1] * 100
    print(f"task 3 simulation (1 moving + 3 fixed, {steps} steps): {n3 / t:,.1f} simulations/s ({t:.2f} s for {n3})")

    # ---- training time per epoch (one epoch each, after a warm-up epoch)
    f = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
    data = fitting.Task2Data(f(d2["pos0"]), f(d2["vel0"]), f(d2["charges"]), f(d2["targets"]))
    val = data.head(200)
    adam = {"name": "adam", "lr": 1e-3}
    for batch in (8, 32):
        _, t = _timed(lambda: fitting.train_mlp(data, val, 0, optimizer=adam, epochs=2, batch_size=batch, seed=0))
        print(f"MLP epoch, {n2} sims, batch {batch}: {t / 2:.3f} s  (10,000 sims: ~{5 * t / 2:.2f} s)")
    _, t = _timed(lambda: fitting.train_gnn(data, val, (0.5, 1.0, 1.5), hidden=64, layers=2, softening=0.05,
                                           optimizer=adam, epochs=2, batch_size=64, seed=0))
    print(f"graph network epoch, {n2} sims, hidden 64, batch 64: {t / 2:.3f} s  (10,000 sims: ~{5 * t / 2:.2f} s)")

    traj = torch.as_tensor(d3["traj"], dtype=torch.float32, device=device)
    lengths = torch.as_tensor(d3["lengths"], device=device)
    seq = fitting.SeqData(traj[:, : int(lengths.max())], lengths, f(d3["charges"]), traj[:, :60],
                          torch.full_like(lengths, 60))
    sgd = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
    for hidden in (64, 256):
        _, t = _timed(lambda: fitting.train_charge_lstm(seq, seq, hidden=hidden, fc=256, with_velocity=True,
                                                       sample_dt=0.1, optimizer=sgd, epochs=1, batch_size=32, seed=0))
        print(f"task 3.1 LSTM epoch, {n3} sequences, hidden {hidden}: {t:.2f} s  (800 sequences: ~{4 * t:.1f} s)")
        _, t = _timed(lambda: fitting.train_continuation(seq, seq, cell="gru", residual=False, hidden=hidden, layers=2,
                                                        fc=256, sample_dt=0.1, optimizer=sgd, epochs=1,
                                                        batch_size=64, seed=0))
        print(f"task 3.2 GRU epoch, {n3} sequences (60-step roll-out), hidden {hidden}: {t:.2f} s  "
              f"(150 sequences: ~{0.75 * t:.1f} s)")


if __name__ == "__main__":
    main()
