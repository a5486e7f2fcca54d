"""Groundwater stages of the linear analysis and amortize-then-refine (read, call the science, write):

- `phys-ml train groundwater jacobian`: the Jacobian of the heads at the prior mean in the leading prior modes
  (prior_jacobian.parquet): how the data's information spreads over the modes, and the flow's linear summary;
- `phys-ml train groundwater glm`: Gauss-Newton MAP and Laplace posterior from the prior mean (`glm.py`) on every
  data set of the comparison (both references and the first test-split data sets): glm/map.parquet;
- `phys-ml train groundwater refine`: the flow's posterior refined by a guarded Gauss-Newton (`refine.py`) on the
  same data sets: glm/refine.parquet, with the flow's own rows beside it.
Every MODFLOW run goes through the runner (local or dask) with the tight solver tolerance ``glm.dvclose``.
"""

from __future__ import annotations

import numpy as np
import torch

from phys_ml.stages.common.config import parse_config
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import Interrupted, RunFailed
from phys_ml.stages.common.progress import print_summary
from phys_ml.stages.common.timings import Stopwatch, record_timing

from . import evaluation, freyberg, store
from .config import FlowConfig, GenerateConfig, GLMConfig, ModelConfig
from .flow import log_prob_z, posterior_samples
from .glm import ForwardFailed, ReducedPrior, gauss_newton, jacobian
from .mf6 import find_mf6
from .prior import GaussianPrior
from .refine import refine, run_draws
from .runner import checked_forward, open_runner, runner_settings
from .store import HEADS_SHAPE, TASK


def reduced_prior(gen_cfg: GenerateConfig) -> ReducedPrior:
    p = gen_cfg.prior
    prior = GaussianPrior.exponential(freyberg.active_centres(), p.mean, p.variance, p.length)
    return ReducedPrior.from_cov(prior.mean, prior.cov)


def open_analysis_runner(model_cfg: ModelConfig, cfg: GLMConfig):
    """The runner of these analyses: the stage's runner settings, MODFLOW with ``outer_dvclose = cfg.dvclose``."""
    runner_settings(model_cfg)
    return open_runner(model_cfg, find_mf6(model_cfg.mf6), freyberg.Scenario(dvclose=cfg.dvclose))


def _configs(ctx: StageContext):
    model_cfg = parse_config(ModelConfig, ctx.params, f"{TASK}.model")
    gen_cfg = parse_config(GenerateConfig, ctx.params, f"{TASK}.generate")
    cfg = parse_config(GLMConfig, ctx.params, f"{TASK}.glm")
    return model_cfg, gen_cfg, cfg, {"model": model_cfg.artifact_params(), "prior": gen_cfg.prior.model_dump(),
                                     "noise_sd": gen_cfg.noise_sd}


def _recorded(cfg: GLMConfig, *keys: str) -> dict:
    """The glm params a stage uses (its DVC params), for its artifact's metadata."""
    return {"glm": {k: v for k, v in cfg.model_dump().items() if k in keys}}


def _interrupted(what: str) -> Interrupted:
    return Interrupted(f"interrupted; {what} keeps no partial results: rerun `phys-ml train groundwater` with "
                       "the same sub-task to run it again")


def train_jacobian(ctx: StageContext) -> None:
    """dG/dz at the prior mean in ``glm.jacobian_modes`` leading modes (forward differences, one batch)."""
    model_cfg, gen_cfg, cfg, params = _configs(ctx)
    prior = reduced_prior(gen_cfg)
    k = cfg.jacobian_modes
    try:
        with open_analysis_runner(model_cfg, cfg) as pool:
            forward = checked_forward(pool, f"{TASK} jacobian")
            sims, ok = forward(prior.mean[None])
            if not ok[0]:
                raise RunFailed(f"{TASK} jacobian: MODFLOW did not converge at the prior mean")
            jac = jacobian(forward, prior, np.zeros(k), sims[0], cfg.map.fd_step)
    except ForwardFailed as exc:
        raise RunFailed(f"{TASK} jacobian: {exc}") from None
    except KeyboardInterrupt:
        raise _interrupted("the Jacobian") from None
    store.write_prior_jacobian(ctx.task_dir / store.JACOBIAN_FILE, jac, sims[0], seed=cfg.seed,
                               params={**params, **_recorded(cfg, "dvclose", "jacobian_modes"),
                                       "fd_step": cfg.map.fd_step})
    h = (jac / gen_cfg.noise_sd) ** 2
    print_summary(ctx.console, f"{TASK} jacobian", {"modes": k, "MODFLOW runs": k + 1,
                                                     "trace(H) at the prior mean": float(h.sum())})


def train_glm(ctx: StageContext) -> None:
    """The linear analysis on every data set of the comparison: glm/map.parquet."""
    model_cfg, gen_cfg, cfg, params = _configs(ctx)
    flow_cfg = parse_config(FlowConfig, ctx.params, f"{TASK}.flow")
    prior = reduced_prior(gen_cfg)
    sets = store.comparison_sets(ctx.task_dir, cfg.n_test, gen_cfg.noise_sd, cfg.seed)
    weights = np.full(store.N_OBS_CELLS * store.N_TIMES, 1.0 / gen_cfg.noise_sd)
    settings = cfg.map.settings()
    jac0, _ = store.read_prior_jacobian(ctx.task_dir)
    rows, watch = [], Stopwatch()
    try:
        with open_analysis_runner(model_cfg, cfg) as pool, watch("glm_wall_s"):
            forward = checked_forward(pool, f"{TASK} glm")
            for i, s in enumerate(sets):
                try:
                    lap = gauss_newton(forward, prior, s["heads_obs"], weights, np.zeros(0), settings, fixed=jac0)
                except ForwardFailed as exc:
                    raise RunFailed(f"{TASK} glm, {s['name']}: {exc}") from None
                rng = np.random.default_rng([cfg.seed, 1, i])
                z = lap.sample_z(cfg.n_draws, rng, prior.mean.size)
                check = run_draws(forward, prior, z, lap.log_q(z), s["heads_obs"], weights)
                samples = prior.lnk(lap.sample_z(flow_cfg.evaluate.n_samples, rng, prior.mean.size))
                rows.append(evaluation.laplace_row(s, lap, prior, samples, check, cfg.n_draws))
                ctx.console.print(f"{TASK} glm {s['name']}: {evaluation.row_line(rows[-1])}", highlight=False)
    except KeyboardInterrupt:
        raise _interrupted("the linear analysis") from None
    store.write_analysis(store.analysis_path(ctx.task_dir, "map"), rows, stage="glm", seed=cfg.seed,
                         params={**params, **_recorded(cfg, "seed", "dvclose", "n_test", "n_draws", "map"),
                                 "n_samples": flow_cfg.evaluate.n_samples}, extra={"n_test": cfg.n_test})
    _record(ctx, "glm", rows, watch)


def train_refine(ctx: StageContext) -> None:
    """Flow + refinement on every data set of the comparison, the flow's own rows beside: glm/refine.parquet."""
    model_cfg, gen_cfg, cfg, params = _configs(ctx)
    flow_cfg = parse_config(FlowConfig, ctx.params, f"{TASK}.flow")
    if flow_cfg.threads > 0:
        torch.set_num_threads(flow_cfg.threads)
    prior = reduced_prior(gen_cfg)
    model, _ = store.load_model(ctx.task_dir / store.MODEL_FILE)
    sets = store.comparison_sets(ctx.task_dir, cfg.n_test, gen_cfg.noise_sd, cfg.seed)
    weights = np.full(store.N_OBS_CELLS * store.N_TIMES, 1.0 / gen_cfg.noise_sd)
    full = np.ones(HEADS_SHAPE, dtype=bool)
    jac0, _ = store.read_prior_jacobian(ctx.task_dir)
    rows, watch = [], Stopwatch()
    try:
        with open_analysis_runner(model_cfg, cfg) as pool, watch("refine_wall_s"):
            forward = checked_forward(pool, f"{TASK} refine")
            for i, s in enumerate(sets):
                obs = s["heads_obs"].reshape(HEADS_SHAPE)
                lnk_flow = posterior_samples(model, obs, full, flow_cfg.evaluate.n_samples, seed=cfg.seed + i)
                z_flow = prior.z(lnk_flow)
                log_q = log_prob_z(model, z_flow[: cfg.n_draws], obs, full)
                rng = np.random.default_rng([cfg.seed, 2, i])
                res = refine(forward, prior, s["heads_obs"], weights, z_flow, log_q, cfg.refine.settings(), rng,
                             fixed=jac0)
                refined = (prior.lnk(res.laplace.sample_z(flow_cfg.evaluate.n_samples, rng, prior.mean.size))
                           if res.accepted else lnk_flow)
                rows.append(evaluation.refine_row(s, res, prior, lnk_flow, refined, cfg.n_draws))
                ctx.console.print(f"{TASK} refine {s['name']}: {res.reason}; {evaluation.row_line(rows[-1])}",
                                  highlight=False)
    except KeyboardInterrupt:
        raise _interrupted("the refinement") from None
    store.write_analysis(store.analysis_path(ctx.task_dir, "refine"), rows, stage="refine", seed=cfg.seed,
                         params={**params, **_recorded(cfg, "seed", "dvclose", "n_test", "n_draws", "refine"),
                                 "n_samples": flow_cfg.evaluate.n_samples},
                         extra={"n_test": cfg.n_test})
    _record(ctx, "refine", rows, watch)


def _record(ctx: StageContext, stage: str, rows: list[dict], watch: Stopwatch) -> None:
    runs = sum(r["n_runs"] for r in rows)
    wall = next(iter(watch.seconds.values()))
    record_timing(ctx.data_dir, TASK, stage, {**watch.seconds, "n_runs": runs,
                                              "runs_per_s": round(runs / wall, 2) if wall > 0 else None})
    print_summary(ctx.console, f"{TASK} {stage}", {"data sets": len(rows), "MODFLOW runs": runs,
                                                   "runs per data set (max)": max(r["n_runs"] for r in rows)})
