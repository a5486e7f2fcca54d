"""The groundwater task's artifact I/O: table schemas, the resumable chunk store, ensembles, the flow model.

Artifacts under data/groundwater/:
  chunks/chunk-NNNNN.parquet  simulation chunks of a generation in progress (removed when it finishes)
  simulations.parquet   successful prior runs: sim_id, split, lnk (706), heads (13 x 25, well-major)
  references.parquet    the two reference fields test1/test2: lnk, clean heads, noisy observed heads
  ies/<setting>/<ref>.parquet  posterior ensembles of the smoother, per-iteration history in the metadata
  models/flow.pt, flow_history.parquet   the amortized posterior and its per-epoch losses
  flow_checkpoint.pt    the last completed epoch of a flow training in progress (not a DVC output)
  prior_jacobian.parquet   the Jacobian of the heads at the prior mean in the leading prior modes (`jacobian`)
  glm/map.parquet, glm/refine.parquet   the linear analysis and the flow + refinement, one row per data set of
                        the comparison (`comparison_sets`)
Every read checks the columns it needs (`artifacts.read_parquet(..., required=...)`): a valid Parquet with other
columns is a UserError naming the file and the missing columns.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.errors import RunFailed, UserError

from . import freyberg
from .mf6 import WHICH_MF6, failed_outside_model

TASK = "groundwater"
N_OBS_CELLS, N_TIMES = len(freyberg.OBS_CELLS), freyberg.N_PERIODS
HEADS_SHAPE = (N_OBS_CELLS, N_TIMES)  # stored well-major: heads[w, t]
REFERENCES = ("test1", "test2")
UNITS = {"lnk": "ln(K / (m/d))", "heads": "m"}

CHUNK_COLUMNS = ("sim_id", "ok", "reason", "lnk", "heads")
SIM_COLUMNS = ("sim_id", "split", "lnk", "heads")
REF_COLUMNS = ("name", "lnk", "heads_clean", "heads_obs")
ENSEMBLE_COLUMNS = ("realization", "is_base", "lnk", "heads")
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "lr")

JACOBIAN_FILE = "prior_jacobian.parquet"
JACOBIAN_COLUMNS = ("mode", "dheads_dz")
ANALYSIS_COLUMNS = ("name", "n_runs")
MODEL_FILE = Path("models") / "flow.pt"
CHECKPOINT_FILE = "flow_checkpoint.pt"


def layout(noise_sd: float) -> dict:
    """What the heads columns hold, for the metadata of the simulation and reference tables."""
    return {"units": UNITS, "heads_shape": list(HEADS_SHAPE), "heads_layout": "well-major: index = well * 25 + period",
            "noise_sd": noise_sd, "obs_cells": freyberg.OBS_CELLS}


def to_obs(heads: np.ndarray) -> np.ndarray:
    """(n, periods, wells) model output -> (n, 325) well-major observation vectors."""
    return np.ascontiguousarray(np.swapaxes(heads, 1, 2)).reshape(len(heads), -1)


# The types of the columns whose shape the stages rely on: a file with other list lengths is bad input.
COLUMN_TYPES = {"lnk": pa.list_(pa.float64(), freyberg.N_ACTIVE), "heads": pa.list_(pa.float64(), N_OBS_CELLS * N_TIMES),
                "heads_clean": pa.list_(pa.float64(), N_OBS_CELLS * N_TIMES),
                "heads_obs": pa.list_(pa.float64(), N_OBS_CELLS * N_TIMES), "split": pa.string()}
SPLITS = ("train", "val", "test")


def _table(path: Path, columns: tuple[str, ...]) -> tuple[pa.Table, dict]:
    return artifacts.read_parquet(path, required={c: COLUMN_TYPES.get(c) for c in columns})


# ---------------------------------------------------------------- the chunk store of `generate`
class ChunkStore:
    """Simulation chunks of one generation: a chunk counts as done when it is readable, was written for the
    same params and rows, and none of its runs failed outside the model (those chunks are run again)."""

    def __init__(self, folder: Path, params_key: dict, n: int, chunk_size: int):
        self.folder, self.chunk_size = folder, chunk_size
        key = json.dumps({"cfg": params_key, "model": "freyberg-1layer-sfr"}, sort_keys=True)
        self.fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.chunks = [(c, c * chunk_size, min(n, (c + 1) * chunk_size)) for c in range(math.ceil(n / chunk_size))]

    def path(self, index: int) -> Path:
        return self.folder / f"chunk-{index:05d}.parquet"

    def done(self, index: int, rows: int) -> bool:
        if not self.path(index).is_file():
            return False
        try:
            table, meta = _table(self.path(index), CHUNK_COLUMNS)
        except UserError:
            return False
        return (meta.get("fingerprint") == self.fingerprint and meta.get("chunk") == index
                and table.num_rows == rows and not any(map(failed_outside_model, table.column("reason").to_pylist())))

    def todo(self) -> list[tuple[int, int, int]]:
        return [ch for ch in self.chunks if not self.done(ch[0], ch[2] - ch[1])]

    def n_kept(self) -> int:
        return sum(self.done(c, hi - lo) for c, lo, hi in self.chunks)

    def write(self, index: int, lo: int, lnk: np.ndarray, heads: np.ndarray, ok: np.ndarray, reasons: list[str],
              seed: int, params: dict) -> None:
        table = pa.table({"sim_id": pa.array(np.arange(lo, lo + len(lnk), dtype=np.int32)), "ok": pa.array(ok),
                          "reason": pa.array(reasons, type=pa.string()), "lnk": artifacts.fixed_size_list(lnk),
                          "heads": artifacts.fixed_size_list(to_obs(heads))})
        artifacts.write_parquet(table, self.path(index), task=TASK, stage="generate-chunk", seed=seed, params=params,
                                extra={"fingerprint": self.fingerprint, "chunk": index})

    def read_all(self) -> pa.Table:
        """All chunks in order; sim_ids must be exactly 0..n-1 once each."""
        table = pa.concat_tables([_table(self.path(c), CHUNK_COLUMNS)[0] for c, _, _ in self.chunks])
        ids = table.column("sim_id").to_numpy()
        if not np.array_equal(ids, np.arange(len(ids))):
            raise RunFailed(f"simulation chunks in {self.folder} are inconsistent (duplicate or missing sim_ids)")
        return table

    def read_checked(self, ref_reasons: list[str]) -> pa.Table:
        """`read_all`, after checking that no run (nor a reference run) failed outside the model: such a failure
        says nothing about the field, so the stage stops and a rerun after the fix runs those chunks again."""
        table = self.read_all()
        outside = failure_counts([r for r in table.column("reason").to_pylist() if failed_outside_model(r)])
        if outside or any(map(failed_outside_model, ref_reasons)):
            raise RunFailed(f"{sum(outside.values())} of {table.num_rows} simulations failed outside the model "
                            f"({outside or ref_reasons}); {WHICH_MF6} and rerun: the chunks in {self.folder} with "
                            f"such failures are run again, the {self.n_kept()} others reused")
        return table


def assign_splits(n_ok: int, n_train: int, n_val: int) -> np.ndarray:
    """Splits over the successful runs in sim_id order: train, then validation, then the rest for test."""
    split = np.full(n_ok, "test", dtype=object)
    split[:n_train] = "train"
    split[n_train:n_train + n_val] = "val"
    return split


def failure_counts(reasons: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in reasons:
        out[r] = out.get(r, 0) + 1
    return out


# ---------------------------------------------------------------- simulations and references
def write_simulations(path: Path, good: pa.Table, split: np.ndarray, *, seed: int, params: dict, extra: dict) -> None:
    out = pa.table({"sim_id": good.column("sim_id"), "split": pa.array(split.tolist(), type=pa.string()),
                    "lnk": good.column("lnk"), "heads": good.column("heads")})
    artifacts.write_parquet(out, path, task=TASK, stage="generate", seed=seed, params=params, extra=extra)


def write_references(path: Path, lnk: np.ndarray, clean: np.ndarray, observed: np.ndarray, *, seed: int,
                     params: dict, extra: dict) -> None:
    refs = pa.table({"name": pa.array(list(REFERENCES)), "lnk": artifacts.fixed_size_list(lnk),
                     "heads_clean": artifacts.fixed_size_list(clean),
                     "heads_obs": artifacts.fixed_size_list(observed)})
    artifacts.write_parquet(refs, path, task=TASK, stage="generate", seed=seed, params=params, extra=extra)


def read_references(task_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """reference name -> {lnk (706,), heads_clean (325,), heads_obs (325,)}."""
    table, _ = _table(task_dir / "references.parquet", REF_COLUMNS)
    cols = {c: artifacts.fixed_size_to_numpy(table.column(c)) for c in REF_COLUMNS[1:]}
    return {name: {c: v[i] for c, v in cols.items()} for i, name in enumerate(table.column("name").to_pylist())}


def read_split(task_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sim_id (n,), lnk (n, 706), clean heads (n, 13, 25)) of one split of simulations.parquet."""
    table, _ = _table(task_dir / "simulations.parquet", SIM_COLUMNS)
    artifacts.check_labels(table.column("split").to_pylist(), SPLITS, task_dir / "simulations.parquet", "split")
    table = table.filter(pa.array(np.asarray(table.column("split").to_pylist()) == split))
    lnk = artifacts.fixed_size_to_numpy(table.column("lnk"))
    heads = artifacts.fixed_size_to_numpy(table.column("heads")).reshape(-1, *HEADS_SHAPE)
    return table.column("sim_id").to_numpy(), lnk, heads


def comparison_sets(task_dir: Path, n_test: int, noise_sd: float, seed: int) -> list[dict]:
    """The data sets every method is compared on: the two references, then the first ``n_test`` test-split
    simulations with noise drawn from ``seed`` for the whole split (so n_test changes no data set's noise).
    Each: {name, lnk (706,), heads_clean (325,), heads_obs (325,)}."""
    sets = [{"name": name, **ref} for name, ref in read_references(task_dir).items()]
    ids, lnk, heads = read_split(task_dir, "test")
    noise = noise_sd * np.random.default_rng([seed, 0]).standard_normal((len(ids), N_OBS_CELLS * N_TIMES))
    for i in range(min(n_test, len(ids))):
        clean = heads[i].reshape(-1)
        sets.append({"name": f"test-sim{ids[i]}", "lnk": lnk[i], "heads_clean": clean, "heads_obs": clean + noise[i]})
    return sets


def write_prior_jacobian(path: Path, jac: np.ndarray, sim0: np.ndarray, *, seed: int, params: dict) -> None:
    """(n_obs, k) dG/dz at the prior mean, one row per mode; the heads there in the metadata."""
    table = pa.table({"mode": pa.array(np.arange(jac.shape[1], dtype=np.int32)),
                      "dheads_dz": artifacts.fixed_size_list(np.ascontiguousarray(jac.T))})
    artifacts.write_parquet(table, path, task=TASK, stage="jacobian", seed=seed, params=params,
                            extra={"heads_at_prior_mean": [float(v) for v in sim0], "heads_shape": list(HEADS_SHAPE)})


def read_prior_jacobian(task_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(jacobian (n_obs, k), heads at the prior mean (n_obs,))."""
    table, meta = _table(task_dir / JACOBIAN_FILE, JACOBIAN_COLUMNS)
    return (np.ascontiguousarray(artifacts.fixed_size_to_numpy(table.column("dheads_dz")).T),
            np.asarray(meta["heads_at_prior_mean"], float))


def analysis_path(task_dir: Path, method: str) -> Path:
    return task_dir / "glm" / f"{method}.parquet"


def write_analysis(path: Path, rows: list[dict], *, stage: str, seed: int, params: dict, extra: dict) -> None:
    """One row per data set of the comparison (scalars, strings and float lists)."""
    artifacts.write_parquet(pa.Table.from_pylist(rows), path, task=TASK, stage=stage, seed=seed, params=params,
                            extra=extra)


def read_analysis(path: Path) -> tuple[list[dict], dict]:
    table, meta = _table(path, ANALYSIS_COLUMNS)
    return table.to_pylist(), meta


# ---------------------------------------------------------------- smoother ensembles
def ensemble_path(ies_dir: Path, setting: str, name: str) -> Path:
    return ies_dir / setting / f"{name}.parquet"


def write_ensemble(path: Path, res, *, seed: int, params: dict, extra: dict) -> None:
    """An `ies.IESResult` with its per-iteration history in the metadata."""
    is_base = np.zeros(len(res.theta), bool)
    is_base[0] = res.has_base
    table = pa.table({"realization": pa.array(np.arange(len(res.theta), dtype=np.int32)),
                      "is_base": pa.array(is_base), "lnk": artifacts.fixed_size_list(res.theta),
                      "heads": artifacts.fixed_size_list(res.sim)})
    artifacts.write_parquet(table, path, task=TASK, stage="ies", seed=seed, params=params,
                            extra={**extra, "history": [vars(h) for h in res.history], "n_runs": res.n_runs,
                                   "n_failed": res.n_failed, "stop_reason": res.stop_reason,
                                   "heads_shape": list(HEADS_SHAPE)})


def read_ensemble(task_dir: Path, name: str, setting: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(lnk (N, 706), heads (N, 325), is_base (N,), metadata) of a smoother posterior ensemble."""
    table, meta = _table(ensemble_path(task_dir / "ies", setting, name), ENSEMBLE_COLUMNS)
    return (artifacts.fixed_size_to_numpy(table.column("lnk")), artifacts.fixed_size_to_numpy(table.column("heads")),
            table.column("is_base").to_numpy(zero_copy_only=False), meta)


def read_ensembles(task_dir: Path) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray, dict]]:
    """Every ensemble the last `ies` run wrote (its settings are in ies.json), keyed (setting, reference)."""
    settings = [s for s in str(artifacts.read_json(task_dir / "ies.json").get("settings", "")).split(",") if s]
    return {(setting, name): read_ensemble(task_dir, name, setting) for setting in settings for name in REFERENCES}


# ---------------------------------------------------------------- the amortized posterior
def save_model(model, path: Path, extra: dict) -> None:
    artifacts.save_torch({"sizes": vars(model.sizes), "dim": model.dim, "n_wells": N_OBS_CELLS, "n_steps": N_TIMES,
                          "state_dict": model.state_dict(), "meta": json.dumps(extra, sort_keys=True)}, path)


def load_model(path: Path, device="cpu"):
    """The trained `flow.AmortizedPosterior` (eval mode) and its metadata; a missing or foreign file is a
    UserError."""
    from .flow import AmortizedPosterior, FlowSizes

    blob = artifacts.load_torch(path)
    if not isinstance(blob, dict) or "state_dict" not in blob or "sizes" not in blob:
        raise UserError(f"{path} is not a phys-ml groundwater flow model")
    with artifacts.reading(path, "a groundwater flow model of this phys-ml version"):
        dim = int(blob["dim"])
        model = AmortizedPosterior(np.zeros(dim), np.eye(dim), np.zeros((blob["n_wells"], blob["n_steps"])),
                                   np.ones((blob["n_wells"], blob["n_steps"])),
                                   FlowSizes(**{"linear_modes": 0, "rest_modes": 0, **blob["sizes"]}))  # older files
        model.load_state_dict(blob["state_dict"])
        meta = json.loads(blob["meta"])
    return model.to(device).eval(), meta


def write_history(path: Path, history: list[dict], *, seed: int, params: dict, stop_reason: str) -> None:
    table = pa.table({k: pa.array([h[k] for h in history]) for k in HISTORY_COLUMNS})
    artifacts.write_parquet(table, path, task=TASK, stage="train-flow", seed=seed, params=params,
                            extra={"stop_reason": stop_reason})


def read_history(path: Path) -> dict[str, list]:
    return _table(path, HISTORY_COLUMNS)[0].to_pydict()


def data_fingerprint(params: dict, *arrays: np.ndarray) -> str:
    """Of a training run's params and data: a checkpoint resumes only the run it belongs to."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


class FlowCheckpoint:
    """The flow's training state after each epoch, resumed only by the run it belongs to (``fingerprint``: of
    its params and data, `data_fingerprint`). Writes are atomic, so an unreadable file is a foreign one."""

    def __init__(self, path: Path, fingerprint: str):
        self.path, self.fingerprint = path, fingerprint

    def save(self, state: dict) -> None:
        artifacts.save_torch({"fingerprint": self.fingerprint, "state": state}, self.path)

    def load(self) -> tuple[dict | None, str]:
        """(the saved training state, or None, and a line saying what happened)."""
        if not self.path.is_file():
            return None, ""
        try:
            blob = artifacts.load_torch(self.path)
        except Exception:  # noqa: BLE001 - restart on anything unreadable
            blob = None
        if not isinstance(blob, dict) or blob.get("fingerprint") != self.fingerprint:
            return None, f"{self.path} belongs to other params or data; starting afresh"
        return blob["state"], f"resuming after epoch {blob['state']['epoch']} from {self.path}"

    def epochs_done(self) -> int:
        state = self.load()[0]
        return state["epoch"] if state else 0

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
