"""Evaluation of the amortized posterior, called by the groundwater `evaluate` stage (reads, computes, writes).

For both reference fields: Table-1 metrics of the flow, errors with
fewer observed steps from the same model, posterior-predictive heads (MODFLOW runs of posterior draws). Over the
test split: R^2 of the posterior means per parameter (paper Fig. 8), mean LPP and the calibration curve
(empirical vs nominal coverage). All metrics through `metrics.py`, the same as the smoother's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.context import StageContext

from . import flow_plots
from .flow_stage import MODEL_FILE, flow_config, load_model, posterior_samples, read_split, set_threads
from .metrics import coverage_curve, log_predictive_probability, r2_per_parameter, summarize
from .observations import N_STEPS, N_WELLS


def _truncate(mask: np.ndarray, steps: int) -> np.ndarray:
    out = mask.copy()
    out[:, steps:] = False
    return out


def evaluate_flow(ctx: StageContext, refs: dict, ies_heads: dict[str, np.ndarray],
                  predictive_runner) -> tuple[dict, dict]:
    """(metrics, per-reference posterior samples) of the trained flow; writes its figures.

    ``ies_heads``: reference -> the smoother's posterior heads (N, 325), drawn beside the flow's;
    ``predictive_runner``: a callable lnk (n, 706) -> (heads (n, 325), ok (n,)) through the MODFLOW runner.
    """
    from .pipeline import REFERENCES, _table1_metrics

    cfg = flow_config(ctx)
    set_threads(cfg)
    ev = cfg.evaluate
    model, _ = load_model(ctx.task_dir / MODEL_FILE)
    fig_dir = ctx.task_dir / "figures"
    full = np.ones((N_WELLS, N_STEPS), dtype=bool)
    metrics: dict[str, float | int] = {}
    samples_by_ref: dict[str, np.ndarray] = {}
    for r, name in enumerate(REFERENCES):
        truth = refs[name]["lnk"]
        obs = refs[name]["heads_obs"].reshape(N_WELLS, N_STEPS)
        posterior_samples(model, obs, full, 10, seed=0)  # warm-up, so the timing below is of sampling alone
        t0 = time.perf_counter()
        samples = posterior_samples(model, obs, full, ev.n_samples, seed=cfg.seed + r)
        metrics[f"flow_{name}_sample_s"] = round(time.perf_counter() - t0, 3)
        samples_by_ref[name] = samples
        metrics.update({f"flow_{name}_{k}": v for k, v in _table1_metrics(samples, truth).items()})
        for steps in ev.steps:
            draws = posterior_samples(model, obs, _truncate(full, steps), ev.n_samples_test, seed=cfg.seed + 100)
            metrics[f"flow_{name}_relative_error_steps{steps}"] = summarize(draws, truth)["relative_error"]
        flow_plots.field_panels_flow(truth, samples, f"{name}: amortized posterior (flow)",
                                     fig_dir / f"flow_fields_{name}.png")
        if ev.n_predictive:
            pred, ok = predictive_runner(samples[: ev.n_predictive])
            clean = refs[name]["heads_clean"]
            metrics[f"flow_{name}_predictive_failed"] = int((~ok).sum())
            metrics[f"flow_{name}_predictive_rmse"] = float(np.sqrt(np.mean((pred[ok].mean(0) - clean) ** 2)))
            lo, hi = np.percentile(pred[ok], [2.5, 97.5], axis=0)
            metrics[f"flow_{name}_predictive_coverage95"] = float(np.mean((clean >= lo) & (clean <= hi)))
            flow_plots.head_bands_compare(pred[ok], ies_heads.get(name), clean, refs[name]["heads_obs"],
                                          f"{name}: posterior predictive heads, flow vs smoother",
                                          fig_dir / f"flow_heads_{name}.png")
    metrics.update(_test_split(ctx, model, cfg, fig_dir))
    history, _ = artifacts.read_parquet(ctx.task_dir / "flow_history.parquet")
    flow_plots.training_curve(history.to_pydict(), fig_dir / "flow_training.png")
    return metrics, samples_by_ref


def _test_split(ctx: StageContext, model, cfg, fig_dir: Path) -> dict:
    """Posterior of every test-split data set (fresh seeded noise): R^2, LPP, calibration, errors vs steps."""
    from .pipeline import _configs

    ev = cfg.evaluate
    gen_noise = _configs(ctx)[1].noise_sd
    _, lnk, heads = read_split(ctx.task_dir, "test")
    rng = np.random.default_rng([cfg.seed, 8])
    levels = np.asarray(ev.levels)
    full = np.ones((N_WELLS, N_STEPS), dtype=bool)
    means, lpps, curves = [], [], []
    errors = {s: [] for s in ev.steps}
    for k, (truth, clean) in enumerate(zip(lnk, heads)):
        obs = clean + gen_noise * rng.standard_normal(clean.shape)
        draws = posterior_samples(model, obs, full, ev.n_samples_test, seed=cfg.seed + 1000 + k)
        mean, sd = draws.mean(0), draws.std(0, ddof=1)
        means.append(mean)
        lpps.append(log_predictive_probability(mean, sd, truth))
        curves.append(coverage_curve(draws, truth, levels))
        for steps in ev.steps:
            if steps == N_STEPS:
                errors[steps].append(summarize(draws, truth)["relative_error"])
                continue
            short = posterior_samples(model, obs, _truncate(full, steps), ev.n_samples_test, seed=cfg.seed + 2000 + k)
            errors[steps].append(summarize(short, truth)["relative_error"])
    r2 = r2_per_parameter(np.array(means), lnk)
    curve = np.mean(curves, axis=0)
    out: dict[str, float | int] = {"flow_test_n_sets": len(lnk), "flow_test_mean_lpp": float(np.mean(lpps)),
                                   "flow_test_r2_median": float(np.median(r2)),
                                   "flow_test_r2_share_above_0.8": float(np.mean(r2 > 0.8)),
                                   "flow_test_r2_share_above_0.5": float(np.mean(r2 > 0.5))}
    out.update({f"flow_test_coverage{round(100 * lv)}": float(c) for lv, c in zip(levels, curve)})
    out.update({f"flow_test_relative_error_steps{s}": float(np.mean(v)) for s, v in errors.items()})
    flow_plots.calibration(levels, np.array(curves), fig_dir / "flow_calibration.png")
    flow_plots.r2_map(r2, fig_dir / "flow_r2.png")
    flow_plots.errors_vs_steps({s: np.array(v) for s, v in errors.items()}, fig_dir / "flow_steps.png")
    return out
