"""The particles task's artifact I/O: the data-set and history tables (schemas checked on read), models.

Files under data/particles/:
  task2.parquet, task31.parquet, task32.parquet      data sets (split column: train / val / test)
  models/<subtask>/*.pt                               trained models (state dict + constructor arguments)
  history_<subtask>.parquet                           per-epoch training and validation losses of every run
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from phys_ml.stages.common import artifacts

from .simulator import Physics

TASK = "particles"
SPLITS = ("train", "val", "test")
TASK3_COLUMNS = {"split": pa.string(), "length": pa.int32(), "cont_length": pa.int32(),
                 "given": pa.list_(pa.float64()), "continuation": pa.list_(pa.float64()),
                 "q1": pa.float64(), "q2": pa.float64(), "q3": pa.float64()}
HISTORY_COLUMNS = {"group": pa.string(), "label": pa.string(), "epoch": pa.int32(), "train_loss": pa.float64(),
                   "val_loss": pa.float64()}

Splits = dict[str, dict[str, np.ndarray]]  # split name -> array name -> array
History = dict[str, dict[str, dict[str, list[float]]]]  # group -> label -> {"train_loss": [...], "val_loss": [...]}


@dataclass
class DataSet:
    """A data set read back: per-split arrays and what the stage that wrote it recorded."""

    splits: Splits
    meta: dict[str, Any]

    @property
    def physics(self) -> Physics:
        p = self.meta["params"]
        return Physics(coupling=float(p["coupling"]), softening=float(p["softening"]), dt=float(p["dt"]))

    @property
    def horizons(self) -> tuple[float, ...]:  # task 2
        return tuple(self.meta["horizons"])

    @property
    def sample_dt(self) -> float:  # task 3
        return float(self.meta["sample_dt"])


# ---------------------------------------------------------------- data sets
def task2_table(data: dict[str, np.ndarray], split: np.ndarray) -> pa.Table:
    cols: dict[str, Any] = {
        "split": pa.array(split),
        "pos0": artifacts.fixed_size_list(data["pos0"]),
        "vel0": artifacts.fixed_size_list(data["vel0"]),
        "charges": artifacts.fixed_size_list(data["charges"]),
    }
    for h in range(data["targets"].shape[1]):
        cols[f"pos_h{h + 1}"] = artifacts.fixed_size_list(data["targets"][:, h])
    return pa.table(cols)


def task3_table(parts: list[dict[str, np.ndarray]], split: np.ndarray) -> pa.Table:
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


def _split_column(table: pa.Table, path: Path) -> np.ndarray:
    labels = table.column("split").to_pylist()
    artifacts.check_labels(labels, SPLITS, path, "split")
    return np.asarray(labels)


def load_task2(path: Path) -> DataSet:
    """Per split: pos0, vel0 (n, N, 2), charges (n, N), targets (n, H, N, 2)."""
    table, meta = artifacts.read_parquet(path, required=["split", "pos0", "vel0", "charges"])
    targets = [f"pos_h{h + 1}" for h in range(len(meta.get("horizons") or []))]
    artifacts.check_schema(table.schema, path, targets)
    split = _split_column(table, path)
    with artifacts.reading(path, "a particles task2 data set (lists of one size per particle)"):
        n_part = len(table.column("charges")[0])
        arrays = {
            "pos0": artifacts.fixed_size_to_numpy(table.column("pos0"), (n_part, 2)),
            "vel0": artifacts.fixed_size_to_numpy(table.column("vel0"), (n_part, 2)),
            "charges": artifacts.fixed_size_to_numpy(table.column("charges"), (n_part,)),
            "targets": np.stack([artifacts.fixed_size_to_numpy(table.column(c), (n_part, 2)) for c in targets], 1),
        }
    return DataSet({s: {k: v[split == s] for k, v in arrays.items()} for s in SPLITS}, meta)


def load_task3(path: Path) -> DataSet:
    """Per split: given (n, T, 2) and continuation (n, C, 2), zero-padded, lengths, cont_lengths, charges."""
    table, meta = artifacts.read_parquet(path, required=TASK3_COLUMNS)
    split = _split_column(table, path)
    with artifacts.reading(path, "a particles trajectory data set (x, y pairs, as many as each length says)"):
        return DataSet(_task3_splits(table, split), meta)


def _task3_splits(table: pa.Table, split: np.ndarray) -> Splits:
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
    return out


# ---------------------------------------------------------------- models
def save_model(path: Path, model: torch.nn.Module, kwargs: dict[str, Any]) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    artifacts.save_torch({"state_dict": state, "kwargs": kwargs}, path)


def load_model(cls, path: Path) -> torch.nn.Module:
    saved = artifacts.load_torch(path)
    with artifacts.reading(path, f"a {cls.__name__} model of this phys-ml version"):
        kwargs = dict(saved["kwargs"])
        if "horizons" in kwargs:
            kwargs["horizons"] = tuple(kwargs["horizons"])
        model = cls(**kwargs)
        model.load_state_dict(saved["state_dict"])
    return model.eval()


# ---------------------------------------------------------------- loss histories
def write_history(path: Path, rows: list[tuple[str, str, dict[str, list[float]]]], *, stage: str, seed: int,
                  params: Any) -> None:
    """rows: (group, label, history) -> long table group/label/epoch/train_loss/val_loss."""
    cols: dict[str, list] = {name: [] for name in HISTORY_COLUMNS}
    for group, label, hist in rows:
        for e, (tr, va) in enumerate(zip(hist["train_loss"], hist["val_loss"]), start=1):
            for name, value in zip(HISTORY_COLUMNS, (group, label, e, float(tr), float(va))):
                cols[name].append(value)
    table = pa.table({name: pa.array(cols[name], kind) for name, kind in HISTORY_COLUMNS.items()})
    artifacts.write_parquet(table, path, task=TASK, stage=stage, seed=seed, params=params)


def read_history(path: Path) -> History:
    table, _ = artifacts.read_parquet(path, list(HISTORY_COLUMNS), required=HISTORY_COLUMNS)
    out: History = {}
    for g, lab, tr, va in zip(*(table.column(c).to_pylist() for c in ("group", "label", "train_loss", "val_loss"))):
        h = out.setdefault(g, {}).setdefault(lab, {"train_loss": [], "val_loss": []})
        h["train_loss"].append(tr)
        h["val_loss"].append(va)
    return out
