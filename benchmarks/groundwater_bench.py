"""Simulations per second of the Freyberg model (MODFLOW 6) for 1..N parallel workers, and one run's time.

    OMP_NUM_THREADS=1 python benchmarks/groundwater_bench.py [--sims 60] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from phys_ml.stages.groundwater import freyberg
from phys_ml.stages.groundwater.mf6 import find_mf6, mf6_version
from phys_ml.stages.groundwater.prior import GaussianPrior
from phys_ml.stages.groundwater.simulate import ModelPool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=60)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    exe = find_mf6()
    prior = GaussianPrior.exponential(freyberg.active_centres(), np.log(5.0), 1.0, 1000.0)
    lnk = prior.sample(args.sims, np.random.default_rng(0))
    print(f"mf6 {mf6_version(exe)} at {exe}; {args.sims} prior fields per setting")
    for n in args.workers:
        with ModelPool(exe, n) as pool:
            pool.run(lnk[:n])  # warm the file cache
            t0 = time.perf_counter()
            _, ok, _ = pool.run(lnk)
            wall = time.perf_counter() - t0
        print(f"workers {n}: {args.sims / wall:6.2f} simulations/s ({wall / args.sims * n:.3f} s per run per "
              f"worker), {int((~ok).sum())} failed; 5,001 runs would take {5001 / (args.sims / wall) / 60:.1f} min")


if __name__ == "__main__":
    main()
