"""The thermo task's artifact I/O: table schemas, and reading and writing its Parquet tables and models.

Under data/thermo/:
  spirals.parquet    generate: x1, x2, label, split (train/test)
  curves.parquet     train: long table optimizer, run, seed, epoch, train/test loss and accuracy, thermostat state
  models/<label>.pt  train: the ensemble's state dict (all runs of one optimizer)
  metrics.json       evaluate: accuracy/loss tables (mean and sd over runs) at the table epochs
  figures/*.png      evaluate
Wall times go to data/timings/thermo-train.json (not a DVC output).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.errors import UserError

from .model import EnsembleMLP
from .train import Curves

TASK = "thermo"
CURVES = ("train_loss", "train_acc", "test_loss", "test_acc", "kin_first", "kin_rest", "xi_first")
SPIRALS_SCHEMA = {"x1": pa.float32(), "x2": pa.float32(), "label": pa.int8(), "split": pa.string()}
CURVES_SCHEMA = {"optimizer": pa.string(), "run": pa.int32(), "seed": pa.int64(), "epoch": pa.int32(),
                 **{name: pa.float64() for name in CURVES}}
CURVES_UNITS = "loss: BCE (nats); accuracy: fraction; kin_*: mean p^2 (kinetic temperature); xi_first: 1 / time"


def _table(columns: dict[str, object], schema: dict[str, pa.DataType]) -> pa.Table:
    return pa.table({name: pa.array(columns[name], kind) for name, kind in schema.items()})


# ---- spirals ----
def write_spirals(task_dir: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], *,
                  seed: int, params: dict) -> Path:
    """The train and test points (features (n, 2), labels (n,)) as one table with a split column."""
    x = np.concatenate([train[0], test[0]])
    columns = {"x1": x[:, 0], "x2": x[:, 1], "label": np.concatenate([train[1], test[1]]).astype(np.int8),
               "split": ["train"] * len(train[0]) + ["test"] * len(test[0])}
    return artifacts.write_parquet(_table(columns, SPIRALS_SCHEMA), task_dir / "spirals.parquet", task=TASK,
                                   stage="generate", seed=seed, params=params, extra={"units": "dimensionless"})


def read_spirals(task_dir: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """x_train (N, 2), y_train (N,), x_test, y_test as float32 tensors on ``device``."""
    path = task_dir / "spirals.parquet"
    table, _ = artifacts.read_parquet(path, required=SPIRALS_SCHEMA)
    x = np.stack([table["x1"].to_numpy(zero_copy_only=False), table["x2"].to_numpy(zero_copy_only=False)],
                 axis=1).astype(np.float32)
    artifacts.check_finite(x, path, "x1 / x2")
    artifacts.check_labels(table["label"].to_pylist(), (0, 1), path, "label")
    artifacts.check_labels(table["split"].to_pylist(), ("train", "test"), path, "split")
    y = table["label"].to_numpy().astype(np.float32)
    train = np.asarray(table["split"].to_pylist()) == "train"
    for name, rows in (("train", train), ("test", ~train)):
        if not rows.any():
            raise UserError(f"{path} has no {name} points")
    out = {"x_train": x[train], "y_train": y[train], "x_test": x[~train], "y_test": y[~train]}
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in out.items()}


# ---- curves ----
def write_curves(task_dir: Path, curves: dict[str, Curves], seeds: list[int], *, seed: int, params: dict) -> Path:
    """One long table: a row per optimizer label, evaluation epoch and run (in that nesting)."""
    columns: dict[str, list] = {name: [] for name in CURVES_SCHEMA}
    runs = len(seeds)
    for label, c in curves.items():
        k = len(c.epochs)
        columns["optimizer"] += [label] * (k * runs)
        columns["run"] += list(np.tile(np.arange(runs), k))
        columns["seed"] += list(np.tile(seeds, k))
        columns["epoch"] += list(np.repeat(c.epochs, runs))
        for name in CURVES:
            columns[name] += list(getattr(c, name).ravel())
    return artifacts.write_parquet(_table(columns, CURVES_SCHEMA), task_dir / "curves.parquet", task=TASK,
                                   stage="train", seed=seed, params=params, extra={"units": CURVES_UNITS})


def read_curves(task_dir: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Per optimizer label: epochs (K,) and (K, runs) arrays of each curve; plus the train metadata."""
    table, meta = artifacts.read_parquet(task_dir / "curves.parquet", required=CURVES_SCHEMA)
    cols = {name: table[name].to_numpy() for name in CURVES_SCHEMA if name != "optimizer"}
    labels = np.asarray(table["optimizer"].to_pylist())
    out = {}
    for label in dict.fromkeys(labels):  # first-seen order = params order
        rows = labels == label
        runs = int(cols["run"][rows].max()) + 1
        epochs = cols["epoch"][rows].reshape(-1, runs)[:, 0]
        out[label] = {"epochs": epochs, **{k: cols[k][rows].reshape(-1, runs) for k in CURVES}}
    return out, meta


# ---- models ----
def model_path(task_dir: Path, label: str) -> Path:
    return task_dir / "models" / f"{label}.pt"


def save_model(task_dir: Path, label: str, model: EnsembleMLP) -> Path:
    return artifacts.save_torch({k: v.cpu() for k, v in model.state_dict().items()}, model_path(task_dir, label))


def load_model(task_dir: Path, label: str, hidden: int) -> EnsembleMLP:
    path = model_path(task_dir, label)
    state = artifacts.load_torch(path)
    with artifacts.reading(path, "a thermo model of this phys-ml version"):
        model = EnsembleMLP(state["layer1.weight"].shape[0], hidden)
        model.load_state_dict(state)
    return model
