"""The diphoton task's artifact I/O: the event tables, the scaler, flow checkpoints and training histories.

Under data/diphoton/:
  mc.parquet, data.parquet   generate: pt1 eta1 phi1 pt2 eta2 phi2 m_gg (GeV, rad)
  models/scaler.json         train: the shared standardization
  models/<loss>/ckpt/        train: TF checkpoint files epoch-N.* of the best epoch and the pointer best.json
  models/<loss>/history.json train: the per-epoch losses
  transformed.parquet        evaluate: the held-out data, MC and every model's transformed MC (column sample)
  metrics.json, figures/     evaluate
Wall times go to data/timings/diphoton-train.json (not a DVC output). TensorFlow is imported inside functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.errors import UserError

from .config import TrainConfig
from .events import COLUMNS, FEATURES, UNITS, with_mass

TASK = "diphoton"
SAMPLES = ("mc", "data")


def sample_path(task_dir: Path, name: str) -> Path:
    return task_dir / f"{name}.parquet"


def model_dir(task_dir: Path, loss: str) -> Path:
    return task_dir / "models" / loss


def events_table(x6: np.ndarray, extra: dict | None = None) -> pa.Table:
    """The six features and m_gg as float32 columns, after the ``extra`` columns."""
    cols = {name: pa.array(col.astype(np.float32)) for name, col in zip(COLUMNS, with_mass(x6).T)}
    return pa.table({**(extra or {}), **cols})


def write_sample(task_dir: Path, name: str, x6: np.ndarray, *, seed: int, params: dict) -> Path:
    return artifacts.write_parquet(events_table(x6), sample_path(task_dir, name), task=TASK, stage="generate",
                                   seed=seed, params=params, extra={"sample": name, "units": UNITS})


def read_sample(task_dir: Path, name: str) -> np.ndarray:
    """The (n, 6) features of one sample (the columns are checked on read)."""
    table, _ = artifacts.read_parquet(sample_path(task_dir, name), columns=list(FEATURES),
                                      required={c: pa.float32() for c in FEATURES})
    return np.column_stack([table[c].to_numpy() for c in FEATURES]).astype(np.float64)


def write_transformed(task_dir: Path, samples: dict[str, np.ndarray], *, seed: int, params: dict) -> Path:
    tables = [events_table(x, {"sample": pa.array([k] * len(x))}) for k, x in samples.items()]
    return artifacts.write_parquet(pa.concat_tables(tables), task_dir / "transformed.parquet", task=TASK,
                                   stage="evaluate", seed=seed, params=params, extra={"units": UNITS})


def write_scaler(task_dir: Path, scaler: dict) -> Path:
    return artifacts.write_json(task_dir / "models" / "scaler.json", scaler)


def read_scaler(task_dir: Path) -> dict:
    path = task_dir / "models" / "scaler.json"
    if not path.is_file():
        raise UserError(f"{path} not found: run 'phys-ml train diphoton' first")
    return artifacts.read_json(path)


def write_history(task_dir: Path, loss: str, history: dict) -> Path:
    return artifacts.write_json(model_dir(task_dir, loss) / "history.json", history)


def read_history(task_dir: Path, loss: str) -> dict:
    return artifacts.read_json(model_dir(task_dir, loss) / "history.json")


class CheckpointSaver:
    """Keeps the checkpoint of the best epoch so far (the lowest validation score; only finite epochs reach here).

    TF checkpoint files ``ckpt/epoch-N.*``, then the pointer ``ckpt/best.json`` (written atomically), then the
    previous best's files are removed: a crash or a divergence leaves the best checkpoint and its pointer.
    (No tf.train.CheckpointManager: its state file holds timestamps, and artifacts must not.)"""

    def __init__(self, flow, trainer, out: Path):
        import tensorflow as tf

        self.dir, self.previous = out / "ckpt", None
        self.ckpt = tf.train.Checkpoint(flow=flow, mdmm_lambda=trainer.lam)

    def __call__(self, epoch: int, history, is_best: bool) -> None:
        if is_best:
            prefix = f"epoch-{epoch}"
            self.ckpt.write(str(self.dir / prefix))
            artifacts.write_json(self.dir / "best.json", {"epoch": epoch, "prefix": prefix})
            if self.previous is not None:
                for f in self.dir.glob(f"{self.previous}.*"):
                    f.unlink()
            self.previous = prefix


def load_flow(task_dir: Path, loss: str, cfg: TrainConfig):
    """Rebuild a trained flow from its best checkpoint."""
    import tensorflow as tf

    from .training import build_flow

    out = model_dir(task_dir, loss)
    pointer = out / "ckpt" / "best.json"
    if not pointer.is_file():
        raise UserError(f"{out} has no checkpoint: run 'phys-ml train diphoton' first")
    flow = build_flow(cfg)
    lam = tf.Variable(0.0, dtype=tf.float32, trainable=False)
    best = artifacts.read_json(pointer)
    name = best.get("prefix") if isinstance(best, dict) else None
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise UserError(f"{pointer} does not name a checkpoint (a 'prefix' file name in ckpt/): retrain")
    prefix = str(out / "ckpt" / name)
    try:
        tf.train.Checkpoint(flow=flow, mdmm_lambda=lam).read(prefix).assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError) as exc:
        raise UserError(f"{prefix} does not match diphoton.train (n_blocks, hidden_units): "
                        f"{type(exc).__name__}; retrain") from None
    return flow
