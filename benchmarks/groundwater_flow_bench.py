"""Speed of the amortized posterior: training samples/s and the time to draw 2,000 x 706 posterior samples.

    python benchmarks/groundwater_flow_bench.py [--params params.yaml] [--profile paper] [--threads 2]

Builds the model of `groundwater.flow.model` (optionally overlaid with a profile) on random stand-in data of the
right shapes (speed does not depend on the values), times `--steps` training steps of `train.batch_size` and
`--repeats` draws of 2,000 samples of one data set, on the CPU and, when present, on CUDA.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from phys_ml.stages.common.config import parse_config
from phys_ml.stages.common.params import deep_merge, load_params
from phys_ml.stages.groundwater import freyberg
from phys_ml.stages.groundwater.config import FlowConfig
from phys_ml.stages.groundwater.flow import AmortizedPosterior, n_parameters
from phys_ml.stages.groundwater.flow_training import nll, observe
from phys_ml.stages.groundwater.prior import GaussianPrior


def bench(cfg: FlowConfig, device: torch.device, steps: int, repeats: int, n_samples: int) -> dict:
    prior = GaussianPrior.exponential(freyberg.active_centres(), np.log(5.0), 1.0, 1000.0)
    heads_mean, heads_sd = np.full((13, 25), 30.0), np.full((13, 25), 2.0)
    torch.manual_seed(0)
    model = AmortizedPosterior(prior.mean, prior.cov, heads_mean, heads_sd, cfg.sizes()).to(device)
    settings = cfg.settings(0.01)
    batch = settings.batch_size
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(batch, model.dim, device=device)
    clean = (30.0 + 2.0 * torch.randn(batch, 13, 25)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        heads, mask = observe(clean, settings, gen)
        loss = nll(model, z, heads, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    step_s = (time.perf_counter() - t0) / steps
    model.eval()
    h, m = clean[0], torch.ones(13, 25, dtype=torch.bool, device=device)
    model.sample_lnk(h, m, n_samples)
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.sample_lnk(h, m, n_samples)
        sync()
        times.append(time.perf_counter() - t0)
    return {"parameters": n_parameters(model), "step_ms": 1e3 * step_s, "train_samples_per_s": batch / step_s,
            "sample_s_median": float(np.median(times)), "sample_s_min": float(np.min(times))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--profile", default=None, help="overlay profiles/<name>.yaml (e.g. paper)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--samples", type=int, default=2000)
    args = ap.parse_args()
    params = load_params(args.params)
    if args.profile:
        params = deep_merge(params, load_params(Path("profiles") / f"{args.profile}.yaml"))
    cfg = parse_config(FlowConfig, params, "groundwater.flow")
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"profile {args.profile or 'default'}: {cfg.model.model_dump()}, batch {cfg.train.batch_size}, "
          f"{args.threads} CPU threads")
    for device in devices:
        r = bench(cfg, device, args.steps, args.repeats, args.samples)
        print(f"{device.type}: {r['parameters']:,} parameters | training step {r['step_ms']:.1f} ms "
              f"({r['train_samples_per_s']:.0f} samples/s) | {args.samples} x 706 samples in "
              f"{r['sample_s_median']:.3f} s (median of {args.repeats}; min {r['sample_s_min']:.3f} s)")


if __name__ == "__main__":
    main()
