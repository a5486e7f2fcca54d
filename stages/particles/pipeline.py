"""particles: the stage functions generate / train / evaluate for sub-tasks task2, task31, task32.

Each reads its inputs (``store``), calls the science (``datasets``, ``runs``, ``fitting``, ``baselines``,
``evaluation``, ``plots``) and writes its outputs under data/particles/ (see ``store`` for the files; evaluate
writes metrics.json and figures/*.png).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.config import section
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.figures import save_png
from phys_ml.stages.common.progress import print_summary, track
from phys_ml.stages.common.runtime import resolve_device, torch_generator

from . import baselines, config, evaluation, fitting, plots, runs, store
from . import metrics as M
from .datasets import make_task2, make_task3
from .models import MLP, ChargeLSTM, Continuation, InteractionGNN

TASK = store.TASK
CHUNK = 1000  # simulations per progress step (fixed: the random stream depends on it)
FIXED_CHARGE_RANGE = (-1.0, 0.0)  # the three fixed charges are uniform in this range (datasets.Task3Spec)


def _subtasks(subtask: str | None) -> tuple[str, ...]:
    return config.SUBTASKS if subtask is None else (subtask,)


def _data_path(ctx: StageContext, sub: str) -> Path:
    return ctx.task_dir / f"{sub}.parquet"


def _models_dir(ctx: StageContext, sub: str) -> Path:
    return ctx.task_dir / "models" / sub


def _history_path(ctx: StageContext, sub: str) -> Path:
    return ctx.task_dir / f"history_{sub}.parquet"


def _load(ctx: StageContext, sub: str) -> store.DataSet:
    return (store.load_task2 if sub == "task2" else store.load_task3)(_data_path(ctx, sub))


# =============================================================== generate
def generate(ctx: StageContext, subtask: str | None) -> None:
    """Simulate the data set of each selected sub-task."""
    cfgs = {s: config.generate_config(ctx.params, s) for s in _subtasks(subtask)}
    for sub, cfg in cfgs.items():
        gen = torch_generator(cfg.seed)
        sizes = [cfg.n_train, cfg.n_val, cfg.n_test]
        total = sum(sizes)
        make = make_task2 if sub == "task2" else make_task3
        parts = [make(min(CHUNK, total - start), cfg.spec(), cfg.physics(), gen)
                 for start in track(range(0, total, CHUNK), f"simulate {sub}", total=-(-total // CHUNK))]
        split = np.repeat(np.array(store.SPLITS), sizes)
        if sub == "task2":
            table = store.task2_table({k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, split)
            extra = {"horizons": list(cfg.horizons), "units": "dimensionless (unit mass, k from params)"}
        else:
            table = store.task3_table(parts, split)
            extra = {"sample_dt": cfg.sample_dt, "fixed_positions": [list(p) for p in baselines.FIXED_POSITIONS]}
        path = artifacts.write_parquet(table, _data_path(ctx, sub), task=TASK, stage=f"generate-{sub}", seed=cfg.seed,
                                       params=cfg.model_dump(), extra=extra)
        print_summary(ctx.console, f"particles generate {sub}",
                      {"simulations": total, "train / val / test": " / ".join(map(str, sizes)), "written": str(path)})


# =============================================================== train
def train(ctx: StageContext, subtask: str | None) -> None:
    """Train the models (and run the paper's studies) of each selected sub-task.

    A sub-task's models and history are written only after all its runs finished: a diverged run (exit 1)
    keeps the previous ones.
    """
    cfgs = {s: config.train_config(ctx.params, s) for s in _subtasks(subtask)}
    for sub, cfg in cfgs.items():
        trained = getattr(runs, sub)(_load(ctx, sub), cfg, resolve_device(cfg.device))
        for name, run, kwargs in trained.models:
            store.save_model(_models_dir(ctx, sub) / name, run.model, kwargs)
        store.write_history(_history_path(ctx, sub), trained.history, stage=f"train-{sub}", seed=cfg.seed,
                            params=section(ctx.params, f"particles.train.{sub}"))
        print_summary(ctx.console, f"particles train {sub}", trained.summary)


# =============================================================== evaluate
def evaluate(ctx: StageContext, subtask: str | None) -> None:
    """Test-set metrics of every model and baseline, written to metrics.json, and the figures."""
    ecfg = config.evaluate_config(ctx.params)
    tcfgs = {s: config.train_config(ctx.params, s) for s in _subtasks(subtask)}
    path = ctx.task_dir / "metrics.json"
    metrics = artifacts.read_json(path) if subtask is not None and path.is_file() else {}
    fns = {"task2": _evaluate_task2, "task31": _evaluate_task31, "task32": _evaluate_task32}
    for sub, tcfg in tcfgs.items():
        metrics[sub], figures = fns[sub](ctx, tcfg, ecfg)
        for name, fig in figures.items():
            save_png(fig, ctx.task_dir / "figures" / name)
    artifacts.write_json(path, metrics)
    rows = {f"{sub} {k}": v for sub in tcfgs for k, v in evaluation.headline(sub, metrics[sub]).items()}
    print_summary(ctx.console, "particles evaluate", rows)


def _evaluate_task2(ctx: StageContext, cfg: config.Task2Train, ecfg: config.Evaluate):
    ds = _load(ctx, "task2")
    horizons, test = ds.horizons, ds.splits["test"]
    te = fitting.Task2Data.from_arrays(test, "cpu")
    mdir = _models_dir(ctx, "task2")
    base = np.stack([baselines.constant_velocity(test["pos0"], test["vel0"], t) for t in horizons], 1)
    preds: dict[int, dict[str, np.ndarray]] = {}
    for n in cfg.train_sizes:
        mlp = np.stack([fitting.predict_task2(store.load_model(MLP, mdir / f"mlp_n{n}_h{h + 1}.pt"), te).numpy()
                        for h in range(len(horizons))], 1)
        gnn = fitting.predict_task2(store.load_model(InteractionGNN, mdir / f"gnn_n{n}.pt"), te).numpy()
        preds[n] = {"baseline": base, "mlp": mlp, "gnn": gnn}
    history = store.read_history(_history_path(ctx, "task2"))
    n = max(cfg.train_sizes)
    return (evaluation.task2(test, horizons, preds, history),
            plots.task2_figures(test, horizons, preds[n], n, history))


def _sequence_test_set(ctx: StageContext, sub: str):
    ds = _load(ctx, sub)
    test = ds.splits["test"]
    return ds, test, fitting.SeqData.from_arrays(test, "cpu"), store.read_history(_history_path(ctx, sub))


def _evaluate_task31(ctx: StageContext, cfg: config.Task31Train, ecfg: config.Evaluate):
    ds, test, te, history = _sequence_test_set(ctx, "task31")
    vel, dt = cfg.features == "positions_velocities", ds.sample_dt
    mdir = _models_dir(ctx, "task31")

    def predict(name: str) -> np.ndarray:
        return fitting.predict_charges(store.load_model(ChargeLSTM, mdir / name), te, vel, dt).numpy()

    lstm = predict("lstm.pt")
    ls = baselines.least_squares_charges(test["given"], test["lengths"], dt, ds.physics, FIXED_CHARGE_RANGE,
                                         ecfg.ls_min_distance)
    compare = [predict(f"compare_{i}.pt") for i in range(len(history.get("compare", {})))]
    return (evaluation.task31(test["charges"], ds.splits["train"]["charges"], lstm, ls, compare, history),
            plots.task31_figures(test, lstm, ls, history))


def _evaluate_task32(ctx: StageContext, cfg: config.Task32Train, ecfg: config.Evaluate):
    ds, test, te, history = _sequence_test_set(ctx, "task32")
    horizon = test["cont"].shape[1]
    preds = {"linear_extrapolation": baselines.linear_extrapolation(test["given"], test["lengths"], horizon)}
    preds["physics_rollout"], q_fit = baselines.physics_rollout(test["given"], test["lengths"], horizon,
                                                                ds.sample_dt, ds.physics, FIXED_CHARGE_RANGE,
                                                                ecfg.ls_min_distance)
    for name in cfg.models:
        model = store.load_model(Continuation, _models_dir(ctx, "task32") / f"{name}.pt")
        preds[name] = fitting.predict_continuation(model, te, horizon).numpy()
    out = evaluation.task32(test, preds, q_fit, history)
    mask = evaluation.continuation_mask(test)
    figures = plots.task32_figures(test, preds, list(cfg.models), lambda p: M.per_row_masked_mse(p, test["cont"], mask),
                                   {k: v["mse"] for k, v in out["models"].items()}, history)
    return out, figures
