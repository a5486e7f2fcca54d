"""Learning curve of the amortized posterior: best validation NLL against the number of training simulations.

    python benchmarks/groundwater_learning_curve.py --n-train 1200 2400 [--params params.yaml] [--data-dir data]
        [--threads 1] [--epochs 200]

Trains the flow of `groundwater.flow` (the committed settings, the linear summary included) on the first N pairs
of the training split of `data/groundwater/simulations.parquet`, stops early on the same validation split as the
pipeline, and prints the best validation NLL and the information it captured (the prior's validation NLL minus
the flow's, nats). Needs `phys-ml generate groundwater` and, with the linear summary, `phys-ml train groundwater
jacobian`. Nothing is written: this is a measurement, not a stage.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from phys_ml.stages.common.config import parse_config
from phys_ml.stages.common.params import load_params
from phys_ml.stages.groundwater import freyberg, store
from phys_ml.stages.groundwater.config import FlowConfig, GenerateConfig
from phys_ml.stages.groundwater.flow import AmortizedPosterior
from phys_ml.stages.groundwater.flow_training import train
from phys_ml.stages.groundwater.prior import GaussianPrior


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, nargs="+", required=True)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=None, help="override groundwater.flow.train.epochs")
    args = ap.parse_args()
    params = load_params(args.params)
    cfg = parse_config(FlowConfig, params, "groundwater.flow")
    gen = parse_config(GenerateConfig, params, "groundwater.generate")
    torch.set_num_threads(args.threads)
    task_dir = args.data_dir / "groundwater"
    p = gen.prior
    prior = GaussianPrior.exponential(freyberg.active_centres(), p.mean, p.variance, p.length)
    _, lnk_tr, heads_tr = store.read_split(task_dir, "train")
    _, lnk_va, heads_va = store.read_split(task_dir, "val")
    settings = cfg.settings(gen.noise_sd)
    if args.epochs is not None:
        settings = type(settings)(**{**vars(settings), "epochs": args.epochs})
    f = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    for n in args.n_train:
        torch.manual_seed(cfg.seed)
        x, h = lnk_tr[:n], heads_tr[:n]
        model = AmortizedPosterior(prior.mean, prior.cov, h.mean(0), np.maximum(h.std(0), 1e-3), cfg.sizes())
        if cfg.model.linear_modes > 0:
            model.set_linear_summary(*store.read_prior_jacobian(task_dir), gen.noise_sd, f(h))
        with torch.no_grad():
            z_tr, z_va = model.whitening(f(x)), model.whitening(f(lnk_va))
        prior_nll = float(0.5 * (z_va.double() ** 2).sum(1).mean() + 0.5 * z_va.shape[1] * math.log(2 * math.pi))
        t0 = time.perf_counter()
        state = train(model, z_tr, f(h), z_va, f(heads_va), settings, cfg.seed)
        print(f"n_train {n}: best validation NLL {state.best_val:.2f} at epoch {state.best_epoch} of {state.epoch} "
              f"({state.stopped}); prior {prior_nll:.2f}; information captured {prior_nll - state.best_val:.2f} nats; "
              f"{time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
