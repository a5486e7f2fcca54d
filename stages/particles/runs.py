"""The training runs of each sub-task: data sets in, trained models and loss histories out (no file I/O).

The pipeline saves what a sub-task returns only once all its runs have finished, so a run that diverges
(``Diverged``, exit 1) leaves the models of the previous training in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.optim import parse_optimizer

from . import config, fitting
from .store import DataSet


@dataclass
class Trained:
    """What one sub-task's training produced."""

    models: list[tuple[str, fitting.Run, dict[str, Any]]] = field(default_factory=list)  # (file name, run, kwargs)
    history: list[tuple[str, str, dict[str, list[float]]]] = field(default_factory=list)  # (group, label, losses)
    summary: dict[str, object] = field(default_factory=dict)


def _with_lr(choice, lr: float):
    return parse_optimizer({"name": choice.name, **choice.kwargs(), "lr": lr})


def task2(ds: DataSet, cfg: config.Task2Train, device) -> Trained:
    """One MLP per horizon and one graph network per training size, then the paper's Sec. 1.4 studies."""
    horizons = ds.horizons
    softening = float(ds.meta["params"]["softening"])
    train_all = fitting.Task2Data.from_arrays(ds.splits["train"], device)
    val = fitting.Task2Data.from_arrays(ds.splits["val"], device)
    n_avail = train_all.pos0.shape[0]
    for n in cfg.train_sizes + ([cfg.studies.train_size] if cfg.studies.enabled else []):
        if n > n_avail:
            raise UserError(f"particles.train.task2 asks for {n} training simulations, the data set has {n_avail}")
    out = Trained()
    n_part = train_all.pos0.shape[1]
    for n in cfg.train_sizes:
        tr = train_all.head(n)
        for h, t in enumerate(horizons):
            run = fitting.train_mlp(tr, val, h, optimizer=cfg.mlp.optimizer, epochs=cfg.mlp.epochs,
                                    batch_size=cfg.mlp.batch_size, seed=cfg.seed,
                                    description=f"task2 mlp n={n} t={t:g}")
            out.models.append((f"mlp_n{n}_h{h + 1}.pt", run, {"n_particles": n_part}))
            out.history.append(("mlp", f"n={n} t={t:g}", run.history))
        run = fitting.train_gnn(tr, val, horizons, hidden=cfg.gnn.hidden, layers=cfg.gnn.layers, softening=softening,
                                optimizer=cfg.gnn.optimizer, epochs=cfg.gnn.epochs, batch_size=cfg.gnn.batch_size,
                                seed=cfg.seed, description=f"task2 gnn n={n}")
        out.models.append((f"gnn_n{n}.pt", run, {"horizons": list(horizons), "hidden": cfg.gnn.hidden,
                                                 "layers": cfg.gnn.layers, "softening": softening}))
        out.history.append(("gnn", f"n={n}", run.history))
        out.summary[f"gnn n={n} final val MSE"] = run.history["val_loss"][-1]
    st = cfg.studies
    if st.enabled:
        sub = train_all.head(st.train_size)
        plan = [("optimizer", config.optimizer_label(o), o, st.batch_size) for o in st.optimizers]
        plan += [("learning_rate", f"lr={lr:g}", _with_lr(st.base_optimizer, lr), st.batch_size)
                 for lr in st.learning_rates]
        plan += [("batch_size", f"batch={b}", st.base_optimizer, b) for b in st.batch_sizes]
        done: dict[tuple, dict] = {}  # the same optimizer and batch size appear in several studies: train once
        for group, label, opt, batch in plan:
            key = (opt.name, repr(sorted(opt.kwargs().items())), batch)
            if key not in done:
                done[key] = fitting.train_mlp(sub, val, 0, optimizer=opt, epochs=st.epochs, batch_size=batch,
                                              seed=cfg.seed, description=f"task2 study {group} {label}").history
            out.history.append((f"study_{group}", label, done[key]))
            out.summary[f"study {group} {label}: best val MSE"] = min(done[key]["val_loss"])
    return out


def task31(ds: DataSet, cfg: config.Task31Train, device) -> Trained:
    """The LSTM charge regressor, then the optimizer comparison."""
    tr = fitting.SeqData.from_arrays(ds.splits["train"], device)
    va = fitting.SeqData.from_arrays(ds.splits["val"], device)
    vel = cfg.features == "positions_velocities"
    kwargs = {"n_features": 4 if vel else 2, "hidden": cfg.hidden, "fc": cfg.fc}
    common = dict(hidden=cfg.hidden, fc=cfg.fc, with_velocity=vel, sample_dt=ds.sample_dt, batch_size=cfg.batch_size,
                  seed=cfg.seed, grad_clip=cfg.grad_clip)
    run = fitting.train_charge_lstm(tr, va, optimizer=cfg.optimizer, epochs=cfg.epochs, description="task31 lstm",
                                    **common)
    out = Trained(models=[("lstm.pt", run, kwargs)],
                  history=[("main", config.optimizer_label(cfg.optimizer), run.history)],
                  summary={"lstm best val MSE": min(run.history["val_loss"])})
    if cfg.compare.enabled:
        chosen, skipped = cfg.compare.selected()
        for i, opt in enumerate(chosen):
            label = config.optimizer_label(opt)
            r = fitting.train_charge_lstm(tr, va, optimizer=opt, epochs=cfg.compare.epochs,
                                          description=f"task31 compare {label}", **common)
            out.models.append((f"compare_{i}.pt", r, kwargs))
            out.history.append(("compare", label, r.history))
            out.summary[f"compare {label}: best val MSE"] = min(r.history["val_loss"])
        for name in skipped:
            out.summary[f"compare {name}"] = "skipped (not registered)"
    return out


def cell_of(name: str) -> tuple[str, bool]:
    """'gru_residual' -> ('gru', True)."""
    return name.split("_")[0], name.endswith("_residual")


def task32(ds: DataSet, cfg: config.Task32Train, device) -> Trained:
    """One continuation model per entry of ``models``."""
    tr = fitting.SeqData.from_arrays(ds.splits["train"], device)
    va = fitting.SeqData.from_arrays(ds.splits["val"], device)
    dt = ds.sample_dt
    out = Trained()
    for name in cfg.models:
        cell, residual = cell_of(name)
        run = fitting.train_continuation(tr, va, cell=cell, residual=residual, hidden=cfg.hidden, layers=cfg.layers,
                                         fc=cfg.fc, sample_dt=dt, optimizer=cfg.optimizer, epochs=cfg.epochs,
                                         batch_size=cfg.batch_size, seed=cfg.seed, grad_clip=cfg.grad_clip,
                                         description=f"task32 {name}")
        out.models.append((f"{name}.pt", run, {"cell": cell, "hidden": cfg.hidden, "layers": cfg.layers,
                                               "fc": cfg.fc, "residual": residual, "sample_dt": dt}))
        out.history.append(("model", name, run.history))
        out.summary[f"{name} best val MSE"] = min(run.history["val_loss"])
    return out
