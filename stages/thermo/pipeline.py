"""thermo stages: two-spiral data -> one ensemble of networks per optimizer -> tables, figures, metrics.

Each stage reads (``store``), calls the science (``data``, ``train``, ``metrics``) and writes; artifacts are
listed in ``store``, figures built in ``plots``, the report section in ``report``.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.config import parse_config
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.figures import save_png
from phys_ml.stages.common.progress import print_summary, track
from phys_ml.stages.common.runtime import resolve_device
from phys_ml.stages.common.timings import Stopwatch, record_timing

from . import plots, store
from .config import EvaluateConfig, GenerateConfig, TrainConfig
from .data import two_spirals
from .metrics import mean_sd, summarize
from .report import pm
from .store import TASK
from .train import train_ensemble


def _check_subtask(subtask: str | None) -> None:
    if subtask is not None:
        raise UserError(f"task 'thermo' has no sub-tasks, got {subtask!r}")


def _member_seeds(cfg: TrainConfig) -> list[int]:
    """Network initialisation seeds, shared by every optimizer (a paired comparison)."""
    return [cfg.seed * 1000 + r for r in range(cfg.runs)]


def _noise_seed(cfg: TrainConfig, label: str) -> int:
    """Minibatch order and optimizer noise: a stable seed per optimizer label."""
    return cfg.seed * 1_000_003 + zlib.crc32(label.encode()) % 1_000_000


def generate(ctx: StageContext, subtask: str | None) -> None:
    _check_subtask(subtask)
    cfg = parse_config(GenerateConfig, ctx.params, "thermo.generate")
    rng = np.random.default_rng(cfg.seed)
    train = two_spirals(cfg.n_train, cfg.noise, rng, cfg.turns)
    test = two_spirals(cfg.n_test, cfg.noise, rng, cfg.turns)
    path = store.write_spirals(ctx.task_dir, train, test, seed=cfg.seed, params=cfg.model_dump())
    print_summary(ctx.console, "thermo generate", {"train points": cfg.n_train, "test points": cfg.n_test,
                                                   "noise": cfg.noise, "turns": cfg.turns, "written": str(path)})


def train(ctx: StageContext, subtask: str | None) -> None:
    _check_subtask(subtask)
    cfg = parse_config(TrainConfig, ctx.params, "thermo.train")
    device = resolve_device(cfg.device)
    data = store.read_spirals(ctx.task_dir, device)
    seeds = _member_seeds(cfg)
    watch, curves, finals = Stopwatch(), {}, {}
    for label, choice in cfg.optimizers.items():
        with watch(label):
            model, curves[label] = train_ensemble(
                data, choice, seeds, epochs=cfg.epochs, batch_size=cfg.batch_size, hidden=cfg.hidden,
                eval_every=cfg.eval_every, noise_seed=_noise_seed(cfg, label), name=f"thermo train {label}",
                progress=lambda it, label=label: track(it, f"thermo train {label}", total=cfg.epochs))
        store.save_model(ctx.task_dir, label, model)
        c = curves[label]
        if c.diverged:
            ctx.console.print(f"warning: thermo train {label}: {c.diverged} of {len(seeds)} runs diverged (first "
                              f"at epoch {int(c.diverged_at[c.diverged_at >= 0].min())}); kept, their values "
                              "are NaN from then on and the report marks them diverged")
        acc, sd = mean_sd(c.test_acc[-1])
        finals[label] = (f"{100 * acc:.1f} ± {100 * sd:.1f} %" if acc is not None else "all runs diverged") + \
            (f" ({c.diverged} of {len(seeds)} diverged)" if c.diverged and acc is not None else "")
    params = cfg.model_dump()
    params["optimizers"] = {k: {"name": v.name, **v.kwargs()} for k, v in cfg.optimizers.items()}
    store.write_curves(ctx.task_dir, curves, seeds, seed=cfg.seed, params=params)
    record_timing(ctx.data_dir, TASK, "train", {"device": str(device), "runs": cfg.runs, "epochs": cfg.epochs,
                                                "wall_s": watch.seconds,
                                                "wall_s_total": round(sum(watch.seconds.values()), 2)})
    print_summary(ctx.console, f"thermo train: final test accuracy over {cfg.runs} runs, {cfg.epochs} epochs",
                  finals)


def evaluate(ctx: StageContext, subtask: str | None) -> None:
    _check_subtask(subtask)
    cfg = parse_config(EvaluateConfig, ctx.params, "thermo.evaluate")
    curves, meta = store.read_curves(ctx.task_dir)
    data = store.read_spirals(ctx.task_dir)
    train_params = meta.get("params", {})
    for label, c in curves.items():
        missing = sorted(set(cfg.table_epochs) - {int(e) for e in c["epochs"]})
        if missing:
            raise UserError(f"thermo.evaluate.table_epochs: epoch(s) {missing} were not recorded by training "
                            f"({label}: epochs {int(c['epochs'][0])} to {int(c['epochs'][-1])} every "
                            f"{train_params.get('eval_every', '?')}; see thermo.train.epochs and eval_every)")
    metrics = summarize(curves, cfg.table_epochs)
    metrics["runs"] = int(train_params.get("runs", 0))
    metrics["epochs"] = int(train_params.get("epochs", 0))
    metrics["steps_per_epoch"] = math.ceil(len(data["x_train"]) / int(train_params.get("batch_size", 1)))

    # Everything is read and drawn before anything is written: a failure leaves the previous outputs as they were.
    hidden = int(train_params.get("hidden", 100))
    models = {label: store.load_model(ctx.task_dir, label, hidden) for label in curves}
    references = plots.thermostat_references(train_params.get("optimizers", {}))
    figures = {"curves.png": plots.curves_figure(curves),
               "boundaries.png": plots.boundaries_figure(models, data, grid=cfg.grid, runs=cfg.boundary_runs),
               "thermostat.png": plots.thermostat_figure(curves, references)}
    for name, fig in figures.items():
        save_png(fig, ctx.task_dir / "figures" / name)
    artifacts.write_json(ctx.task_dir / "metrics.json", metrics)
    last = metrics["epochs"]
    print_summary(ctx.console, f"thermo evaluate: test accuracy (%) at epoch {last}, mean +- sd",
                  {label: pm(metrics[label], f"test_acc_e{last}", 100) for label in curves})
