"""diphoton speed figures: training events/s for each loss and sampling (transform) throughput.

    OMP_NUM_THREADS=2 python benchmarks/diphoton_bench.py [--blocks 10 --hidden 128 --steps 3 --threads 2]

Uses synthetic standardized events (the speed does not depend on their values); one warm-up run per loss
traces the tf.functions, the timed run follows. Prints CPU seconds too, as the wall clock on a shared machine
includes waiting for cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=25_600, help="log-loss and KL batch (MMD/MDMM use 1000)")
    ap.add_argument("--losses", default="log,kl,mmd,mdmm")
    ap.add_argument("--params", type=Path, default=Path(__file__).resolve().parents[1] / "params.yaml",
                    help="diphoton.train of this file gives every setting the flags do not")
    args = ap.parse_args()

    from phys_ml.stages.diphoton import tfenv

    tfenv.setup(0, args.threads)
    from phys_ml.stages.common.params import load_params
    from phys_ml.stages.diphoton.config import TrainConfig
    import tensorflow as tf

    from phys_ml.stages.diphoton import losses
    from phys_ml.stages.diphoton.training import Trainer, build_flow, compiled_transform, sample_transformed

    committed = load_params(args.params)["diphoton"]["train"]
    rng = np.random.default_rng(0)
    n = max(args.batch * args.steps, 20_000)
    mc = rng.standard_normal((n, 6)).astype(np.float32)
    data = (1.1 * rng.standard_normal((n, 6)) + 0.2).astype(np.float32)
    print(f"flow: {args.blocks} MAF blocks x {args.hidden}x{args.hidden}, threads {args.threads}")
    for loss in args.losses.split(","):
        cfg = TrainConfig(**{**committed, "epochs": 1, "max_steps_per_epoch": args.steps, "n_blocks": args.blocks,
                             "hidden_units": [args.hidden, args.hidden], "losses": [loss], "batch_size": args.batch,
                             "kde_data_events": 20_000, "threads": args.threads})
        trainer = Trainer(build_flow(cfg), loss, cfg, mc, data, mc[:2000], data[:2000])
        batches = list(trainer._pairs(trainer.mc, trainer.data, args.steps))
        trainer._step(*batches[0])  # warm-up: traces the step
        wall, cpu = time.perf_counter(), time.process_time()
        for batch in batches:  # the gradient steps alone (the per-epoch validation score is not timed)
            trainer._step(*batch)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        events = args.steps * trainer.batch
        print(f"train {loss:5s} batch {trainer.batch:6d}: {events / wall:9.0f} events/s wall "
              f"({events / cpu:9.0f} per CPU-second)")
        if loss == "kl":  # the KL loss's own part: 1-D KDEs of the batch on the grid, forward and backward
            x = tf.Variable(batches[0][0])

            @tf.function
            def kde_step():
                with tf.GradientTape() as tape:
                    value = losses.kde_kl(trainer.p_data, x, trainer.grid, trainer.bandwidth)
                return tape.gradient(value, x)

            kde_step()
            cpu_kde = time.process_time()
            for _ in range(args.steps):
                kde_step()
            cpu_kde = time.process_time() - cpu_kde
            print(f"  of which the KDEs and KL: {1e3 * cpu_kde / args.steps:.1f} CPU-ms of "
                  f"{1e3 * cpu / args.steps:.1f} per step")
    flow = build_flow(cfg)
    fn = compiled_transform(flow)
    sample_transformed(flow, mc[:2000], seed=0, transform=fn)  # warm-up: traces the transform
    wall, cpu = time.perf_counter(), time.process_time()
    sample_transformed(flow, mc, seed=1, transform=fn)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"sampling (x_c + delta): {len(mc) / wall:9.0f} events/s wall ({len(mc) / cpu:9.0f} per CPU-second)")


if __name__ == "__main__":
    main()
