"""diphoton pipeline: generate (samples), train (four CNF trainings), evaluate (Table 1, ROC, figures).

All file I/O of the task lives here. TensorFlow is imported only inside ``train`` and ``evaluate``, so importing
this module (the CLI, the report) does not load it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.config import parse_config
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import RunFailed, UserError
from phys_ml.stages.common.progress import print_summary
from phys_ml.stages.common.report import ReportSection

from . import report as report_mod
from .config import EvaluateConfig, GenerateConfig, TrainConfig
from .events import (COLUMNS, FEATURES, UNITS, from_flow_space, reorder_by_pt, selection_mask, to_flow_space,
                     to_physical_range, with_mass)

TASK = "diphoton"
SAMPLES = ("mc", "data")


# ---- paths ------------------------------------------------------------------------------------------------
def sample_path(task_dir: Path, name: str) -> Path:
    return task_dir / f"{name}.parquet"


def model_dir(task_dir: Path, loss: str) -> Path:
    return task_dir / "models" / loss


def _table(x6: np.ndarray, extra: dict | None = None) -> pa.Table:
    cols = {name: pa.array(col.astype(np.float32)) for name, col in zip(COLUMNS, with_mass(x6).T)}
    return pa.table({**(extra or {}), **cols})


def read_sample(task_dir: Path, name: str) -> np.ndarray:
    table, _ = artifacts.read_parquet(sample_path(task_dir, name), columns=list(FEATURES))
    return np.column_stack([table[c].to_numpy() for c in FEATURES]).astype(np.float64)


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
        artifacts.write_parquet(_table(x), sample_path(ctx.task_dir, name), task=TASK, stage="generate",
                                seed=cfg.seed, params=cfg.model_dump(), extra={"sample": name, "units": UNITS})
    from .metrics import correlation_row

    rows = [(f"{name} events", len(x)) for name, x in samples.items()]
    rows += [(f"{name} r(pT1,pT2)", correlation_row(x)["pT1,pT2"]) for name, x in samples.items()]
    print_summary(ctx.console, "diphoton generate", rows)


# ---- train ------------------------------------------------------------------------------------------------
def split(x: np.ndarray, validation_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """90 % / 10 % train / validation split (the samples are already in random order)."""
    n_train = int(round(len(x) * (1.0 - validation_fraction)))
    return x[:n_train], x[n_train:]


def scaler(mc_train: np.ndarray, data_train: np.ndarray, log_pt: bool = False) -> dict:
    """One affine standardization for both samples (so delta = z_data - z_mc keeps its meaning), applied after
    pT -> log pT when ``log_pt``."""
    both = to_flow_space(np.concatenate([mc_train, data_train]), log_pt)
    return {"mean": both.mean(0).tolist(), "std": both.std(0).tolist(), "features": list(FEATURES),
            "log_pt": log_pt}


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
    mc_tr, mc_val = split(mc, cfg.validation_fraction)
    data_tr, data_val = split(data, cfg.validation_fraction)
    sc = scaler(mc_tr, data_tr, cfg.log_pt)
    artifacts.write_json(task_dir / "models" / "scaler.json", sc)
    z = {k: _standardize(v, sc) for k, v in (("mc_tr", mc_tr), ("mc_val", mc_val), ("data_tr", data_tr),
                                            ("data_val", data_val))}

    from . import tfenv

    rows = []
    for index, loss in enumerate(cfg.losses):
        tfenv.setup(cfg.seed + 1000 * index, cfg.threads)
        from .training import NonFinite, Trainer, build_flow

        out = model_dir(task_dir, loss)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        run_cfg = cfg.model_copy(update={"seed": cfg.seed + 1000 * index,
                                         "epochs": cfg.epochs_for(loss)})
        flow = build_flow(run_cfg)
        trainer = Trainer(flow, loss, run_cfg, z["mc_tr"], z["data_tr"], z["mc_val"], z["data_val"])
        saver = _Saver(flow, trainer, out, run_cfg)
        ctx.console.print(f"diphoton train {loss}: {run_cfg.epochs} epochs x {trainer.steps_per_epoch} steps of "
                          f"{trainer.batch} events")
        start = time.perf_counter()
        try:
            history = trainer.run(on_epoch=saver, progress=_progress(ctx, loss))
        except NonFinite as exc:
            kept = f"epoch {exc.last_good}" if exc.last_good else "none: no finite epoch"
            raise RunFailed(f"diphoton train {loss}: loss or gradients became NaN/inf at epoch {exc.epoch}; "
                            f"stopped, last good checkpoint ({kept}) kept in {out}") from None
        seconds = time.perf_counter() - start
        artifacts.write_json(out / "history.json", _history_dict(history, loss, trainer))
        events = run_cfg.epochs * trainer.steps_per_epoch * trainer.batch
        rows.append((f"{loss}: final loss / val", f"{history.loss[-1]:.4g} / {history.val_loss[-1]:.4g}"))
        rows.append((f"{loss}: time, events/s", f"{seconds:.1f} s, {events / seconds:.0f}"))
    print_summary(ctx.console, "diphoton train", rows)


class _Saver:
    """Checkpoint every ``checkpoint_every`` epochs and at the end (only finite epochs reach here).

    TF checkpoint files ``ckpt/epoch-N.*``, then the pointer ``ckpt/latest.json`` (written atomically), then the
    previous epoch's files are removed: a crash or a NaN leaves the last good checkpoint and its pointer. (No
    tf.train.CheckpointManager: its state file holds timestamps, and artifacts must not.)"""

    def __init__(self, flow, trainer, out: Path, cfg: TrainConfig):
        import tensorflow as tf

        self.cfg, self.dir, self.previous = cfg, out / "ckpt", None
        self.ckpt = tf.train.Checkpoint(flow=flow, mdmm_lambda=trainer.lam)

    def __call__(self, epoch: int, history) -> None:
        if epoch % self.cfg.checkpoint_every == 0 or epoch == self.cfg.epochs:
            prefix = f"epoch-{epoch}"
            self.ckpt.write(str(self.dir / prefix))
            artifacts.write_json(self.dir / "latest.json", {"epoch": epoch, "prefix": prefix})
            if self.previous is not None:
                for f in self.dir.glob(f"{self.previous}.*"):
                    f.unlink()
            self.previous = prefix


def _progress(ctx: StageContext, loss: str):
    def show(epoch: int, total: int) -> None:
        if epoch == total or epoch % max(1, total // 5) == 0:
            ctx.console.print(f"  {loss}: epoch {epoch}/{total}")

    return show


def _history_dict(h, loss: str, trainer) -> dict:
    return {"loss_name": loss, "epoch": h.epoch, "loss": h.loss, "val_loss": h.val_loss, "lr": h.lr,
            "l1": h.l1, "l2": h.l2, "lambda": h.lam, "epsilon": h.epsilon, "data_mmd": h.data_mmd,
            "steps_per_epoch": trainer.steps_per_epoch, "batch": trainer.batch}


def load_flow(task_dir: Path, loss: str, cfg: TrainConfig):
    """Rebuild a trained flow from its latest checkpoint."""
    import tensorflow as tf

    from .training import build_flow

    out = model_dir(task_dir, loss)
    pointer = out / "ckpt" / "latest.json"
    if not pointer.is_file():
        raise UserError(f"{out} has no checkpoint: run 'phys-ml train diphoton' first")
    flow = build_flow(cfg)
    lam = tf.Variable(0.0, dtype=tf.float32, trainable=False)
    prefix = str(out / "ckpt" / artifacts.read_json(pointer)["prefix"])
    try:
        tf.train.Checkpoint(flow=flow, mdmm_lambda=lam).read(prefix).assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError) as exc:
        raise UserError(f"{prefix} does not match diphoton.train (n_blocks, hidden_units): "
                        f"{type(exc).__name__}; retrain") from None
    return flow


# ---- evaluate ---------------------------------------------------------------------------------------------
def evaluate(ctx: StageContext, subtask: str | None = None) -> None:
    cfg = parse_config(EvaluateConfig, ctx.params, "diphoton.evaluate")
    tcfg = parse_config(TrainConfig, ctx.params, "diphoton.train")
    task_dir = ctx.task_dir
    sc = artifacts.read_json(task_dir / "models" / "scaler.json")
    mc_tr, mc_val = split(read_sample(task_dir, "mc"), tcfg.validation_fraction)
    data_tr, data_val = split(read_sample(task_dir, "data"), tcfg.validation_fraction)
    pt_max = float(max(mc_tr[:, 0].max(), data_tr[:, 0].max()))
    if min(len(mc_val), len(data_val)) < cfg.n_events:
        raise UserError(f"diphoton.evaluate.n_events is {cfg.n_events} but the held-out split has only "
                        f"{min(len(mc_val), len(data_val))} events per sample: raise diphoton.generate.n_mc/n_data "
                        f"or lower n_events")
    mc_val, data_val = mc_val[: cfg.n_events], data_val[: cfg.n_events]

    from . import tfenv

    tfenv.setup(cfg.seed, cfg.threads)
    from .classifier import discriminate
    from .metrics import correlation_row, correlation_stderr, wasserstein_per_feature
    from .training import sample_transformed

    samples = {"data": data_val, "mc": mc_val}
    histories, swapped, outside, capped, wrapped = {}, {}, {}, {}, {}
    for index, loss in enumerate(tcfg.losses):
        flow = load_flow(task_dir, loss, tcfg)
        gen = sample_transformed(flow, _standardize(mc_val, sc), seed=cfg.seed + index)
        x = _unstandardize(gen, sc)
        if not np.all(np.isfinite(x)):
            raise RunFailed(f"diphoton evaluate: the {loss} model produced non-finite events")
        if cfg.physical_range:
            x, capped[loss], wrapped[loss] = to_physical_range(x, pt_max)
        samples[loss], swapped[loss] = reorder_by_pt(x)
        outside[loss] = float(1.0 - selection_mask(samples[loss]).mean())
        histories[loss] = artifacts.read_json(model_dir(task_dir, loss) / "history.json")
    models = list(tcfg.losses)

    tables = [_table(samples[k], {"sample": pa.array([k] * len(samples[k]))}) for k in samples]
    artifacts.write_parquet(pa.concat_tables(tables), task_dir / "transformed.parquet", task=TASK,
                            stage="evaluate", seed=cfg.seed, params=cfg.model_dump(), extra={"units": UNITS})

    # Table 1, 1-D distances (in units of the data std), classifier AUCs
    corr = {k: correlation_row(v) for k, v in samples.items()}
    data_std = with_mass(data_val).std(0)
    w1 = {k: wasserstein_per_feature(samples[k], data_val, data_std) for k in ["mc", *models]}
    half = len(data_val) // 2
    rocs = {"shuffled data": discriminate(data_val[:half], data_val[half:], tuple(cfg.classifier_hidden),
                                          cfg.classifier_epochs, cfg.classifier_batch, cfg.seed)}
    for k in ["mc", *models]:
        rocs[k] = discriminate(data_val[:half], samples[k][:half], tuple(cfg.classifier_hidden),
                               cfg.classifier_epochs, cfg.classifier_batch, cfg.seed)
    source = parse_config(GenerateConfig, ctx.params, "diphoton.generate").source
    metrics = report_mod.build_metrics(corr, w1, {k: r["auc"] for k, r in rocs.items()}, histories, models, source,
                                       len(data_val), correlation_stderr(data_val, seed=cfg.seed))
    metrics["transformed"] = {"swapped_fraction": swapped, "outside_selection_fraction": outside,
                              "pt_capped_fraction": capped, "phi_wrapped_fraction": wrapped,
                              "physical_range": cfg.physical_range}
    metrics["setup"] = {"epochs": {k: tcfg.epochs_for(k) for k in models}, "n_blocks": tcfg.n_blocks,
                        "hidden_units": tcfg.hidden_units,
                        "batch_size": tcfg.batch_size, "batch_size_mmd": tcfg.batch_size_mmd,
                        "mmd_form": tcfg.mmd_form, "mmd_sigma": tcfg.mmd_sigma, "log_pt": tcfg.log_pt,
                        "mdmm_epsilon_rel": tcfg.mdmm_epsilon_rel}
    artifacts.write_json(task_dir / "metrics.json", metrics)
    report_mod.make_figures(task_dir / "figures", samples, rocs, histories, cfg.hist_bins)
    rows = [(f"AUC {k}", r["auc"]) for k, r in rocs.items()]
    rows += [(f"max |dr| {k}", metrics["corr_max_abs_diff"][k]) for k in ["mc", *models]]
    rows.append(("1 sigma of a difference (largest pair)", max(metrics["corr_diff_noise"].values())))
    print_summary(ctx.console, "diphoton evaluate", rows)


def report_section(data_dir: Path) -> ReportSection | None:
    return report_mod.section(Path(data_dir) / TASK)
