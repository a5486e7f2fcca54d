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

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.config import parse_config
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import Interrupted, RunFailed
from phys_ml.stages.common.progress import print_summary
from phys_ml.stages.common.timings import Stopwatch, record_timing

from . import evaluation, freyberg, store
from .config import FlowConfig, GenerateConfig, GLMConfig, ModelConfig
from .flow import log_prob_z, posterior_samples
from .glm import ForwardFailed, ReducedPrior, extend_modes, gauss_newton, jacobian
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


def _inputs(ctx: StageContext):
    """What the glm and refine stages share: configs, the prior, the data sets, weights, the prior Jacobian."""
    model_cfg, gen_cfg, cfg, params = _configs(ctx)
    flow_cfg = parse_config(FlowConfig, ctx.params, f"{TASK}.flow")
    sets = store.comparison_sets(ctx.task_dir, cfg.n_test, gen_cfg.noise_sd, cfg.seed)
    weights = np.full(store.N_OBS_CELLS * store.N_TIMES, 1.0 / gen_cfg.noise_sd)
    jac0 = store.read_prior_jacobian(ctx.task_dir)[0] if cfg.extend else None
    return model_cfg, cfg, params, flow_cfg, reduced_prior(gen_cfg), sets, weights, jac0


def _over_sets(ctx: StageContext, stage: str, model_cfg: ModelConfig, cfg: GLMConfig, sets: list[dict],
               one: Callable) -> tuple[list[dict], Stopwatch]:
    """``one(forward, i, dataset) -> row`` on every data set, MODFLOW through one runner; Ctrl-C keeps nothing."""
    rows, watch = [], Stopwatch()
    try:
        with open_analysis_runner(model_cfg, cfg) as pool, watch(f"{stage}_wall_s"):
            forward = checked_forward(pool, f"{TASK} {stage}")
            for i, s in enumerate(sets):
                rows.append(one(forward, i, s))
                ctx.console.print(f"{TASK} {stage} {s['name']}: {evaluation.row_line(rows[-1])}", highlight=False)
    except KeyboardInterrupt:
        raise _interrupted(f"the {stage} stage") from None
    return rows, watch


def train_glm(ctx: StageContext) -> None:
    """The linear analysis on every data set of the comparison: glm/map.parquet."""
    model_cfg, cfg, params, flow_cfg, prior, sets, weights, jac0 = _inputs(ctx)
    settings = cfg.map.settings()

    def one(forward, i: int, s: dict) -> dict:
        try:
            lap = gauss_newton(forward, prior, s["heads_obs"], weights, np.zeros(0), settings)
            if jac0 is not None:
                lap, _ = extend_modes(forward, prior, s["heads_obs"], weights, lap, jac0)
        except ForwardFailed as exc:
            raise RunFailed(f"{TASK} glm, {s['name']}: {exc}") from None
        rng = np.random.default_rng([cfg.seed, 1, i])
        z = lap.sample_z(cfg.n_draws, rng, prior.mean.size)
        check = run_draws(forward, prior, z, lap.log_q(z), s["heads_obs"], weights)
        samples = prior.lnk(lap.sample_z(flow_cfg.evaluate.n_samples, rng, prior.mean.size))
        return evaluation.laplace_row(s, lap, prior, samples, check, cfg.n_draws)

    rows, watch = _over_sets(ctx, "glm", model_cfg, cfg, sets, one)
    store.write_analysis(store.analysis_path(ctx.task_dir, "map"), rows, stage="glm", seed=cfg.seed,
                         params={**params, **_recorded(cfg, "seed", "dvclose", "n_test", "n_draws", "extend", "map"),
                                 "n_samples": flow_cfg.evaluate.n_samples}, extra={"n_test": cfg.n_test})
    _record(ctx, "glm", rows, watch)


def refined_samples(res, prior: ReducedPrior, lnk_flow: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The posterior a refinement keeps: the RML members, or (no RML updates) as many Laplace draws as the flow
    drew, or the flow's draws after a fallback."""
    if not res.accepted:
        return lnk_flow
    if res.ensemble is not None:
        return res.ensemble.lnk_samples(prior)
    return prior.lnk(res.laplace.sample_z(len(lnk_flow), rng, prior.mean.size))


def train_refine(ctx: StageContext) -> None:
    """Flow + refinement on every data set of the comparison, the flow's own rows beside: glm/refine.parquet."""
    model_cfg, cfg, params, flow_cfg, prior, sets, weights, jac0 = _inputs(ctx)
    if flow_cfg.threads > 0:
        torch.set_num_threads(flow_cfg.threads)
    model, _ = store.load_model(ctx.task_dir / store.MODEL_FILE)
    full = np.ones(HEADS_SHAPE, dtype=bool)

    def one(forward, i: int, s: dict) -> dict:
        obs = s["heads_obs"].reshape(HEADS_SHAPE)
        lnk_flow = posterior_samples(model, obs, full, flow_cfg.evaluate.n_samples, seed=cfg.seed + i)
        z_flow = prior.z(lnk_flow)
        log_q = log_prob_z(model, z_flow[: cfg.n_draws], obs, full)
        rng = np.random.default_rng([cfg.seed, 2, i])
        res = refine(forward, prior, s["heads_obs"], weights, z_flow, log_q, cfg.refine.settings(), rng,
                     cfg.refine_max_misfit, fixed=jac0, rml_iterations=cfg.refine_rml_iterations)
        return evaluation.refine_row(s, res, prior, lnk_flow, refined_samples(res, prior, lnk_flow, rng),
                                     cfg.n_draws)

    rows, watch = _over_sets(ctx, "refine", model_cfg, cfg, sets, one)
    store.write_analysis(store.analysis_path(ctx.task_dir, "refine"), rows, stage="refine", seed=cfg.seed,
                         params={**params, "n_samples": flow_cfg.evaluate.n_samples, **_recorded(
                             cfg, "seed", "dvclose", "n_test", "n_draws", "extend", "refine", "refine_max_misfit")},
                         extra={"n_test": cfg.n_test})
    _record(ctx, "refine", rows, watch)


def _record(ctx: StageContext, stage: str, rows: list[dict], watch: Stopwatch) -> None:
    runs = sum(r["n_runs"] for r in rows)
    wall = next(iter(watch.seconds.values()))
    record_timing(ctx.data_dir, TASK, stage, {**watch.seconds, "n_runs": runs,
                                              "runs_per_s": round(runs / wall, 2) if wall > 0 else None})
    print_summary(ctx.console, f"{TASK} {stage}", {"data sets": len(rows), "MODFLOW runs": runs,
                                                   "runs per data set (max)": max(r["n_runs"] for r in rows)})


def comparison(ctx: StageContext) -> dict:
    """The metrics of every method on the comparison data sets and of the information in the heads (for
    `evaluate`); parts whose artifacts are missing are left out."""
    _, gen_cfg, cfg, _ = _configs(ctx)
    read = lambda method: (store.read_analysis(store.analysis_path(ctx.task_dir, method))[0]  # noqa: E731
                           if store.analysis_path(ctx.task_dir, method).is_file() else None)
    sets = store.comparison_sets(ctx.task_dir, cfg.n_test, gen_cfg.noise_sd, cfg.seed)
    p = gen_cfg.prior
    prior = GaussianPrior.exponential(freyberg.active_centres(), p.mean, p.variance, p.length)
    out = evaluation.comparison_metrics(read("map"), read("refine"), prior, gen_cfg.seed, sets, store.REFERENCES)
    if (ctx.task_dir / store.JACOBIAN_FILE).is_file():
        jac0, _ = store.read_prior_jacobian(ctx.task_dir)
        _, lnk_va, _ = store.read_split(ctx.task_dir, "val")
        train_json = ctx.task_dir / "flow_train.json"
        best = artifacts.read_json(train_json)["best_val_nll"] if train_json.is_file() else None
        out.update(evaluation.information_metrics(jac0, gen_cfg.noise_sd, reduced_prior(gen_cfg).z(lnk_va), best))
    return out


def refine_setup(params: dict, data_dir: Path):
    """The configs, mf6 and prior Jacobian of `infer --refine`, checked before any work (UserErrors)."""
    model_cfg = parse_config(ModelConfig, params, f"{TASK}.model")
    gen_cfg = parse_config(GenerateConfig, params, f"{TASK}.generate")
    cfg = parse_config(GLMConfig, params, f"{TASK}.glm")
    runner_settings(model_cfg)
    find_mf6(model_cfg.mf6)
    jac0 = store.read_prior_jacobian(Path(data_dir) / TASK)[0] if cfg.extend else None
    return model_cfg, gen_cfg, cfg, jac0


def refine_observations(setup, model, heads: np.ndarray, mask: np.ndarray, lnk_flow: np.ndarray,
                        seed: int) -> tuple[np.ndarray, dict]:
    """`infer --refine`: the flow's draws ``lnk_flow`` (S, 706) of one data set refined (`refine.refine`); returns
    S draws of the posterior kept (refined, or the flow's after a fallback) and what happened."""
    model_cfg, gen_cfg, cfg, jac0 = setup
    prior = reduced_prior(gen_cfg)
    d = np.nan_to_num(np.where(mask, heads, 0.0)).reshape(-1)
    weights = np.where(mask.reshape(-1), 1.0 / gen_cfg.noise_sd, 0.0)
    z_flow = prior.z(lnk_flow)
    log_q = log_prob_z(model, z_flow[: cfg.n_draws], heads, mask)
    rng = np.random.default_rng([seed, 2])
    try:
        with open_analysis_runner(model_cfg, cfg) as pool:
            res = refine(checked_forward(pool, f"{TASK} infer --refine"), prior, d, weights, z_flow, log_q,
                         cfg.refine.settings(), rng, cfg.refine_max_misfit, fixed=jac0,
                         rml_iterations=cfg.refine_rml_iterations)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; nothing was written: rerun `phys-ml groundwater infer --refine`") from None
    return refined_samples(res, prior, lnk_flow, rng), {
        "refined": res.accepted, "refine_reason": res.reason, "refine_modflow_runs": res.n_runs,
        "refine_rml_members": None if res.ensemble is None else int(res.ensemble.ok.sum()),
        "predictive_mean_heads_rmse": res.kept_check.predictive_mean_rmse}
