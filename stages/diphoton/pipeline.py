"""diphoton stages: generate (samples), train (four CNF trainings), evaluate (Table 1, ROC, figures).

Each stage reads (``store``), calls the science and writes; figures are built in ``plots``, the report section
in ``report``. TensorFlow is imported only inside ``train`` and ``evaluate``, so importing this module (the CLI,
the report) does not load it.
"""

from __future__ import annotations

import shutil
import numpy as np

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.config import parse_config
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.divergence import Diverged
from phys_ml.stages.common.errors import RunFailed, UserError
from phys_ml.stages.common.figures import save_png
from phys_ml.stages.common.progress import print_summary
from phys_ml.stages.common.timings import Stopwatch, record_timing

from . import store
from .config import LOSSES, EvaluateConfig, GenerateConfig, TrainConfig
from .events import (FEATURES, from_flow_space, reorder_by_pt, selection_mask, to_flow_space, to_physical_range,
                     with_mass)
from .store import TASK, model_dir, read_sample


# ---- generate ---------------------------------------------------------------------------------------------
def generate(ctx: StageContext, subtask: str | None = None) -> None:
    cfg = parse_config(GenerateConfig, ctx.params, "diphoton.generate")
    if cfg.source == "simulated":
        from .simulate import MODELS, simulate

        seeds = np.random.SeedSequence(cfg.seed).generate_state(2)
        samples = {"mc": simulate(MODELS["mc"], cfg.n_mc, int(seeds[0])),
                   "data": simulate(MODELS["data"], cfg.n_data, int(seeds[1]))}
    else:
        from .opendata import read_events

        od = cfg.opendata
        samples = {}
        for name, files, n in (("mc", od.mc_files, cfg.n_mc), ("data", od.data_files, cfg.n_data)):
            x = read_events(files, od.require_tight_id, od.require_trigger)
            if len(x) < 100:
                raise UserError(f"diphoton.generate.opendata.{name}_files: only {len(x)} events pass the selection")
            samples[name] = x[np.random.default_rng(cfg.seed).permutation(len(x))][:n]
    for name, x in samples.items():
        store.write_sample(ctx.task_dir, name, x, seed=cfg.seed, params=cfg.model_dump())
    from .metrics import correlation_row

    rows = [(f"{name} events", len(x)) for name, x in samples.items()]
    rows += [(f"{name} r(pT1,pT2)", correlation_row(x)["pT1,pT2"]) for name, x in samples.items()]
    print_summary(ctx.console, "diphoton generate", rows)


# ---- train ------------------------------------------------------------------------------------------------
def split(x: np.ndarray, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """train / validation / test (the samples are already in random order): the last ``test_fraction`` of the
    events is the test split, only evaluated; the rest is split ``1 - validation_fraction`` / ``validation_fraction``
    into training and validation (the paper's 90 % / 10 %; validation drives the stopping and the checkpoint)."""
    n_pool = len(x) - int(round(len(x) * cfg.test_fraction))
    n_train = int(round(n_pool * (1.0 - cfg.validation_fraction)))
    return x[:n_train], x[n_train:n_pool], x[n_pool:]


def scaler(mc_train: np.ndarray, data_train: np.ndarray, log_pt: bool = False) -> dict:
    """One affine standardization for both samples (so delta = z_data - z_mc keeps its meaning), applied after
    pT -> log pT when ``log_pt``."""
    both = to_flow_space(np.concatenate([mc_train, data_train]), log_pt)
    return {"mean": both.mean(0).tolist(), "std": both.std(0).tolist(), "features": list(FEATURES),
            "log_pt": log_pt}


def physical_limits(mc_tr: np.ndarray, data_tr: np.ndarray) -> tuple[float, float]:
    """The largest pT and |eta| of the training events (the caps of ``to_physical_range``)."""
    both = np.concatenate([mc_tr, data_tr])
    return float(both[:, 0].max()), float(np.abs(both[:, [1, 4]]).max())


def _standardize(x, sc):
    x = to_flow_space(x, sc.get("log_pt", False))
    return ((x - np.asarray(sc["mean"])) / np.asarray(sc["std"])).astype(np.float32)


def _unstandardize(z, sc):
    return from_flow_space(z.astype(np.float64) * np.asarray(sc["std"]) + np.asarray(sc["mean"]),
                           sc.get("log_pt", False))


def train(ctx: StageContext, subtask: str | None = None) -> None:
    cfg = parse_config(TrainConfig, ctx.params, "diphoton.train")
    task_dir = ctx.task_dir
    mc, data = read_sample(task_dir, "mc"), read_sample(task_dir, "data")
    mc_tr, mc_val, _ = split(mc, cfg)
    data_tr, data_val, _ = split(data, cfg)
    sc = scaler(mc_tr, data_tr, cfg.log_pt)
    store.write_scaler(task_dir, sc)
    limits = physical_limits(mc_tr, data_tr)
    z = {k: _standardize(v, sc) for k, v in (("mc_tr", mc_tr), ("mc_val", mc_val), ("data_tr", data_tr),
                                            ("data_val", data_val))}

    from . import tfenv

    rows, watch, timing = [], Stopwatch(), {}
    for loss in cfg.losses:
        index = LOSSES.index(loss)  # a loss's seeds do not depend on which other losses are listed
        tfenv.setup(cfg.seed + 1000 * index, cfg.threads)
        from .kernel_features import KernelFeatures
        from .training import NonFinite, Trainer, build_flow

        out = model_dir(task_dir, loss)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        run_cfg = cfg.model_copy(update={"seed": cfg.seed + 1000 * index, "epochs": cfg.epochs_for(loss)})
        flow = build_flow(run_cfg)
        trainer = Trainer(flow, loss, run_cfg, z["mc_tr"], z["data_tr"], z["mc_val"], z["data_val"],
                          physical=lambda x: reorder_by_pt(to_physical_range(_unstandardize(x, sc), *limits)[0])[0],
                          kernel=KernelFeatures(cfg.mmd_extra, sc, z["data_tr"]))
        saver = store.CheckpointSaver(flow, trainer, out)
        ctx.console.print(f"diphoton train {loss}: at most {run_cfg.epochs} epochs x {trainer.steps_per_epoch} "
                          f"steps of {trainer.batch} events")
        try:
            with watch(loss):
                history = trainer.run(on_epoch=saver, progress=_progress(ctx, loss))
        except NonFinite as exc:
            kept = f"epoch {exc.last_good}" if exc.last_good else "none: no finite epoch"
            raise Diverged(f"diphoton train {loss} diverged at epoch {exc.epoch}: {exc.reason}; stopped, best "
                           f"checkpoint ({kept}) kept in {out}; lower diphoton.train.lr_start") from None
        store.write_history(task_dir, loss, _history_dict(history, loss, trainer, run_cfg.epochs))
        events = len(history.epoch) * trainer.steps_per_epoch * trainer.batch
        timing[loss] = {"wall_s": watch.seconds[loss], "events_per_s": round(events / watch.seconds[loss], 1)}
        best = history.best_epoch
        rows.append((f"{loss}: {history.stopped} after", f"{len(history.epoch)} epochs, best {best} (score "
                                                         f"{history.score[best - 1]:.4g})"))
        rows.append((f"{loss}: time, events/s", f"{watch.seconds[loss]:.1f} s, {events / watch.seconds[loss]:.0f}"))
    record_timing(ctx.data_dir, TASK, "train", timing)
    print_summary(ctx.console, "diphoton train", rows)


def _progress(ctx: StageContext, loss: str):
    def show(epoch: int, h) -> None:  # every 10th epoch and each learning-rate level's first
        if epoch % 10 == 0 or epoch == 1 or h.lr[-1] != h.lr[-2]:
            ctx.console.print(f"  {loss}: epoch {epoch}, lr {h.lr[-1]:.3g}, validation score {h.score[-1]:.4g} "
                              f"(best {h.score[h.best_epoch - 1]:.4g}, epoch {h.best_epoch})")

    return show


def _history_dict(h, loss: str, trainer, max_epochs: int) -> dict:
    return {"loss_name": loss, "epoch": h.epoch, "loss": h.loss, "val_loss": h.val_loss, "lr": h.lr,
            "l1": h.l1, "l2": h.l2, "lambda": h.lam, "epsilon": h.epsilon, "data_mmd": h.data_mmd,
            "score": h.score, "score_kl": h.score_kl, "score_mmd": h.score_mmd, "score_corr": h.score_corr,
            "best_epoch": h.best_epoch,
            "stopped": h.stopped, "max_epochs": max_epochs,
            "steps_per_epoch": trainer.steps_per_epoch, "batch": trainer.batch}


# ---- evaluate ---------------------------------------------------------------------------------------------
def evaluate(ctx: StageContext, subtask: str | None = None) -> None:
    cfg = parse_config(EvaluateConfig, ctx.params, "diphoton.evaluate")
    tcfg = parse_config(TrainConfig, ctx.params, "diphoton.train")
    source = parse_config(GenerateConfig, ctx.params, "diphoton.generate").source
    task_dir = ctx.task_dir
    sc = store.read_scaler(task_dir)
    mc_tr, _, mc_test = split(read_sample(task_dir, "mc"), tcfg)
    data_tr, _, data_test = split(read_sample(task_dir, "data"), tcfg)
    pt_max, eta_max = physical_limits(mc_tr, data_tr)
    if min(len(mc_test), len(data_test)) < cfg.n_events:
        raise UserError(f"diphoton.evaluate.n_events is {cfg.n_events} but the test split has only "
                        f"{min(len(mc_test), len(data_test))} events per sample: raise diphoton.generate.n_mc/n_data "
                        f"or diphoton.train.test_fraction, or lower n_events")
    mc_test, data_test = mc_test[: cfg.n_events], data_test[: cfg.n_events]

    from . import tfenv

    tfenv.setup(cfg.seed, cfg.threads)
    from .classifier import discriminate
    from .metrics import PAIR_LABELS, build_metrics, correlation_row, correlation_stderr, wasserstein_per_feature
    from .plots import all_figures
    from .training import compiled_transform, sample_transformed
    from .transport import delta_structure

    def post(x, loss):  # transformed events back in the physical range, photon 1 the higher pT
        x = _unstandardize(x, sc)
        if not np.all(np.isfinite(x)):
            raise RunFailed(f"diphoton evaluate: the {loss} model produced non-finite events")
        touched = to_physical_range(x, pt_max, eta_max) if cfg.physical_range else (x, 0.0, 0.0)
        return (*reorder_by_pt(touched[0]), *touched[1:])

    samples = {"data": data_test, "mc": mc_test}
    histories, swapped, outside, capped, wrapped, noise_free, deltas, raw = {}, {}, {}, {}, {}, {}, {}, {}
    eta_free = {}  # Table 1 rows without the |eta| cap: how much the cap moves them
    z_mc = _standardize(mc_test, sc)
    for loss in tcfg.losses:
        index = LOSSES.index(loss)
        flow = store.load_flow(task_dir, loss, tcfg)
        fn = compiled_transform(flow)
        out = sample_transformed(flow, z_mc, seed=cfg.seed + index, transform=fn)
        out_0 = sample_transformed(flow, z_mc, 0, deterministic=True, transform=fn)
        deltas[loss], raw[loss] = delta_structure(z_mc, out - z_mc, out_0 - z_mc), out
        eta_free[loss] = correlation_row(reorder_by_pt(to_physical_range(_unstandardize(out, sc), pt_max,
                                                                          np.inf)[0])[0])
        samples[loss], swapped[loss], capped[loss], wrapped[loss] = post(out, loss)
        noise_free[loss], *_ = post(out_0, loss)
        outside[loss] = float(1.0 - selection_mask(samples[loss]).mean())
        histories[loss] = store.read_history(task_dir, loss)
    models = list(tcfg.losses)
    # Table 1, 1-D distances (in units of the data std), classifier AUCs
    corr = {k: correlation_row(v) for k, v in samples.items()}
    data_std = with_mass(data_test).std(0)
    w1 = {k: wasserstein_per_feature(samples[k], data_test, data_std) for k in ["mc", *models]}
    half = len(data_test) // 2
    classifier = (tuple(cfg.classifier_hidden), cfg.classifier_epochs, cfg.classifier_batch, cfg.seed)
    rocs = {"shuffled data": discriminate(data_test[:half], data_test[half:], *classifier)}
    for k in ["mc", *models]:
        rocs[k] = discriminate(data_test[:half], samples[k][:half], *classifier)
    metrics = build_metrics(corr, w1, {k: r["auc"] for k, r in rocs.items()}, histories, models, source,
                            len(data_test), correlation_stderr(data_test, seed=cfg.seed))
    metrics["transport"] = _transport_analysis(samples, raw, noise_free, mc_tr, data_tr, sc, tcfg)
    metrics["transport"]["delta"] = deltas
    metrics["convergence"] = {k: {"max_epochs": h["max_epochs"], "epochs": len(h["epoch"]),
                                  "best_epoch": h["best_epoch"], "stopped": h["stopped"],
                                  "score": h["score"][h["best_epoch"] - 1],
                                  "score_kl": h["score_kl"][h["best_epoch"] - 1],
                                  "score_mmd": h["score_mmd"][h["best_epoch"] - 1],
                                  "score_corr": h["score_corr"][h["best_epoch"] - 1],
                                  "last": {t: h[t][-1] for t in ("score", "score_kl", "score_mmd", "score_corr")}}
                              for k, h in histories.items()}
    metrics["transformed"] = {"swapped_fraction": swapped, "outside_selection_fraction": outside,
                              "capped_fraction": capped, "phi_wrapped_fraction": wrapped,
                              "corr_max_abs_diff_eta_uncapped": {
                                  k: max(abs(r[c] - corr["data"][c]) for c in PAIR_LABELS) for k, r in eta_free.items()},
                              "physical_range": cfg.physical_range}
    metrics["setup"] = {"epochs": {k: tcfg.epochs_for(k) for k in models}, "n_blocks": tcfg.n_blocks,
                        "patience": tcfg.patience, "min_improvement": tcfg.min_improvement,
                        "val_events": tcfg.val_events, "lr_start": tcfg.lr_start, "lr_drop": tcfg.lr_drop,
                        "lr_end": tcfg.lr_end,
                        "hidden_units": tcfg.hidden_units,
                        "batch_size": tcfg.batch_size, "batch_size_mmd": tcfg.batch_size_mmd,
                        "mmd_form": tcfg.mmd_form, "mmd_sigma": tcfg.mmd_sigma, "log_pt": tcfg.log_pt,
                        "mmd_extra": tcfg.mmd_extra,
                        "mdmm_epsilon_rel": tcfg.mdmm_epsilon_rel,
                        "cost": {k: {"epochs": len(h["epoch"]), "steps_per_epoch": h["steps_per_epoch"],
                                     "batch": h["batch"]} for k, h in histories.items()}}
    # Everything is computed before the first write, and metrics.json is written last: a failed evaluate leaves
    # no new outputs beside the previous run's (issue 21, item 11).
    figures = all_figures(samples, rocs, histories, cfg.hist_bins)
    store.write_transformed(task_dir, samples, seed=cfg.seed, params=cfg.model_dump())
    for name, fig in figures.items():
        save_png(fig, task_dir / "figures" / name)
    artifacts.write_json(task_dir / "metrics.json", metrics)
    rows = [(f"AUC {k}", r["auc"]) for k, r in rocs.items()]
    rows += [(f"max |dr| {k}", metrics["corr_max_abs_diff"][k]) for k in ["mc", *models]]
    rows.append(("1 sigma of a difference (largest pair)", max(metrics["corr_diff_noise"].values())))
    print_summary(ctx.console, "diphoton evaluate", rows)


def _transport_analysis(samples: dict, raw: dict, noise_free: dict, mc_tr, data_tr, sc: dict,
                        tcfg: TrainConfig) -> dict:
    """What moves the correlations (issue 24): the marginal-only (per-feature quantile map) transport of the test
    MC as the reference, each flow's noise-free (z = 0) output, Spearman rows, and the KL loss's quantity (mean
    per-feature 1-D KL of KDEs, standardized flow features) against the test data of what the loss sees: each
    flow's raw output (``raw``, flow space, before relabelling and the physical range) and the marginal-only
    transport before relabelling, with a second data sample (training split) as its floor."""
    from .losses import kde_grid, kde_on_grid_chunked, kl_per_feature, silverman_bandwidths
    from .metrics import correlation_row, rank_correlation_row
    from .transport import marginal_transport

    data = samples["data"]
    moved = marginal_transport(samples["mc"], mc_tr, data_tr)
    marginal, _ = reorder_by_pt(moved)
    ref = _standardize(data, sc)
    grid, bandwidth = kde_grid(ref, tcfg.kde_grid), silverman_bandwidths(ref, tcfg.kde_bandwidth_factor)
    p = kde_on_grid_chunked(ref, grid, bandwidth)

    def kl(z):  # z: flow-space events
        return float(np.mean(kl_per_feature(p, kde_on_grid_chunked(z, grid, bandwidth))))

    compared = {"data (training split)": _standardize(data_tr[: len(data)], sc),
                "mc": _standardize(samples["mc"], sc), "marginal": _standardize(moved, sc), **raw}
    return {"marginal_transport": correlation_row(marginal),
            "noise_free": {k: correlation_row(v) for k, v in noise_free.items()},
            "spearman": {k: rank_correlation_row(v) for k, v in {**samples, "marginal": marginal}.items()},
            "kl_marginals": {k: kl(v) for k, v in compared.items()}}

