"""Groundwater task I/O: prior simulations (generate), the ensemble smoother (ies), metrics and figures (evaluate).

Artifacts under data/groundwater/:
  simulations.parquet   successful prior runs: sim_id, split, lnk (706), heads (13 x 25, well-major)
  references.parquet    the two reference fields test1/test2: lnk, clean heads, noisy observed heads
  generate.json         counts of ok / failed runs, their reasons, simulation rate
  ies/<ref>.parquet     posterior ensembles of the smoother (lnk, simulated heads), phi history in the metadata
  ies.json              smoother wall time and model runs per reference field
  models/flow.pt, flow_history.parquet, flow_train.json   the amortized posterior (train flow: flow_stage.py)
  metrics.json          Table-1 metrics of the prior, the smoother and the flow on both reference fields, the
                        flow's test-split calibration, R^2 and errors vs observed steps (evaluate)
  figures/*.png
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.config import Config, parse_config
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import RunFailed, UserError
from phys_ml.stages.common.progress import print_summary, track
from phys_ml.stages.common.report import ReportSection

from . import flow_report, freyberg, paper
from .ies import IESSettings, distance_taper, run_ies
from .metrics import covered, summarize
from .mf6 import find_mf6, mf6_version
from .prior import GaussianPrior
from .runner import Runner, open_runner, runner_settings

TASK = "groundwater"
N_OBS_CELLS, N_TIMES = len(freyberg.OBS_CELLS), freyberg.N_PERIODS
HEADS_SHAPE = (N_OBS_CELLS, N_TIMES)  # stored well-major: heads[w, t]
REFERENCES = ("test1", "test2")
LN_DAY_S = math.log(86400.0)  # ln K (m/s) = ln K (m/d) - ln 86400


class PriorConfig(Config):
    mean: float = Field(description="prior mean of ln K, K in m/d")
    variance: float = Field(gt=0)
    length: float = Field(gt=0, description="correlation length of exp(-r / length), metres")


class ModelConfig(Config):
    mf6: str | None = None  # explicit path to mf6 (else $PHYS_ML_MF6, PATH, install folder, flopy's bin)
    n_workers: int = Field(ge=1, le=64)  # local runner: parallel runs; dask without an address: worker processes
    timeout_s: float = Field(gt=0)
    runner: Literal["local", "dask"] = "local"  # overridden by $PHYS_ML_GW_RUNNER / $DASK_SCHEDULER_ADDRESS / CLI
    scheduler_address: str | None = None  # dask only; None: a LocalCluster on this machine
    retries: int = Field(1, ge=0, le=10)  # a failed run is retried this many times, then counted as failed

    def artifact_params(self) -> dict:
        """The settings recorded in artifacts: not where the runs executed (that never changes the bytes)."""
        return self.model_dump(exclude={"runner", "scheduler_address"})


class GenerateConfig(Config):
    seed: int
    n_sims: int = Field(ge=3)
    n_train: int = Field(ge=1)
    n_val: int = Field(ge=0)
    chunk_size: int = Field(ge=1)
    noise_sd: float = Field(gt=0)
    prior: PriorConfig

    @model_validator(mode="after")
    def _splits(self) -> GenerateConfig:
        if self.n_train + self.n_val >= self.n_sims:
            raise ValueError("n_train + n_val must be < n_sims")
        return self


class IESConfig(Config):
    seed: int
    n_ens: int = Field(ge=3)
    n_iter: int = Field(ge=1)
    use_base: bool
    subset_frac: float = Field(gt=0, le=1)
    accept_phi_fac: float = Field(ge=1)
    lambda_mults: list[float] = Field(min_length=1)
    scale_facs: list[float] = Field(min_length=1)
    stop_at_noise_level: bool
    localization: list[Literal["none", "autoadaloc", "distance"]] = Field(min_length=1)  # settings to run
    autoadaloc_sigma_dist: float = Field(gt=0)  # keep a pair where |corr| > this x sqrt(1 / (N - 2))
    distance_length: float = Field(gt=0)  # Gaspari-Cohn half-width (m); the taper is 0 beyond 2 x this
    use_approx: bool  # false: the full GLM upgrade with the prior-pull term (pestpp ies_use_approx)

    @model_validator(mode="after")
    def _unique(self) -> IESConfig:
        if len(set(self.localization)) != len(self.localization):
            raise ValueError("localization settings must be distinct")
        return self


def _configs(ctx: StageContext) -> tuple[ModelConfig, GenerateConfig]:
    model = parse_config(ModelConfig, ctx.params, f"{TASK}.model")
    runner_settings(model)  # a bad $PHYS_ML_GW_RUNNER fails before any work
    return model, parse_config(GenerateConfig, ctx.params, f"{TASK}.generate")


def _prior(cfg: PriorConfig) -> GaussianPrior:
    return GaussianPrior.exponential(freyberg.active_centres(), cfg.mean, cfg.variance, cfg.length)


def _to_obs(heads: np.ndarray) -> np.ndarray:
    """(n, periods, wells) model output -> (n, 325) well-major observation vectors."""
    return np.ascontiguousarray(np.swapaxes(heads, 1, 2)).reshape(len(heads), -1)


# ---------------------------------------------------------------- generate
def _fingerprint(cfg: GenerateConfig) -> str:
    key = json.dumps({"cfg": cfg.model_dump(), "model": "freyberg-1layer-sfr"}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _chunk_ok(path: Path, fingerprint: str, index: int, rows: int) -> bool:
    """A chunk counts as done only if it is readable and was written by the same params for the same rows."""
    if not path.is_file():
        return False
    try:
        table, meta = artifacts.read_parquet(path)
    except UserError:
        return False
    return meta.get("fingerprint") == fingerprint and meta.get("chunk") == index and table.num_rows == rows


def run_chunks(lnk: np.ndarray, chunk_dir: Path, fingerprint: str, chunk_size: int, pool: Runner,
               seed: int, params: dict) -> dict:
    """Simulate every row of ``lnk`` in chunks written to ``chunk_dir``; complete chunks are reused (resume)."""
    n = len(lnk)
    chunks = [(c, c * chunk_size, min(n, (c + 1) * chunk_size)) for c in range(math.ceil(n / chunk_size))]
    todo = [ch for ch in chunks if not _chunk_ok(chunk_dir / f"chunk-{ch[0]:05d}.parquet", fingerprint, ch[0],
                                                 ch[2] - ch[1])]
    t0 = time.perf_counter()
    for c, lo, hi in track(todo, f"{TASK}: simulation chunks of {chunk_size}", total=len(todo)):
        heads, ok, reasons = pool.run(lnk[lo:hi])
        table = pa.table({
            "sim_id": pa.array(np.arange(lo, hi, dtype=np.int32)),
            "ok": pa.array(ok),
            "reason": pa.array(reasons, type=pa.string()),
            "lnk": artifacts.fixed_size_list(lnk[lo:hi]),
            "heads": artifacts.fixed_size_list(_to_obs(heads)),
        })
        artifacts.write_parquet(table, chunk_dir / f"chunk-{c:05d}.parquet", task=TASK, stage="generate-chunk",
                                seed=seed, params=params, extra={"fingerprint": fingerprint, "chunk": c})
    wall = time.perf_counter() - t0
    n_run = sum(hi - lo for _, lo, hi in todo)
    return {"n_chunks": len(chunks), "n_chunks_resumed": len(chunks) - len(todo), "n_run": n_run, "wall_s": wall}


def read_chunks(chunk_dir: Path, n_chunks: int) -> pa.Table:
    """All chunks in order; sim_ids must be exactly 0..n-1 once each."""
    tables = [artifacts.read_parquet(chunk_dir / f"chunk-{c:05d}.parquet")[0] for c in range(n_chunks)]
    table = pa.concat_tables(tables)
    ids = table.column("sim_id").to_numpy()
    if not np.array_equal(ids, np.arange(len(ids))):
        raise RunFailed(f"simulation chunks in {chunk_dir} are inconsistent (duplicate or missing sim_ids)")
    return table


def assign_splits(n_ok: int, n_train: int, n_val: int) -> np.ndarray:
    """Splits over the successful runs in sim_id order: train, then validation, then the rest for test."""
    split = np.full(n_ok, "test", dtype=object)
    split[:n_train] = "train"
    split[n_train:n_train + n_val] = "val"
    return split


def generate(ctx: StageContext, subtask: str | None = None) -> None:
    """Prior draws of ln K, MODFLOW runs in parallel workers, chunked output, splits, two reference fields."""
    model_cfg, cfg = _configs(ctx)
    exe = find_mf6(model_cfg.mf6)
    prior = _prior(cfg.prior)
    lnk = prior.sample(cfg.n_sims, np.random.default_rng([cfg.seed, 0]))
    ref_lnk = prior.sample(len(REFERENCES), np.random.default_rng([cfg.seed, 1]))
    params = {"model": model_cfg.artifact_params(), "generate": cfg.model_dump()}
    chunk_dir = ctx.task_dir / "chunks"
    with open_runner(model_cfg, exe) as pool:
        stats = run_chunks(lnk, chunk_dir, _fingerprint(cfg), cfg.chunk_size, pool, cfg.seed, params)
        ref_heads, ref_ok, ref_reasons = pool.run(ref_lnk)
    if not ref_ok.all():
        raise RunFailed(f"a reference field did not run: {ref_reasons}")

    table = read_chunks(chunk_dir, stats["n_chunks"])
    ok = table.column("ok").to_numpy(zero_copy_only=False)
    failed = table.filter(pa.array(~ok))
    good = table.filter(pa.array(ok))
    reasons: dict[str, int] = {}
    for r in failed.column("reason").to_pylist():
        reasons[r] = reasons.get(r, 0) + 1
    if good.num_rows <= cfg.n_train + cfg.n_val:
        raise RunFailed(f"only {good.num_rows} of {cfg.n_sims} simulations succeeded: too few for the splits")
    split = assign_splits(good.num_rows, cfg.n_train, cfg.n_val)
    out = pa.table({"sim_id": good.column("sim_id"), "split": pa.array(split.tolist(), type=pa.string()),
                    "lnk": good.column("lnk"), "heads": good.column("heads")})
    extra = {"units": {"lnk": "ln(K / (m/d))", "heads": "m"}, "heads_shape": list(HEADS_SHAPE),
             "heads_layout": "well-major: index = well * 25 + period", "noise_sd": cfg.noise_sd,
             "noise": "heads are noise-free; add N(0, noise_sd^2) for observations",
             "obs_cells": freyberg.OBS_CELLS, "n_failed": int((~ok).sum()),
             "failed_sim_ids": failed.column("sim_id").to_pylist(), "failure_reasons": reasons,
             "mf6_version": mf6_version(exe)}
    artifacts.write_parquet(out, ctx.task_dir / "simulations.parquet", task=TASK, stage="generate", seed=cfg.seed,
                            params=params, extra=extra)

    noise_rng = np.random.default_rng([cfg.seed, 2])
    noise = cfg.noise_sd * noise_rng.standard_normal((len(REFERENCES), N_OBS_CELLS * N_TIMES))
    clean = _to_obs(ref_heads)
    refs = pa.table({"name": pa.array(list(REFERENCES)), "lnk": artifacts.fixed_size_list(ref_lnk),
                     "heads_clean": artifacts.fixed_size_list(clean),
                     "heads_obs": artifacts.fixed_size_list(clean + noise)})
    artifacts.write_parquet(refs, ctx.task_dir / "references.parquet", task=TASK, stage="generate", seed=cfg.seed,
                            params=params, extra={k: extra[k] for k in ("units", "heads_shape", "heads_layout",
                                                                        "noise_sd", "obs_cells")})
    shutil.rmtree(chunk_dir)
    rate = stats["n_run"] / stats["wall_s"] if stats["wall_s"] > 0 else float("nan")
    counts = {s: int((split == s).sum()) for s in ("train", "val", "test")}
    summary = {"n_sims": cfg.n_sims, "n_ok": good.num_rows, "n_failed": int((~ok).sum()),
               "failure_reasons": reasons, **{f"n_{k}": v for k, v in counts.items()},
               "n_run_this_time": stats["n_run"], "n_chunks_resumed": stats["n_chunks_resumed"],
               "sim_wall_s": round(stats["wall_s"], 2), "sims_per_s": round(rate, 2),
               "n_workers": pool.n_workers, "runner": getattr(pool, "name", "local")}
    artifacts.write_json(ctx.task_dir / "generate.json", summary)
    print_summary(ctx.console, f"{TASK} generate", {
        "mf6": f"{exe} ({mf6_version(exe)})", "simulations ok / failed": f"{good.num_rows} / {int((~ok).sum())}",
        "train / val / test": f"{counts['train']} / {counts['val']} / {counts['test']}",
        "chunks resumed": stats["n_chunks_resumed"], "simulations per second": rate})


# ---------------------------------------------------------------- ies
def read_references(task_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    table, _ = artifacts.read_parquet(task_dir / "references.parquet")
    cols = {c: artifacts.fixed_size_to_numpy(table.column(c)) for c in ("lnk", "heads_clean", "heads_obs")}
    return {name: {c: v[i] for c, v in cols.items()} for i, name in enumerate(table.column("name").to_pylist())}


def obs_taper(length: float) -> np.ndarray:
    """(325, 706) Gaspari-Cohn taper from each observation's well to each active cell (well-major obs order)."""
    xy = freyberg.active_centres()
    wells = np.repeat(xy[freyberg.obs_active_positions()], N_TIMES, axis=0)
    return distance_taper(xy, wells, length)


def _iteration_line(name: str, setting: str, rec) -> str:
    return (f"{TASK} ies {setting} {name}: iteration {rec.iteration} "
            f"{'accepted' if rec.accepted else 'rejected'} lambda {rec.lam:.3g} phi mean {rec.mean_phi:.4g} "
            f"sd {rec.sd_phi:.3g} min {rec.min_phi:.4g} max {rec.max_phi:.4g} (vs data {rec.mean_phi_actual:.4g}); "
            f"ln K sd mean {rec.lnk_sd_mean:.3f}, {rec.lnk_sd_collapsed:.1%} of sds < 5 % of the prior's"
            + ("" if math.isnan(rec.loc_kept) else f"; pairs kept {rec.loc_kept:.1%}") + f"; {rec.n_runs} runs")


def ies(ctx: StageContext, subtask: str | None = None) -> None:
    """The iterative ensemble smoother on both reference fields for each localization setting (MODFLOW in parallel).

    Writes ies/<setting>/<ref>.parquet (posterior ensemble, per-iteration history in the metadata) and ies.json.
    """
    model_cfg, gen_cfg = _configs(ctx)
    cfg = parse_config(IESConfig, ctx.params, f"{TASK}.ies")
    exe = find_mf6(model_cfg.mf6)
    prior = _prior(gen_cfg.prior)
    refs = read_references(ctx.task_dir)
    params = {"model": model_cfg.artifact_params(), "prior": gen_cfg.prior.model_dump(),
              "noise_sd": gen_cfg.noise_sd, "ies": cfg.model_dump()}
    summary: dict[str, float | int | str] = {"settings": ",".join(cfg.localization)}
    out_dir = ctx.task_dir / "ies"
    if out_dir.is_dir():
        shutil.rmtree(out_dir)  # no stale ensembles of settings that are no longer run
    with open_runner(model_cfg, exe) as pool:
        def forward(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            heads, ok, _ = pool.run(theta)
            return _to_obs(heads), ok

        for setting in cfg.localization:
            settings = IESSettings(n_iter=cfg.n_iter, lambda_mults=tuple(cfg.lambda_mults),
                                   scale_facs=tuple(cfg.scale_facs), subset_frac=cfg.subset_frac,
                                   accept_phi_fac=cfg.accept_phi_fac, stop_at_noise_level=cfg.stop_at_noise_level,
                                   localization=setting, autoadaloc_sigma_dist=cfg.autoadaloc_sigma_dist,
                                   use_approx=cfg.use_approx)
            taper = obs_taper(cfg.distance_length) if setting == "distance" else None
            for r, name in enumerate(REFERENCES):
                rng = np.random.default_rng([cfg.seed, r])  # the same prior ensemble for every setting
                theta0 = prior.sample(cfg.n_ens, rng)

                def log(rec, name=name, setting=setting) -> None:
                    ctx.console.print(_iteration_line(name, setting, rec), highlight=False)

                t0 = time.perf_counter()
                res = run_ies(theta0, refs[name]["heads_obs"], gen_cfg.noise_sd, forward, settings, rng,
                              base=prior.mean if cfg.use_base else None, on_iteration=log, taper=taper)
                wall = time.perf_counter() - t0
                is_base = np.zeros(len(res.theta), bool)
                is_base[0] = res.has_base
                table = pa.table({"realization": pa.array(np.arange(len(res.theta), dtype=np.int32)),
                                  "is_base": pa.array(is_base), "lnk": artifacts.fixed_size_list(res.theta),
                                  "heads": artifacts.fixed_size_list(res.sim)})
                history = [vars(h) for h in res.history]
                artifacts.write_parquet(table, out_dir / setting / f"{name}.parquet", task=TASK, stage="ies",
                                        seed=cfg.seed, params=params,
                                        extra={"reference": name, "localization": setting, "history": history,
                                               "n_runs": res.n_runs, "n_failed": res.n_failed,
                                               "stop_reason": res.stop_reason, "heads_shape": list(HEADS_SHAPE)})
                last = res.history[-1]
                key = f"{setting}_{name}"
                summary.update({f"{key}_wall_s": round(wall, 2), f"{key}_n_runs": res.n_runs,
                                f"{key}_n_failed": res.n_failed, f"{key}_iterations": last.iteration,
                                f"{key}_final_mean_phi": last.mean_phi_actual,
                                f"{key}_final_phi_mean": last.mean_phi, f"{key}_final_phi_sd": last.sd_phi,
                                f"{key}_final_phi_min": last.min_phi, f"{key}_final_phi_max": last.max_phi,
                                f"{key}_final_lnk_sd_mean": round(last.lnk_sd_mean, 4),
                                f"{key}_final_lnk_sd_collapsed": round(last.lnk_sd_collapsed, 4),
                                f"{key}_runs_per_s": round(res.n_runs / wall, 2), f"{key}_stop": res.stop_reason})
    artifacts.write_json(ctx.task_dir / "ies.json", summary)
    print_summary(ctx.console, f"{TASK} ies", summary)


def train(ctx: StageContext, subtask: str | None = None) -> None:
    """`phys-ml train groundwater flow` trains the amortized posterior, `... ies` runs the smoother; no sub-task:
    both."""
    from .flow_stage import train_flow

    if subtask in (None, "flow"):
        train_flow(ctx)
    if subtask in (None, "ies"):
        ies(ctx, subtask)


# ---------------------------------------------------------------- evaluate
LOCALIZATIONS = ("none", "autoadaloc", "distance")


def read_ensemble(task_dir: Path, name: str, setting: str = "none") -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(lnk (N, 706), heads (N, 325), is_base (N,), metadata) of a smoother posterior ensemble."""
    table, meta = artifacts.read_parquet(task_dir / "ies" / setting / f"{name}.parquet")
    return (artifacts.fixed_size_to_numpy(table.column("lnk")), artifacts.fixed_size_to_numpy(table.column("heads")),
            table.column("is_base").to_numpy(zero_copy_only=False), meta)


def _table1_metrics(samples: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    m = summarize(samples, truth)
    # The relative errors depend on the units of K (they are not shift-invariant): also in m/s, as a guide.
    m_si = summarize(samples - LN_DAY_S, truth - LN_DAY_S)
    m.update({f"{k}_si": m_si[k] for k in ("average_relative_error", "relative_error")})
    return m


def _prior_metrics(ctx: StageContext, refs: dict) -> dict[str, float]:
    """The "prior only" row: Table-1 metrics of 2,000 prior draws (what the smoother must beat)."""
    _, gen_cfg = _configs(ctx)
    draws = _prior(gen_cfg.prior).sample(2000, np.random.default_rng([gen_cfg.seed, 3]))
    out: dict[str, float] = {}
    for name in REFERENCES:
        out.update({f"prior_{name}_{k}": v for k, v in _table1_metrics(draws, refs[name]["lnk"]).items()})
    return out


def _smoother_metrics(ctx: StageContext, refs: dict) -> tuple[dict[str, float | int], dict[str, list[dict]]]:
    """Metrics ``ies_<setting>_<ref>_<metric>`` of every localization setting that was run, its figures, and
    the per-iteration histories keyed "<setting> <ref>"."""
    from . import plots

    ies_summary = artifacts.read_json(ctx.task_dir / "ies.json")
    settings = [s for s in str(ies_summary.get("settings", "")).split(",") if s]
    fig_dir = ctx.task_dir / "figures"
    metrics: dict[str, float | int] = {}
    histories: dict[str, list[dict]] = {}
    for setting in settings:
        for name in REFERENCES:
            lnk, heads, is_base, meta = read_ensemble(ctx.task_dir, name, setting)
            post = lnk[~is_base]
            truth = refs[name]["lnk"]
            key, skey = f"ies_{setting}_{name}", f"{setting}_{name}"
            metrics.update({f"{key}_{k}": v for k, v in _table1_metrics(post, truth).items()})
            metrics.update({f"{key}_n_real": int(len(post)), f"{key}_wall_s": ies_summary[f"{skey}_wall_s"],
                            f"{key}_n_runs": ies_summary[f"{skey}_n_runs"],
                            f"{key}_final_mean_phi": ies_summary[f"{skey}_final_mean_phi"],
                            f"{key}_lnk_sd_mean": float(post.std(0, ddof=1).mean()),
                            f"{key}_heads_rmse": float(np.sqrt(np.mean((heads[~is_base].mean(0)
                                                                        - refs[name]["heads_clean"]) ** 2)))})
            histories[f"{setting} {name}"] = meta["history"]
            plots.field_panels(truth, post.mean(0), post.std(0, ddof=1), covered(post, truth),
                               f"{name}: IES posterior, localization {setting}",
                               fig_dir / f"fields_{setting}_{name}.png")
            plots.head_bands(heads[~is_base], refs[name]["heads_clean"], refs[name]["heads_obs"],
                             f"{name}: IES posterior predictive heads, localization {setting}",
                             fig_dir / f"heads_{setting}_{name}.png")
    if histories:
        plots.ies_history(histories, fig_dir / "ies_history.png")
    return metrics, histories


def _flow_metrics(ctx: StageContext, refs: dict) -> dict[str, float | int]:
    """The amortized posterior's metrics (`flow_evaluation`), its predictive heads run through the same MODFLOW
    runner as everything else, drawn beside the smoother's last localization setting."""
    from .flow_evaluation import evaluate_flow

    model_cfg, _ = _configs(ctx)
    settings = [s for s in str(artifacts.read_json(ctx.task_dir / "ies.json").get("settings", "")).split(",") if s]
    ies_heads = {}
    if settings:
        for name in REFERENCES:
            _, heads, is_base, _ = read_ensemble(ctx.task_dir, name, settings[-1])
            ies_heads[name] = heads[~is_base]
    with open_runner(model_cfg, find_mf6(model_cfg.mf6)) as runner:
        def predictive(lnk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            heads, ok, _ = runner.run(lnk)
            return _to_obs(heads), ok

        metrics, _ = evaluate_flow(ctx, refs, ies_heads, predictive)
    return metrics


def evaluate(ctx: StageContext, subtask: str | None = None) -> None:
    """Table-1 metrics of the prior, the smoother (base realization excluded) and the amortized posterior,
    the flow's test-split calibration and predictive heads, figures, metrics.json."""
    refs = read_references(ctx.task_dir)
    gen = artifacts.read_json(ctx.task_dir / "generate.json")
    metrics: dict[str, float | int] = {
        "generate_n_ok": gen["n_ok"], "generate_n_failed": gen["n_failed"], "generate_sims_per_s": gen["sims_per_s"]}
    metrics.update(_prior_metrics(ctx, refs))
    smoother, _ = _smoother_metrics(ctx, refs)
    metrics.update(smoother)
    metrics.update(_flow_metrics(ctx, refs))
    artifacts.write_json(ctx.task_dir / "metrics.json", metrics)
    print_summary(ctx.console, f"{TASK} evaluate", {k: v for k, v in metrics.items() if "_si" not in k})


# ---------------------------------------------------------------- report
TABLE1_METRICS = (("average_relative_error", "avg. rel. error, K in m/d (%)", 100.0),
                  ("average_relative_error_si", "avg. rel. error, K in m/s (%)", 100.0),
                  ("relative_error", "rel. L2 error, K in m/d (%)", 100.0),
                  ("relative_error_si", "rel. L2 error, K in m/s (%)", 100.0),
                  ("lpp", "LPP", 1.0),
                  ("coverage95", "95 % coverage (%)", 100.0))
TABLE1_HEADERS = ["method"] + [label for _, label, _ in TABLE1_METRICS] + ["wall time (min)", "model runs"]


def _settings_run(m: dict) -> list[str]:
    return [s for s in LOCALIZATIONS if f"ies_{s}_{REFERENCES[0]}_lpp" in m]


def _metric_cells(m: dict, prefix: str) -> list:
    return [None if m.get(f"{prefix}_{k}") is None else m[f"{prefix}_{k}"] * scale for k, _, scale in TABLE1_METRICS]


def _smoother_rows(m: dict, name: str) -> list[list]:
    """Table-1 rows of one reference field: the paper's PEST-IES, the prior alone, ours per localization."""
    pest = paper.TABLE1["PEST-IES"][name]
    rows = [["paper: PEST-IES"] + [None if pest.get(k.removesuffix("_si")) is None or k.endswith("_si")
                                   else pest[k] * scale for k, _, scale in TABLE1_METRICS]
            + [paper.TABLE2["pest_ies_inference_h"] * 60, None]]
    if f"prior_{name}_lpp" in m:
        rows.append(["ours: prior only"] + _metric_cells(m, f"prior_{name}") + [None, None])
    for setting in _settings_run(m):
        key = f"ies_{setting}_{name}"
        rows.append([f"ours: IES, localization {setting}"] + _metric_cells(m, key)
                     + [m[f"{key}_wall_s"] / 60, m[f"{key}_n_runs"]])
    return rows


def _smoother_figures(data_dir: Path, m: dict) -> list[Path]:
    fig_dir = Path(data_dir) / TASK / "figures"
    names = ["ies_history.png"] + [f"{kind}_{s}_{r}.png" for s in _settings_run(m) for kind in ("fields", "heads")
                                   for r in REFERENCES]
    return [fig_dir / f for f in names if (fig_dir / f).is_file()]


def report_section(data_dir: Path) -> ReportSection | None:
    from phys_ml.stages.common.report import markdown_table

    path = Path(data_dir) / TASK / "metrics.json"
    if not path.is_file():
        return None
    m = artifacts.read_json(path)
    tables = "".join(f"**Table 1, test #{r + 1} ({name})**\n\n"
                     + markdown_table(TABLE1_HEADERS, _smoother_rows(m, name)
                                      + flow_report.table1_rows(m, name, TABLE1_METRICS)) + "\n"
                     for r, name in enumerate(REFERENCES))
    flow_train_path = Path(data_dir) / TASK / "flow_train.json"
    flow_train = artifacts.read_json(flow_train_path) if flow_train_path.is_file() else None
    cost = markdown_table(
        ["cost", "ours", "paper"],
        [["prior simulations ok / failed", f"{m['generate_n_ok']} / {m['generate_n_failed']}",
          f"{paper.N_SIMULATIONS} / –"],
         ["simulations per second", m["generate_sims_per_s"], None]] + flow_report.cost_rows(m, flow_train)
        + [[f"smoother wall time per data set, {s} (h)", max(m[f"ies_{s}_{r}_wall_s"] for r in REFERENCES) / 3600,
            paper.TABLE2["pest_ies_inference_h"]] for s in _settings_run(m)])
    predictive = markdown_table(
        ["posterior predictive heads (noise-free truth)", "RMSE of the mean (m)", "95 % band coverage (%)",
         "failed runs"],
        flow_report.predictive_rows(m) + [[f"smoother {s}, {r}", m[f"ies_{s}_{r}_heads_rmse"], None, None]
                                          for s in _settings_run(m) for r in REFERENCES])
    text = (
        "Freyberg one-layer model in MODFLOW 6 (706 active cells, 13 wells x 25 periods), Gaussian-process prior on "
        "ln K, iterative ensemble smoother (GLM form of pestpp-ies) on two reference fields drawn from the prior, "
        "once per localization setting (none; autoadaloc: pestpp-ies automatic adaptive localization, a local "
        "upgrade per parameter with its significantly correlated observations; distance: a Gaspari-Cohn taper "
        "from each well to each cell on the cross-covariance). "
        "Posterior statistics over the smoother's ensemble without its base realization; the prior-only row is "
        "2,000 prior draws. The paper's prior parameters and units are not stated: relative errors of ln K depend "
        "on the unit of K (a shift of ln K), so they are shown for K in m/d (our parameterisation) and in m/s; LPP "
        "and coverage do not depend on it; the paper's wall time is its 2.5 h per data set.\n\n"
        + flow_report.CHOICES + tables + cost + "\n" + predictive + "\n" + flow_report.test_split_text(m))
    return ReportSection("Groundwater: amortized inference of 706 ln K (Freyberg, MODFLOW 6) beside the ensemble "
                         "smoother", text, flow_report.figures(data_dir) + _smoother_figures(data_dir, m))
