"""Simulations per second of the local runner vs the dask runner (LocalCluster) on the same cores, in one run.

    OMP_NUM_THREADS=1 python benchmarks/groundwater_runner_bench.py [--sims 60] [--workers 1 2]

For each worker count: the local thread pool (`simulate.ModelPool`) and a dask `LocalCluster` of that many
one-thread worker processes (`dask_runner.DaskRunner`), each warmed up with one run per worker first (model
written, file cache warm; cluster start-up is reported separately), then timed on the same prior fields.
Prints sims/s, the overhead ratio dask / local (target >= 0.85) and the scaling with worker count.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from phys_ml.stages.groundwater import freyberg
from phys_ml.stages.groundwater.dask_runner import DaskRunner
from phys_ml.stages.groundwater.mf6 import find_mf6, mf6_version
from phys_ml.stages.groundwater.prior import GaussianPrior
from phys_ml.stages.groundwater.simulate import ModelPool


def _timed(runner, lnk: np.ndarray, n_workers: int) -> tuple[float, np.ndarray, int]:
    runner.run(lnk[-n_workers:])  # warm-up: every workspace written and run once
    t0 = time.perf_counter()
    heads, ok, _ = runner.run(lnk)
    return len(lnk) / (time.perf_counter() - t0), heads, int((~ok).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=60)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    exe = find_mf6()
    prior = GaussianPrior.exponential(freyberg.active_centres(), np.log(5.0), 1.0, 1000.0)
    lnk = prior.sample(args.sims, np.random.default_rng(0))
    print(f"mf6 {mf6_version(exe)} at {exe}; {args.sims} prior fields per setting, after a warm-up")
    rates: dict[tuple[str, int], float] = {}
    for n in args.workers:
        with ModelPool(exe, n) as pool:
            rates["local", n], local_heads, local_failed = _timed(pool, lnk, n)
        t0 = time.perf_counter()
        with DaskRunner(exe, n) as runner:
            start = time.perf_counter() - t0
            rates["dask", n], dask_heads, dask_failed = _timed(runner, lnk, n)
        same = np.array_equal(local_heads, dask_heads, equal_nan=True)
        print(f"workers {n}: local {rates['local', n]:6.2f} sims/s ({local_failed} failed), dask LocalCluster "
              f"{rates['dask', n]:6.2f} sims/s ({dask_failed} failed; cluster start {start:.1f} s); "
              f"dask / local = {rates['dask', n] / rates['local', n]:.3f} (target >= 0.85); identical heads: {same}")
    base = min(args.workers)
    for kind in ("local", "dask"):
        scaling = ", ".join(f"{n}: {rates[kind, n] / rates[kind, base]:.2f}x" for n in args.workers)
        print(f"scaling {kind} (vs {base} worker{'s' if base > 1 else ''}): {scaling}")


if __name__ == "__main__":
    main()
