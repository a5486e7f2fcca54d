"""Groundwater stages (read, call the science, write): `generate` (prior simulations), `train` (the amortized
flow, `flow`, and the ensemble smoother, `ies`), `evaluate` (metrics.json and figures).

Artifacts and their schemas: `store.py`. Counts go to the JSON outputs; wall times only to data/timings/.
"""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import torch

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.config import parse_config
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import Interrupted, RunFailed, UserError
from phys_ml.stages.common.figures import save_png
from phys_ml.stages.common.progress import print_summary, track
from phys_ml.stages.common.runtime import resolve_device
from phys_ml.stages.common.timings import Stopwatch, record_timing

from . import analysis, evaluation, freyberg, plots, store
from .config import FlowConfig, GenerateConfig, IESConfig, ModelConfig, PriorConfig
from .flow import AmortizedPosterior, n_parameters
from .flow_training import NonFiniteLoss, TrainState, observe, train as train_flow_model, validation_loss
from .flow_training import choose_linear_rest, validation_observations
from .ies import distance_taper, run_ies
from .mf6 import find_mf6, mf6_version
from .prior import GaussianPrior
from .runner import checked_forward, open_runner, runner_settings
from .store import REFERENCES, TASK

def _configs(ctx: StageContext) -> tuple[ModelConfig, GenerateConfig]:
    model = parse_config(ModelConfig, ctx.params, f"{TASK}.model")
    runner_settings(model)  # a bad $PHYS_ML_GW_RUNNER fails before any work
    return model, parse_config(GenerateConfig, ctx.params, f"{TASK}.generate")


def _prior(cfg: PriorConfig) -> GaussianPrior:
    return GaussianPrior.exponential(freyberg.active_centres(), cfg.mean, cfg.variance, cfg.length)


def generate(ctx: StageContext, subtask: str | None = None) -> None:
    """Prior draws of ln K, MODFLOW runs in parallel workers, resumable chunks, splits, two reference fields."""
    model_cfg, cfg = _configs(ctx)
    exe = find_mf6(model_cfg.mf6)
    prior = _prior(cfg.prior)
    rng = np.random.default_rng([cfg.seed, 0])
    lnk = prior.sample(cfg.n_sims, rng)
    if cfg.extra_train:  # the same stream continued: the first n_sims draws do not depend on extra_train
        lnk = np.concatenate([lnk, prior.sample(cfg.extra_train, rng)])
    ref_lnk = prior.sample(len(REFERENCES), np.random.default_rng([cfg.seed, 1]))
    params = {"model": model_cfg.artifact_params(), "generate": cfg.model_dump()}
    chunks = store.ChunkStore(ctx.task_dir / "chunks", cfg.model_dump(), len(lnk), cfg.chunk_size)
    todo = chunks.todo()
    watch = Stopwatch()
    try:
        with open_runner(model_cfg, exe) as pool, watch("sim_wall_s"):
            for c, lo, hi in track(todo, f"{TASK}: simulation chunks of {cfg.chunk_size}", total=len(todo)):
                heads, ok, reasons = pool.run(lnk[lo:hi])
                chunks.write(c, lo, lnk[lo:hi], heads, ok, reasons, cfg.seed, params)
            ref_heads, ref_ok, ref_reasons = pool.run(ref_lnk)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; rerun resumes from {chunks.folder} ({chunks.n_kept()} of "
                          f"{len(chunks.chunks)} chunks kept)") from None
    table = chunks.read_checked(ref_reasons)
    if not ref_ok.all():
        raise RunFailed(f"a reference field did not run: {ref_reasons}")
    ok = table.column("ok").to_numpy(zero_copy_only=False)
    failed, good = table.filter(pa.array(~ok)), table.filter(pa.array(ok))
    failures = store.failure_counts(failed.column("reason").to_pylist())
    base = good.column("sim_id").to_numpy() < cfg.n_sims  # the rest: extra_train, all training
    if base.sum() <= cfg.n_train + cfg.n_val:
        raise RunFailed(f"only {int(base.sum())} of {cfg.n_sims} simulations succeeded: too few for the splits")
    split = np.full(good.num_rows, "train", dtype=object)
    split[base] = store.assign_splits(int(base.sum()), cfg.n_train, cfg.n_val)
    layout = store.layout(cfg.noise_sd)
    extra = {**layout, "noise": "heads are noise-free; add N(0, noise_sd^2) for observations",
             "n_failed": int((~ok).sum()), "failed_sim_ids": failed.column("sim_id").to_pylist(),
             "failure_reasons": failures, "mf6_version": mf6_version(exe)}
    store.write_simulations(ctx.task_dir / "simulations.parquet", good, split, seed=cfg.seed, params=params,
                            extra=extra)
    noise = cfg.noise_sd * np.random.default_rng([cfg.seed, 2]).standard_normal(
        (len(REFERENCES), store.N_OBS_CELLS * store.N_TIMES))
    clean = store.to_obs(ref_heads)
    store.write_references(ctx.task_dir / "references.parquet", ref_lnk, clean, clean + noise, seed=cfg.seed,
                           params=params, extra=layout)
    shutil.rmtree(chunks.folder)
    counts = {f"n_{s}": int((split == s).sum()) for s in ("train", "val", "test")}
    summary = {"n_sims": len(lnk), "n_ok": good.num_rows, "n_failed": int((~ok).sum()),
               "failure_reasons": failures, **counts}
    artifacts.write_json(ctx.task_dir / "generate.json", summary)
    n_run = sum(hi - lo for _, lo, hi in todo)
    wall = watch.seconds["sim_wall_s"]
    record_timing(ctx.data_dir, TASK, "generate", {
        **watch.seconds, "n_run_this_time": n_run, "n_chunks_resumed": len(chunks.chunks) - len(todo),
        "sims_per_s": round(n_run / wall, 2) if wall > 0 else None, "n_workers": pool.n_workers,
        "runner": getattr(pool, "name", "local")})
    print_summary(ctx.console, f"{TASK} generate", {
        "mf6": f"{exe} ({mf6_version(exe)})", "simulations ok / failed": f"{good.num_rows} / {int((~ok).sum())}",
        "train / val / test": f"{counts['n_train']} / {counts['n_val']} / {counts['n_test']}",
        "chunks resumed": len(chunks.chunks) - len(todo)})


def _ies(ctx: StageContext) -> None:
    """The smoother on both reference fields for each localization setting: ies/<setting>/<ref>.parquet, ies.json."""
    model_cfg, gen_cfg = _configs(ctx)
    cfg = parse_config(IESConfig, ctx.params, f"{TASK}.ies")
    exe = find_mf6(model_cfg.mf6)
    prior = _prior(gen_cfg.prior)
    refs = store.read_references(ctx.task_dir)
    params = {"model": model_cfg.artifact_params(), "prior": gen_cfg.prior.model_dump(),
              "noise_sd": gen_cfg.noise_sd, "ies": cfg.model_dump()}
    summary: dict = {"settings": ",".join(cfg.localization)}
    out_dir, staging = ctx.task_dir / "ies", ctx.task_dir / ".ies.partial"
    shutil.rmtree(staging, ignore_errors=True)
    watch = Stopwatch()
    try:
        with open_runner(model_cfg, exe) as pool:
            forward = checked_forward(pool, f"{TASK} ies")
            for setting in cfg.localization:
                xy = freyberg.active_centres()
                wells = np.repeat(xy[freyberg.obs_active_positions()], store.N_TIMES, axis=0)
                taper = distance_taper(xy, wells, cfg.distance_length) if setting == "distance" else None
                for r, name in enumerate(REFERENCES):
                    rng = np.random.default_rng([cfg.seed, r])  # the same prior ensemble for every setting
                    theta0 = prior.sample(cfg.n_ens, rng)
                    with watch(f"{setting}_{name}_wall_s"):
                        res = run_ies(theta0, refs[name]["heads_obs"], gen_cfg.noise_sd, forward, cfg, rng,
                                      setting, base=prior.mean if cfg.use_base else None, taper=taper,
                                      on_iteration=lambda rec, n=name, s=setting: ctx.console.print(
                                          f"{TASK} ies {s} {n}: {rec.line()}", highlight=False))
                    store.write_ensemble(store.ensemble_path(staging, setting, name), res, seed=cfg.seed,
                                         params=params, extra={"reference": name, "localization": setting})
                    summary.update(res.summary(f"{setting}_{name}"))
    except KeyboardInterrupt:
        shutil.rmtree(staging, ignore_errors=True)
        raise Interrupted(f"interrupted; {out_dir} is unchanged and the smoother keeps no partial results: "
                          "rerun `phys-ml groundwater ies` to run it again") from None
    shutil.rmtree(out_dir, ignore_errors=True)  # no stale ensembles of settings that are no longer run
    staging.rename(out_dir)
    artifacts.write_json(ctx.task_dir / "ies.json", summary)
    record_timing(ctx.data_dir, TASK, "ies", {**watch.seconds, **{
        k.replace("_wall_s", "_runs_per_s"): round(summary[k.replace("_wall_s", "_n_runs")] / v, 2)
        for k, v in watch.seconds.items() if v > 0}})
    print_summary(ctx.console, f"{TASK} ies", summary)


def _train_flow(ctx: StageContext) -> None:
    """Summary network + conditional flow on the training split, early stopping on the validation split."""
    cfg = parse_config(FlowConfig, ctx.params, f"{TASK}.flow")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    _, gen_cfg = _configs(ctx)
    if gen_cfg.n_val < 1:
        raise UserError("groundwater.generate.n_val must be >= 1: the flow stops early on the validation split")
    prior = _prior(gen_cfg.prior)
    _, lnk_tr, heads_tr = store.read_split(ctx.task_dir, "train")
    _, lnk_va, heads_va = store.read_split(ctx.task_dir, "val")
    if len(lnk_tr) < cfg.train.batch_size:
        raise UserError(f"groundwater.flow.train.batch_size ({cfg.train.batch_size}) exceeds the "
                        f"{len(lnk_tr)} training simulations")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = AmortizedPosterior(prior.mean, prior.cov, heads_tr.mean(0), np.maximum(heads_tr.std(0), 1e-3),
                               cfg.sizes()).to(device)
    settings = cfg.settings(gen_cfg.noise_sd)
    tensor = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731
    linearization = None
    rest_candidates = cfg.rest_candidates()
    needed = {"linear_modes": cfg.model.linear_modes,
              "coupling_dims + rest_modes": max((model.n_coupled + min(m, model.dim - model.n_coupled)
                                                 for m, _ in rest_candidates if m), default=0)}
    if max(needed.values()) > 0:
        linearization = store.read_prior_jacobian(ctx.task_dir)
        for name, modes in needed.items():
            if linearization[0].shape[1] < modes:
                raise UserError(f"{TASK}.flow.model.{name} ({modes}) exceeds the {linearization[0].shape[1]} "
                                f"modes of {store.JACOBIAN_FILE}: raise {TASK}.glm.jacobian_modes and rerun "
                                "`phys-ml train groundwater jacobian`")
    if cfg.model.linear_modes > 0:
        model.set_linear_summary(*linearization, gen_cfg.noise_sd, tensor(heads_tr))
    with torch.no_grad():
        z_tr, z_va = model.whitening(tensor(lnk_tr)), model.whitening(tensor(lnk_va))
    params = {"flow": cfg.model_dump(), "prior": gen_cfg.prior.model_dump(), "noise_sd": gen_cfg.noise_sd}
    # a checkpoint belongs to what the flow's epochs depend on (not the evaluation, nor the rest's candidates)
    trained_on = cfg.model_dump(exclude={"evaluate": True, "model": {"rest_modes", "rest_given"}})
    ckpt = store.FlowCheckpoint(ctx.task_dir / store.CHECKPOINT_FILE, store.data_fingerprint(
        {"flow": trained_on, "prior": params["prior"]}, lnk_tr, heads_tr,
        *(() if cfg.model.linear_modes == 0 else (linearization[0][:, :cfg.model.linear_modes], linearization[1]))))
    saved, note = ckpt.load()
    if note:
        ctx.console.print(f"{TASK} flow: {note}", highlight=False)
    state = TrainState.from_dict(saved) if saved else None
    resumed = state.epoch if state else 0

    def on_epoch(s: TrainState) -> None:
        ckpt.save(s.to_dict())
        last = s.history[-1]
        if s.epoch == 1 or s.epoch % max(1, settings.epochs // 10) == 0:
            ctx.console.print(f"{TASK} flow: epoch {s.epoch} train {last['train_loss']:.2f} val "
                              f"{last['val_loss']:.2f} (best {s.best_val:.2f} at {s.best_epoch}) lr {last['lr']:.2e}",
                              highlight=False)

    watch = Stopwatch()
    try:
        with watch("train_wall_s"):
            state = train_flow_model(model, z_tr, tensor(heads_tr), z_va, tensor(heads_va), settings, cfg.seed,
                                     state=state, on_epoch=on_epoch,
                                     progress=lambda r: track(r, f"{TASK}: flow epochs", total=len(r)))
    except NonFiniteLoss as exc:
        kept = f"; last good checkpoint kept at {ckpt.path}" if ckpt.path.is_file() else ""
        raise RunFailed(f"{TASK} flow training stopped: {exc}{kept}") from None
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; rerun resumes from {ckpt.path} (epoch {ckpt.epochs_done()} of "
                          f"{settings.epochs} done)") from None
    flow_val = state.best_val
    rest_table = choose_linear_rest(model, rest_candidates, linearization, gen_cfg.noise_sd, settings, cfg.seed,
                                     tensor(heads_tr), z_tr, z_va, tensor(heads_va), flow_val)
    if rest_table:
        state.best_val = min(row["val_nll"] for row in rest_table)
    extra = {"params": params, "best_epoch": state.best_epoch, "best_val_loss": state.best_val,
             "units": store.UNITS, "obs_cells": freyberg.OBS_CELLS,  # the training range: `infer`'s OOD check
             "heads_min": heads_tr.min(0).tolist(), "heads_max": heads_tr.max(0).tolist()}
    store.save_model(model.cpu(), ctx.task_dir / store.MODEL_FILE, extra)
    store.write_history(ctx.task_dir / "flow_history.parquet", state.history, seed=cfg.seed, params=params,
                        stop_reason=state.stopped)
    summary = {"epochs_run": state.epoch, "best_epoch": state.best_epoch, "best_val_nll": state.best_val,
               "flow_val_nll_prior_rest": flow_val, "rest_modes": model.sizes.rest_modes,
               "rest_given": model.sizes.rest_given, "rest_selection": rest_table,
               "stop_reason": state.stopped, "n_parameters": n_parameters(model), "n_train": len(lnk_tr),
               "n_val": len(lnk_va), "device": str(device),
               "gradient_steps": state.epoch * (len(lnk_tr) // settings.batch_size)}
    artifacts.write_json(ctx.task_dir / "flow_train.json", summary)
    wall = watch.seconds["train_wall_s"]
    record_timing(ctx.data_dir, TASK, "train-flow", {"train_wall_s": wall,
                                                      "s_per_epoch": round(wall / max(1, state.epoch - resumed), 3)})
    ckpt.remove()
    print_summary(ctx.console, f"{TASK} train flow", summary)


def train(ctx: StageContext, subtask: str | None = None) -> None:
    """`phys-ml train groundwater flow` trains the amortized posterior, `... ies` (also `phys-ml groundwater ies`)
    runs the smoother, `... jacobian` / `glm` / `refine` the linear analysis and flow + refinement
    (`analysis.py`); no sub-task: all, in that order of dependence."""
    if subtask in (None, "jacobian"):
        analysis.train_jacobian(ctx)
    if subtask in (None, "flow"):
        _train_flow(ctx)
    if subtask in (None, "ies"):
        _ies(ctx)
    if subtask in (None, "glm"):
        analysis.train_glm(ctx)
    if subtask in (None, "refine"):
        analysis.train_refine(ctx)


def evaluate(ctx: StageContext, subtask: str | None = None) -> None:
    """Table-1 metrics of the prior, the smoother (base realization excluded) and the amortized posterior, the
    flow's test-split calibration and predictive heads, figures, metrics.json."""
    model_cfg, gen_cfg = _configs(ctx)
    flow_cfg = parse_config(FlowConfig, ctx.params, f"{TASK}.flow")
    if flow_cfg.threads > 0:
        torch.set_num_threads(flow_cfg.threads)
    refs = store.read_references(ctx.task_dir)
    gen = artifacts.read_json(ctx.task_dir / "generate.json")
    metrics: dict = {"generate_n_ok": gen["n_ok"], "generate_n_failed": gen["n_failed"]}
    metrics.update(evaluation.prior_metrics(_prior(gen_cfg.prior), gen_cfg.seed, refs))
    figs: dict = {}
    histories, ies_heads = {}, {}
    for (setting, name), (lnk, heads, is_base, meta) in store.read_ensembles(ctx.task_dir).items():
        m, f = evaluation.smoother_metrics(setting, name, lnk, heads, is_base, meta, refs[name])
        metrics.update(m)
        figs.update(f)
        histories[f"{setting} {name}"] = meta["history"]
        ies_heads[name] = heads[~is_base]  # the last setting's, drawn beside the flow's
    if histories:
        figs["ies_history.png"] = plots.ies_history(histories)
    model, _ = store.load_model(ctx.task_dir / store.MODEL_FILE)
    watch = Stopwatch()
    with open_runner(model_cfg, find_mf6(model_cfg.mf6)) as runner:
        predictive = checked_forward(runner, f"{TASK} evaluate (posterior predictive heads)")
        for r, name in enumerate(REFERENCES):
            m, f = evaluation.flow_reference_metrics(model, flow_cfg, r, name, refs[name], ies_heads.get(name),
                                                     predictive, watch)
            metrics.update(m)
            figs.update(f)
    _, lnk_test, heads_test = store.read_split(ctx.task_dir, "test")
    m, f = evaluation.heldout_metrics(model, flow_cfg, lnk_test, heads_test, gen_cfg.noise_sd)
    metrics.update(m)
    figs.update(f)
    figs["flow_training.png"] = plots.training_curve(store.read_history(ctx.task_dir / "flow_history.parquet"))
    metrics.update(analysis.comparison(ctx))
    for fname, fig in figs.items():
        save_png(fig, ctx.task_dir / "figures" / fname)
    artifacts.write_json(ctx.task_dir / "metrics.json", metrics)
    record_timing(ctx.data_dir, TASK, "evaluate", watch.seconds)
    print_summary(ctx.console, f"{TASK} evaluate", {k: v for k, v in metrics.items() if "_si" not in k})
