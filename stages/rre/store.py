"""The rre task's artifacts: paths, table schemas, reads (schema-checked) and writes.

data/rre/
  generated/<case>_{solution,sensors,collocation,boundary}.parquet   generate
  solver.json                          generate: solver counts and mass balance per case (no wall times)
  models/<case>/<file>.pt              train: the weights of every kept (not diverged) network
  models/{runs,selection,history}.parquet   train: one record per network, the selection scores, loss histories
  results/{runs,selection,soil}.parquet     evaluate: the records with their errors, the selection, the soil study
  metrics.json, figures/*.png          evaluate: headline numbers (flat, for dvc metrics), figures
Wall times go to data/timings/rre-<stage>.json (not tracked by DVC).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from phys_ml.stages.common import artifacts

from .fitting import CaseInputs

TASK = "rre"
COORDS = ("x", "y", "z", "t")
F64, I64, STR, BOOL = pa.float64(), pa.int64(), pa.string(), pa.bool_()

# one row per trained network (train stage); setting: table1 | sparse-<L>x<K> | forecast | soil;
# kind: run (Table 1) | pdl | data (studies) | soil
TRAIN_RUNS = pa.schema([
    ("case", STR), ("run", I64), ("setting", STR), ("kind", STR), ("optimizer", STR), ("batch", STR), ("lr", F64),
    ("weight_rule", STR), ("override", BOOL), ("residual_weight", F64), ("seed", I64), ("iterations", I64),
    ("iterations_run", I64), ("diverged", BOOL), ("divergence", STR), ("model", STR),
])
# evaluate: the train records plus their errors, and one 'interpolation' row (the baseline) per case and setting
RESULTS = pa.schema(list(TRAIN_RUNS) + [
    ("re_psi", F64), ("re_theta", F64), ("final_loss", F64), ("final_l_data", F64), ("final_l_rre", F64),
    ("iterations_to_converge", I64), ("converged", BOOL), ("sensors", I64), ("probes", I64), ("t_split", F64),
])
SELECTION = pa.schema([("case", STR), ("setting", STR), ("w", F64), ("heldout_rms", F64), ("chosen", BOOL)])
HISTORY = pa.schema([("case", STR), ("run", I64), ("iteration", I64), ("loss", F64), ("loss_data", F64),
                     ("loss_rre", F64)])
SOIL = pa.schema([("case", STR), ("parameter", STR), ("init", F64), ("learned", F64), ("true", F64),
                  ("rel_error", F64)])
SENSORS = {**dict.fromkeys(COORDS, F64), "psi_obs": F64}
BOUNDARY = {**dict.fromkeys(COORDS, F64), "axis": I64, "flux": F64}
SOLUTION = {**dict.fromkeys(COORDS, F64), "psi": F64, "theta": F64}


def generated(task_dir: Path, case: str, name: str) -> Path:
    return Path(task_dir) / "generated" / f"{case}_{name}.parquet"


def _types(schema: pa.Schema) -> dict[str, pa.DataType]:
    return {f.name: f.type for f in schema}


def coords(table: pa.Table) -> np.ndarray:
    return np.stack([table.column(c).to_numpy() for c in COORDS], axis=1)


def read_inputs(task_dir: Path, case: str) -> CaseInputs:
    """What a user would have: sensors, collocation and boundary points, case metadata. Never the solution."""
    sensors, meta = artifacts.read_parquet(generated(task_dir, case, "sensors"), required=SENSORS)
    colloc, _ = artifacts.read_parquet(generated(task_dir, case, "collocation"), required=dict.fromkeys(COORDS, F64))
    bnd, _ = artifacts.read_parquet(generated(task_dir, case, "boundary"), required=BOUNDARY)
    return CaseInputs(coords(sensors), sensors.column("psi_obs").to_numpy(), coords(colloc), coords(bnd),
                      bnd.column("axis").to_numpy(), bnd.column("flux").to_numpy(), meta)


def read_solution(task_dir: Path, case: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The solver's truth: coordinates (N, 4), psi and theta."""
    sol, _ = artifacts.read_parquet(generated(task_dir, case, "solution"), required=SOLUTION)
    return coords(sol), sol.column("psi").to_numpy(), sol.column("theta").to_numpy()


def write_table(rows: list[dict], schema: pa.Schema, path: Path, *, stage: str, seed: int, params: dict) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    artifacts.write_parquet(table, path, task=TASK, stage=stage, seed=seed, params=params)


def read_rows(path: Path, schema: pa.Schema) -> list[dict]:
    table, _ = artifacts.read_parquet(path, required=_types(schema))
    return table.select(schema.names).to_pylist()


def train_paths(task_dir: Path) -> dict[str, tuple[Path, pa.Schema]]:
    m = Path(task_dir) / "models"
    return {"runs": (m / "runs.parquet", TRAIN_RUNS), "selection": (m / "selection.parquet", SELECTION),
            "history": (m / "history.parquet", HISTORY)}


def result_paths(task_dir: Path) -> dict[str, tuple[Path, pa.Schema]]:
    r = Path(task_dir) / "results"
    return {"runs": (r / "runs.parquet", RESULTS), "selection": (r / "selection.parquet", SELECTION),
            "soil": (r / "soil.parquet", SOIL)}


def read_all(paths: dict[str, tuple[Path, pa.Schema]]) -> dict[str, list[dict]]:
    return {name: read_rows(path, schema) for name, (path, schema) in paths.items()}


def model_path(task_dir: Path, case: str, name: str) -> Path:
    return Path(task_dir) / "models" / case / name


def save_model(task_dir: Path, case: str, name: str, state: dict | None) -> None:
    """Save a kept network's state; a diverged one (``state`` None) leaves no file (an older one is removed)."""
    path = model_path(task_dir, case, name)
    if state is None:
        path.unlink(missing_ok=True)
    else:
        artifacts.save_torch(state, path)


def load_model(task_dir: Path, case: str, name: str) -> dict:
    return artifacts.load_torch(model_path(task_dir, case, name))
