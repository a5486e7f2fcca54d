"""particles: generate / train / evaluate for sub-tasks task2, task31, task32, and the report section.

All file I/O of the task lives here. Outputs under data/particles/:
  task2.parquet, task31.parquet, task32.parquet      data sets (split column: train / val / test)
  models/<subtask>/*.pt                               trained models (state dict + constructor arguments)
  history_<subtask>.parquet                           per-epoch training and validation losses of every run
  metrics.json, figures/*.png                         written by evaluate
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.config import section
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.figures import save_png
from phys_ml.stages.common.optim import parse_optimizer
from phys_ml.stages.common.progress import print_summary, track
from phys_ml.stages.common.report import ReportSection
from phys_ml.stages.common.runtime import resolve_device, torch_generator

from . import baselines, config, fitting, plots
from . import metrics as M
from .datasets import make_task2, make_task3
from .models import MLP, ChargeLSTM, Continuation, InteractionGNN

TASK = "particles"
CHUNK = 1000  # simulations per progress step (fixed: the random stream depends on it)
SPLITS = ("train", "val", "test")


def _subtasks(subtask: str | None) -> tuple[str, ...]:
    return config.SUBTASKS if subtask is None else (subtask,)


def _data_path(ctx, sub: str) -> Path:
    return ctx.task_dir / f"{sub}.parquet"


def _models_dir(ctx, sub: str) -> Path:
    return ctx.task_dir / "models" / sub


def _figures(ctx) -> Path:
    return ctx.task_dir / "figures"


# =============================================================== generate
def generate(ctx, subtask: str | None) -> None:
    """Simulate the data set of each selected sub-task."""
    cfgs = {s: config.generate_config(ctx.params, s) for s in _subtasks(subtask)}
    for sub, cfg in cfgs.items():
        gen = torch_generator(cfg.seed)
        sizes = [cfg.n_train, cfg.n_val, cfg.n_test]
        total = sum(sizes)
        parts = []
        for start in track(range(0, total, CHUNK), f"simulate {sub}", total=-(-total // CHUNK)):
            n = min(CHUNK, total - start)
            if sub == "task2":
                parts.append(make_task2(n, cfg.spec(), cfg.physics(), gen))
            else:
                parts.append(make_task3(n, cfg.spec(), cfg.physics(), gen))
        split = np.repeat(np.array(SPLITS), sizes)
        if sub == "task2":
            data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            table = _task2_table(data, split)
            extra = {"horizons": list(cfg.horizons), "units": "dimensionless (unit mass, k from params)"}
        else:
            table = _task3_table(parts, split)
            extra = {"sample_dt": cfg.sample_dt, "fixed_positions": [list(p) for p in baselines.FIXED_POSITIONS]}
        path = artifacts.write_parquet(table, _data_path(ctx, sub), task=TASK, stage=f"generate-{sub}", seed=cfg.seed,
                                       params=cfg.model_dump(), extra=extra)
        print_summary(ctx.console, f"particles generate {sub}",
                      {"simulations": total, "train / val / test": " / ".join(map(str, sizes)), "written": str(path)})


def _task2_table(data: dict[str, np.ndarray], split: np.ndarray) -> pa.Table:
    cols: dict[str, Any] = {
        "split": pa.array(split),
        "pos0": artifacts.fixed_size_list(data["pos0"]),
        "vel0": artifacts.fixed_size_list(data["vel0"]),
        "charges": artifacts.fixed_size_list(data["charges"]),
    }
    for h in range(data["targets"].shape[1]):
        cols[f"pos_h{h + 1}"] = artifacts.fixed_size_list(data["targets"][:, h])
    return pa.table(cols)


def _task3_table(parts: list[dict[str, np.ndarray]], split: np.ndarray) -> pa.Table:
    given, cont, lengths, cont_lengths, charges = [], [], [], [], []
    for p in parts:
        for traj, n, c, q in zip(p["traj"], p["lengths"], p["cont_lengths"], p["charges"]):
            given.append(traj[:n])
            cont.append(traj[n:n + c])
            lengths.append(int(n))
            cont_lengths.append(int(c))
            charges.append(q)
    q = np.asarray(charges)
    return pa.table({
        "split": pa.array(split),
        "length": pa.array(lengths, pa.int32()),
        "cont_length": pa.array(cont_lengths, pa.int32()),
        "given": artifacts.list_column(given),  # x0, y0, x1, y1, ...
        "continuation": artifacts.list_column(cont),
        "q1": pa.array(q[:, 0]),
        "q2": pa.array(q[:, 1]),
        "q3": pa.array(q[:, 2]),
    })


# =============================================================== loading
def load_task2(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    table, meta = artifacts.read_parquet(path)
    split = np.asarray(table.column("split").to_pylist())
    horizons = meta.get("horizons") or []
    n_part = len(table.column("charges")[0])
    arrays = {
        "pos0": artifacts.fixed_size_to_numpy(table.column("pos0"), (n_part, 2)),
        "vel0": artifacts.fixed_size_to_numpy(table.column("vel0"), (n_part, 2)),
        "charges": artifacts.fixed_size_to_numpy(table.column("charges"), (n_part,)),
        "targets": np.stack([artifacts.fixed_size_to_numpy(table.column(f"pos_h{h + 1}"), (n_part, 2))
                             for h in range(len(horizons))], 1),
    }
    return {s: {k: v[split == s] for k, v in arrays.items()} for s in SPLITS}, meta


def load_task3(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Per split: given (n, T, 2) and continuation (n, C, 2), zero-padded, lengths, cont_lengths, charges."""
    table, meta = artifacts.read_parquet(path)
    split = np.asarray(table.column("split").to_pylist())
    given = artifacts.list_column_to_numpy(table.column("given"), 2)
    cont = artifacts.list_column_to_numpy(table.column("continuation"), 2)
    lengths = table.column("length").to_numpy().astype(np.int64)
    cont_lengths = table.column("cont_length").to_numpy().astype(np.int64)
    q = np.stack([table.column(c).to_numpy() for c in ("q1", "q2", "q3")], 1)
    out = {}
    for s in SPLITS:
        rows = np.flatnonzero(split == s)
        t_max, c_max = int(lengths.max()), max(int(cont_lengths.max()), 1)
        g = np.zeros((len(rows), t_max, 2))
        c = np.zeros((len(rows), c_max, 2))
        for k, r in enumerate(rows):
            g[k, :lengths[r]] = given[r].reshape(-1, 2)
            c[k, :cont_lengths[r]] = cont[r].reshape(-1, 2)
        out[s] = {"given": g, "cont": c, "lengths": lengths[rows], "cont_lengths": cont_lengths[rows],
                  "charges": q[rows]}
    return out, meta


def _task2_tensors(d: dict[str, np.ndarray], device) -> fitting.Task2Data:
    t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
    return fitting.Task2Data(t(d["pos0"]), t(d["vel0"]), t(d["charges"]), t(d["targets"]))


def _seq_tensors(d: dict[str, np.ndarray], device) -> fitting.SeqData:
    t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
    lengths = torch.as_tensor(d["lengths"], device=device)
    return fitting.SeqData(t(d["given"]), lengths, t(d["charges"]), t(d["cont"]),
                           torch.as_tensor(d["cont_lengths"], device=device))


def _save_model(path: Path, run: fitting.Run, kwargs: dict[str, Any]) -> None:
    state = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
    artifacts.save_torch({"state_dict": state, "kwargs": kwargs}, path)


def _load_model(cls, path: Path) -> torch.nn.Module:
    saved = artifacts.load_torch(path)
    kwargs = dict(saved["kwargs"])
    if "horizons" in kwargs:
        kwargs["horizons"] = tuple(kwargs["horizons"])
    model = cls(**kwargs)
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def _write_history(ctx, sub: str, rows: list[tuple[str, str, dict[str, list[float]]]], seed: int) -> None:
    """rows: (group, label, history) -> long table run/group/label/epoch/train_loss/val_loss."""
    cols: dict[str, list] = {"group": [], "label": [], "epoch": [], "train_loss": [], "val_loss": []}
    for group, label, hist in rows:
        for e, (tr, va) in enumerate(zip(hist["train_loss"], hist["val_loss"]), start=1):
            cols["group"].append(group)
            cols["label"].append(label)
            cols["epoch"].append(e)
            cols["train_loss"].append(float(tr))
            cols["val_loss"].append(float(va))
    table = pa.table({"group": pa.array(cols["group"], pa.string()), "label": pa.array(cols["label"], pa.string()),
                      "epoch": pa.array(cols["epoch"], pa.int32()), "train_loss": pa.array(cols["train_loss"]),
                      "val_loss": pa.array(cols["val_loss"])})
    artifacts.write_parquet(table, ctx.task_dir / f"history_{sub}.parquet", task=TASK, stage=f"train-{sub}",
                            seed=seed, params=section(ctx.params, f"particles.train.{sub}"))


def _read_history(ctx, sub: str) -> dict[str, dict[str, dict[str, list[float]]]]:
    """{group: {label: {"train_loss": [...], "val_loss": [...]}}}"""
    table, _ = artifacts.read_parquet(ctx.task_dir / f"history_{sub}.parquet")
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for g, lab, tr, va in zip(*(table.column(c).to_pylist() for c in ("group", "label", "train_loss", "val_loss"))):
        h = out.setdefault(g, {}).setdefault(lab, {"train_loss": [], "val_loss": []})
        h["train_loss"].append(tr)
        h["val_loss"].append(va)
    return out


# =============================================================== train
def train(ctx, subtask: str | None) -> None:
    """Train the models (and run the paper's studies) of each selected sub-task."""
    cfgs = {s: config.train_config(ctx.params, s) for s in _subtasks(subtask)}
    for sub, cfg in cfgs.items():
        {"task2": _train_task2, "task31": _train_task31, "task32": _train_task32}[sub](ctx, cfg)


def _with_lr(choice, lr: float):
    return parse_optimizer({"name": choice.name, **choice.kwargs(), "lr": lr})


def _train_task2(ctx, cfg: config.Task2Train) -> None:
    device = resolve_device(cfg.device)
    data, meta = load_task2(_data_path(ctx, "task2"))
    horizons = tuple(meta["horizons"])
    softening = float(meta["params"]["softening"])
    train_all, val = _task2_tensors(data["train"], device), _task2_tensors(data["val"], device)
    n_avail = train_all.pos0.shape[0]
    for n in cfg.train_sizes + ([cfg.studies.train_size] if cfg.studies.enabled else []):
        if n > n_avail:
            raise UserError(f"particles.train.task2 asks for {n} training simulations, the data set has {n_avail}")
    out = _models_dir(ctx, "task2")
    hist: list[tuple[str, str, dict]] = []
    summary: dict[str, object] = {}
    n_part = train_all.pos0.shape[1]
    for n in cfg.train_sizes:
        tr = train_all.head(n)
        for h, t in enumerate(horizons):
            run = fitting.train_mlp(tr, val, h, optimizer=cfg.mlp.optimizer, epochs=cfg.mlp.epochs,
                                    batch_size=cfg.mlp.batch_size, seed=cfg.seed, description=f"mlp n={n} t={t:g}")
            _save_model(out / f"mlp_n{n}_h{h + 1}.pt", run, {"n_particles": n_part})
            hist.append(("mlp", f"n={n} t={t:g}", run.history))
        run = fitting.train_gnn(tr, val, horizons, hidden=cfg.gnn.hidden, layers=cfg.gnn.layers, softening=softening,
                                optimizer=cfg.gnn.optimizer, epochs=cfg.gnn.epochs, batch_size=cfg.gnn.batch_size,
                                seed=cfg.seed, description=f"gnn n={n}")
        _save_model(out / f"gnn_n{n}.pt", run, {"horizons": list(horizons), "hidden": cfg.gnn.hidden,
                                                "layers": cfg.gnn.layers, "softening": softening})
        hist.append(("gnn", f"n={n}", run.history))
        summary[f"gnn n={n} final val MSE"] = run.history["val_loss"][-1]
    st = cfg.studies
    if st.enabled:
        sub = train_all.head(st.train_size)
        runs = [("optimizer", config.optimizer_label(o), o, st.batch_size) for o in st.optimizers]
        runs += [("learning_rate", f"lr={lr:g}", _with_lr(st.base_optimizer, lr), st.batch_size)
                 for lr in st.learning_rates]
        runs += [("batch_size", f"batch={b}", st.base_optimizer, b) for b in st.batch_sizes]
        done: dict[tuple, dict] = {}  # the same optimizer and batch size appear in several studies: train once
        for group, label, opt, batch in runs:
            key = (opt.name, repr(sorted(opt.kwargs().items())), batch)
            if key not in done:
                done[key] = fitting.train_mlp(sub, val, 0, optimizer=opt, epochs=st.epochs, batch_size=batch,
                                              seed=cfg.seed, description=f"study {group} {label}").history
            hist.append((f"study_{group}", label, done[key]))
            summary[f"study {group} {label}: best val MSE"] = min(done[key]["val_loss"])
    _write_history(ctx, "task2", hist, cfg.seed)
    print_summary(ctx.console, "particles train task2", summary)


def _train_task31(ctx, cfg: config.Task31Train) -> None:
    device = resolve_device(cfg.device)
    data, meta = load_task3(_data_path(ctx, "task31"))
    dt = float(meta["sample_dt"])
    tr, va = _seq_tensors(data["train"], device), _seq_tensors(data["val"], device)
    vel = cfg.features == "positions_velocities"
    out = _models_dir(ctx, "task31")
    kwargs = {"n_features": 4 if vel else 2, "hidden": cfg.hidden, "fc": cfg.fc}
    common = dict(hidden=cfg.hidden, fc=cfg.fc, with_velocity=vel, sample_dt=dt, batch_size=cfg.batch_size,
                  seed=cfg.seed, grad_clip=cfg.grad_clip)
    run = fitting.train_charge_lstm(tr, va, optimizer=cfg.optimizer, epochs=cfg.epochs, description="lstm", **common)
    _save_model(out / "lstm.pt", run, kwargs)
    hist = [("main", config.optimizer_label(cfg.optimizer), run.history)]
    summary: dict[str, object] = {"lstm best val MSE": min(run.history["val_loss"])}
    if cfg.compare.enabled:
        chosen, skipped = cfg.compare.selected()
        for i, opt in enumerate(chosen):
            label = config.optimizer_label(opt)
            r = fitting.train_charge_lstm(tr, va, optimizer=opt, epochs=cfg.compare.epochs,
                                          description=f"compare {label}", **common)
            _save_model(out / f"compare_{i}.pt", r, kwargs)
            hist.append(("compare", label, r.history))
            summary[f"compare {label}: best val MSE"] = min(r.history["val_loss"])
        for name in skipped:
            summary[f"compare {name}"] = "skipped (not registered)"
    _write_history(ctx, "task31", hist, cfg.seed)
    print_summary(ctx.console, "particles train task31", summary)


def _cell(name: str) -> tuple[str, bool]:
    return name.split("_")[0], name.endswith("_residual")


def _train_task32(ctx, cfg: config.Task32Train) -> None:
    device = resolve_device(cfg.device)
    data, meta = load_task3(_data_path(ctx, "task32"))
    dt = float(meta["sample_dt"])
    tr, va = _seq_tensors(data["train"], device), _seq_tensors(data["val"], device)
    out = _models_dir(ctx, "task32")
    hist, summary = [], {}
    for name in cfg.models:
        cell, residual = _cell(name)
        run = fitting.train_continuation(tr, va, cell=cell, residual=residual, hidden=cfg.hidden, layers=cfg.layers,
                                         fc=cfg.fc, sample_dt=dt, optimizer=cfg.optimizer, epochs=cfg.epochs,
                                         batch_size=cfg.batch_size, seed=cfg.seed, grad_clip=cfg.grad_clip,
                                         description=name)
        _save_model(out / f"{name}.pt", run, {"cell": cell, "hidden": cfg.hidden, "layers": cfg.layers, "fc": cfg.fc,
                                               "residual": residual, "sample_dt": dt})
        hist.append(("model", name, run.history))
        summary[f"{name} best val MSE"] = min(run.history["val_loss"])
    _write_history(ctx, "task32", hist, cfg.seed)
    print_summary(ctx.console, "particles train task32", summary)


# =============================================================== evaluate
def evaluate(ctx, subtask: str | None) -> None:
    """Test-set metrics of every model and baseline, written to metrics.json, and the figures."""
    ecfg = config.evaluate_config(ctx.params)
    tcfgs = {s: config.train_config(ctx.params, s) for s in _subtasks(subtask)}
    path = ctx.task_dir / "metrics.json"
    metrics: dict[str, Any] = {}
    if subtask is not None and path.is_file():
        metrics = artifacts.read_json(path)
    fns = {"task2": _evaluate_task2, "task31": _evaluate_task31, "task32": _evaluate_task32}
    for sub, tcfg in tcfgs.items():
        metrics[sub] = fns[sub](ctx, tcfg, ecfg)
    artifacts.write_json(path, metrics)
    rows = {f"{sub} {k}": v for sub in tcfgs for k, v in _headline(sub, metrics[sub]).items()}
    print_summary(ctx.console, "particles evaluate", rows)


def _headline(sub: str, m: dict[str, Any]) -> dict[str, float]:
    if sub == "task2":
        n = max(m["train_sizes"])
        big = m[f"n{n}"]
        last = m["horizons"][-1]
        return {f"n={n} R2 t={last:g} {k}": big[k][f"r2_t{last:g}"] for k in ("baseline", "mlp", "gnn")}
    if sub == "task31":
        return {"LSTM charge MSE": m["lstm"]["mse"], "least-squares charge MSE": m["least_squares"]["mse"]}
    return {f"{k} MSE": v["mse"] for k, v in m["models"].items()}


def _evaluate_task2(ctx, cfg: config.Task2Train, ecfg: config.Evaluate) -> dict[str, Any]:
    data, meta = load_task2(_data_path(ctx, "task2"))
    horizons = tuple(meta["horizons"])
    test = data["test"]
    te = _task2_tensors(test, "cpu")
    mdir = _models_dir(ctx, "task2")
    out: dict[str, Any] = {"train_sizes": list(cfg.train_sizes), "horizons": list(horizons)}
    base = np.stack([baselines.constant_velocity(test["pos0"], test["vel0"], t) for t in horizons], 1)
    preds: dict[int, dict[str, np.ndarray]] = {}
    for n in cfg.train_sizes:
        mlp = np.stack([fitting.predict_task2(_load_model(MLP, mdir / f"mlp_n{n}_h{h + 1}.pt"), te).numpy()
                        for h in range(len(horizons))], 1)
        gnn = fitting.predict_task2(_load_model(InteractionGNN, mdir / f"gnn_n{n}.pt"), te).numpy()
        preds[n] = {"baseline": base, "mlp": mlp, "gnn": gnn}
        out[f"n{n}"] = {
            name: {**{f"rmse_t{t:g}": M.rmse(p[:, h], test["targets"][:, h]) for h, t in enumerate(horizons)},
                   **{f"r2_t{t:g}": M.r2(p[:, h], test["targets"][:, h]) for h, t in enumerate(horizons)}}
            for name, p in preds[n].items()
        }
    hist = _read_history(ctx, "task2")
    studies = {}
    for group, runs in hist.items():
        if group.startswith("study_"):
            studies[group[6:]] = {label: {"best_val_mse": min(h["val_loss"]), "final_val_mse": h["val_loss"][-1]}
                                  for label, h in runs.items()}
    out["studies"] = studies
    # figures
    fig_dir = _figures(ctx)
    n = max(cfg.train_sizes)
    main = {lab: h for lab, h in hist["mlp"].items() if lab.startswith(f"n={n} ")}
    gnn_h = {f"gnn {lab}": h for lab, h in hist["gnn"].items()}
    save_png(plots.loss_curves([(f"MLP, {n} training sims (one per horizon)", main),
                                     ("graph network (all horizons)", gnn_h)]), fig_dir / "task2_loss_curves.png")
    panels = [(f"study: {g[6:].replace('_', ' ')} (MLP, t={horizons[0]:g})", runs)
              for g, runs in hist.items() if g.startswith("study_")]
    save_png(plots.loss_curves(panels) if panels else plots.note("studies disabled in params"),
             fig_dir / "task2_studies.png")
    err = ((preds[n]["gnn"][:, -1] - test["targets"][:, -1]) ** 2).mean((1, 2))
    best, worst = int(np.argmin(err)), int(np.argmax(err))
    cases = []
    for which, i in (("best", best), ("worst", worst)):
        for model in ("gnn", "mlp"):
            cases.append((f"{which} test sim for the GNN ({model})", test["pos0"][i], test["targets"][i],
                          preds[n][model][i], test["charges"][i]))
    save_png(plots.task2_trajectories(cases), fig_dir / "task2_trajectories.png")
    return out


def _physics_from_meta(meta: dict):
    p = meta["params"]
    return config.PhysicsFields(coupling=float(p["coupling"]), softening=float(p["softening"]),
                                dt=float(p["dt"])).physics()


def _charge_errors(pred: np.ndarray, q: np.ndarray) -> dict[str, float]:
    return {"mse": float(((pred - q) ** 2).mean()), "mae": float(np.abs(pred - q).mean()),
            "rmse": float(np.sqrt(((pred - q) ** 2).mean()))}


def _evaluate_task31(ctx, cfg: config.Task31Train, ecfg: config.Evaluate) -> dict[str, Any]:
    data, meta = load_task3(_data_path(ctx, "task31"))
    dt = float(meta["sample_dt"])
    physics = _physics_from_meta(meta)
    test = data["test"]
    te = _seq_tensors(test, "cpu")
    vel = cfg.features == "positions_velocities"
    mdir = _models_dir(ctx, "task31")
    lstm = fitting.predict_charges(_load_model(ChargeLSTM, mdir / "lstm.pt"), te, vel, dt).numpy()
    ls = baselines.least_squares_charges(test["given"], test["lengths"], dt, physics, (-1.0, 0.0),
                                         ecfg.ls_min_distance)
    q = test["charges"]
    mean_pred = np.broadcast_to(data["train"]["charges"].mean(0), q.shape)
    hist = _read_history(ctx, "task31")
    main_label, main_hist = next(iter(hist["main"].items()))
    out: dict[str, Any] = {
        "lstm": {**_charge_errors(lstm, q), "best_val_mse": min(main_hist["val_loss"]), "optimizer": main_label},
        "least_squares": _charge_errors(ls, q),
        "train_mean": _charge_errors(mean_pred, q),
        "compare": {},
    }
    for i, (label, h) in enumerate(hist.get("compare", {}).items()):
        p = fitting.predict_charges(_load_model(ChargeLSTM, mdir / f"compare_{i}.pt"), te, vel, dt).numpy()
        out["compare"][label] = {"best_val_mse": min(h["val_loss"]), "worst_val_mse": max(h["val_loss"]),
                                 "test_mse": _charge_errors(p, q)["mse"]}
    fig_dir = _figures(ctx)
    panels = [("LSTM (" + main_label + ")", {"main": main_hist})]
    if hist.get("compare"):
        panels.append(("optimizer comparison", hist["compare"]))
    save_png(plots.loss_curves(panels), fig_dir / "task31_loss_curves.png")
    save_png(plots.charge_scatter([("LSTM", q, lstm), ("least squares (force law)", q, ls)]),
                  fig_dir / "task31_charges.png")
    err = ((lstm - q) ** 2).mean(1)
    cases = []
    for which, i in (("best", int(np.argmin(err))), ("worst", int(np.argmax(err)))):
        cases.append((f"{which} LSTM prediction (MSE {err[i]:.3g})", test["given"][i, :test["lengths"][i]], q[i],
                      lstm[i]))
    save_png(plots.task31_cases(cases), fig_dir / "task31_best_worst.png")
    return out


def _evaluate_task32(ctx, cfg: config.Task32Train, ecfg: config.Evaluate) -> dict[str, Any]:
    data, meta = load_task3(_data_path(ctx, "task32"))
    dt = float(meta["sample_dt"])
    physics = _physics_from_meta(meta)
    test = data["test"]
    te = _seq_tensors(test, "cpu")
    horizon = test["cont"].shape[1]
    mask = (np.arange(horizon)[None] < test["cont_lengths"][:, None])
    preds = {"linear_extrapolation": baselines.linear_extrapolation(test["given"], test["lengths"], horizon)}
    preds["physics_rollout"], q_fit = baselines.physics_rollout(test["given"], test["lengths"], horizon, dt, physics,
                                                                (-1.0, 0.0), ecfg.ls_min_distance)
    hist = _read_history(ctx, "task32")
    for name in cfg.models:
        model = _load_model(Continuation, _models_dir(ctx, "task32") / f"{name}.pt")
        preds[name] = fitting.predict_continuation(model, te, horizon).numpy()
    out: dict[str, Any] = {"models": {}, "physics_rollout_charge_mse": float(((q_fit - test["charges"]) ** 2).mean())}
    for name, p in preds.items():
        row = {"mse": M.masked_mse(p, test["cont"], mask)}
        if name in hist.get("model", {}):
            row["best_val_mse"] = min(hist["model"][name]["val_loss"])
        out["models"][name] = row
    lin = out["models"]["linear_extrapolation"]["mse"]
    out["beats_linear"] = sorted(k for k, v in out["models"].items() if v["mse"] < lin)
    fig_dir = _figures(ctx)
    save_png(plots.loss_curves([("continuation roll-out", hist.get("model", {}))]),
                  fig_dir / "task32_loss_curves.png")
    learned = [k for k in cfg.models]
    best_learned = min(learned, key=lambda k: out["models"][k]["mse"])
    err = M.per_row_masked_mse(preds[best_learned], test["cont"], mask)
    cases = []
    for which, i in (("best", int(np.argmin(err))), ("worst", int(np.argmax(err)))):
        c = test["cont_lengths"][i]
        shown = {k: preds[k][i, :c] for k in dict.fromkeys([cfg.models[0], best_learned, "linear_extrapolation",
                                                             "physics_rollout"])}
        cases.append((f"{which} test case for {best_learned}", test["given"][i, :test["lengths"][i]],
                      test["cont"][i, :c], shown))
    save_png(plots.task32_cases(cases), fig_dir / "task32_best_worst.png")
    return out


# =============================================================== report
def report_section(data_dir: Path) -> ReportSection | None:
    from .report import build_section

    path = Path(data_dir) / TASK / "metrics.json"
    if not path.is_file():
        return None
    return build_section(artifacts.read_json(path), Path(data_dir) / TASK / "figures")

