"""The rre task's artifacts: paths, table schemas, reads (schema-checked) and writes.

data/rre/
  generated/<case>_{solution,sensors,collocation,boundary}.parquet   generate
  solver.json                          generate: solver counts and mass balance per case (no wall times)
  models/<case>/<file>.pt              train: the weights of every kept (not diverged) network
  models/{runs,selection,history}.parquet   train: one record per network, the selection scores, loss histories
  .models.partial/                     train, while it runs: the new models/ (renamed to models/ at the end, so
                                       an interrupted run leaves the previous run's models and records together)
  results/{runs,selection,soil,studies}.parquet   evaluate: the records with their errors (and L_RRE on the
                                       solver's grid), the selection, the soil study, the studies over seeds
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

# one row per trained network (train stage); setting: table1 | sparse-<L>x<K> | forecast | soil | forward;
# kind: run (Table 1) | pdl | data (studies) | soil | physics (the physics-only forward check);
# network: paper | study-<k> (rre.train.networks[k]), architecture: its description; init: the network
# initialization (studies: one per seed);
# lbfgs_*: what L-BFGS really did (iterations, loss evaluations, steps that moved), null without L-BFGS;
# stalled: the run stopped early because L-BFGS no longer moved the weights (train.LBFGS_STALL); output_range:
# the forward check's candidate output scaling (null for networks trained on sensors)
TRAIN_RUNS = pa.schema([
    ("case", STR), ("run", I64), ("setting", STR), ("kind", STR), ("optimizer", STR), ("batch", STR), ("lr", F64),
    ("weight_rule", STR), ("override", BOOL), ("residual_weight", F64), ("seed", I64), ("iterations", I64),
    ("iterations_run", I64), ("diverged", BOOL), ("divergence", STR), ("model", STR), ("network", STR),
    ("architecture", STR), ("init", I64), ("lbfgs_iterations", I64), ("lbfgs_evaluations", I64), ("lbfgs_moved", I64),
    ("stalled", BOOL), ("output_range", STR),
])
# evaluate: the train records plus their errors, and one 'interpolation' row (the baseline) per case and setting;
# kept: the forward check's network of lowest final L_RRE among its candidates (null elsewhere); re_psi_early /
# re_psi_late: the forward check's re_psi over the output times up to t_end / 2 and after it (null elsewhere)
RESULTS = pa.schema(list(TRAIN_RUNS) + [
    ("re_psi", F64), ("re_theta", F64), ("final_loss", F64), ("final_l_data", F64), ("final_l_rre", F64),
    ("iterations_to_converge", I64), ("converged", BOOL), ("sensors", I64), ("probes", I64), ("t_split", F64),
    ("l_rre_grid", F64), ("l_rre_norm", F64), ("kept", BOOL), ("re_psi_early", F64), ("re_psi_late", F64),
])
# held-out misfit per (setting, network, w); chosen: that network's w in that setting; study: the study network
SELECTION = pa.schema([("case", STR), ("setting", STR), ("network", STR), ("w", F64), ("heldout_rms", F64),
                       ("chosen", BOOL), ("study", BOOL), ("iterations", I64)])
HISTORY = pa.schema([("case", STR), ("run", I64), ("iteration", I64), ("loss", F64), ("loss_data", F64),
                     ("loss_rre", F64)])
# the soil study, one row per network initialization and parameter (init: the parameter's start value)
SOIL = pa.schema([("case", STR), ("initialization", I64), ("parameter", STR), ("init", F64), ("learned", F64),
                  ("true", F64), ("rel_error", F64)])
# per case and study setting: the runs over seeds (evaluation.study_summary)
STUDIES = pa.schema([
    ("case", STR), ("setting", STR), ("seeds", I64), ("probes", I64), ("t_split", F64), ("w", F64),
    ("pdl_mean", F64), ("pdl_sd", F64), ("data_mean", F64), ("data_sd", F64), ("interpolation", F64),
    ("diff_mean", F64), ("diff_sd", F64), ("gain", F64), ("pdl_better", BOOL), ("target", BOOL),
    ("pdl_theta", F64), ("data_theta", F64), ("interpolation_theta", F64), ("pdl_l_rre_norm", F64),
    ("data_l_rre_norm", F64),
])
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
    for name, table in (("sensors", sensors), ("collocation", colloc), ("boundary", bnd)):
        for column in table.column_names:  # a NaN sensor reading would train to NaN: bad input (issue 21)
            if pa.types.is_floating(table.schema.field(column).type):
                artifacts.check_finite(table.column(column).to_numpy(), generated(task_dir, case, name), column)
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


def models_dir(task_dir: Path, staging: bool = False) -> Path:
    """data/rre/models, or with ``staging`` the folder the train stage writes before it swaps it in."""
    return Path(task_dir) / (".models.partial" if staging else "models")


def train_paths(task_dir: Path, staging: bool = False) -> dict[str, tuple[Path, pa.Schema]]:
    m = models_dir(task_dir, staging)
    return {"runs": (m / "runs.parquet", TRAIN_RUNS), "selection": (m / "selection.parquet", SELECTION),
            "history": (m / "history.parquet", HISTORY)}


def result_paths(task_dir: Path) -> dict[str, tuple[Path, pa.Schema]]:
    r = Path(task_dir) / "results"
    return {"runs": (r / "runs.parquet", RESULTS), "selection": (r / "selection.parquet", SELECTION),
            "soil": (r / "soil.parquet", SOIL), "studies": (r / "studies.parquet", STUDIES)}


def read_all(paths: dict[str, tuple[Path, pa.Schema]]) -> dict[str, list[dict]]:
    return {name: read_rows(path, schema) for name, (path, schema) in paths.items()}


def model_path(task_dir: Path, case: str, name: str, staging: bool = False) -> Path:
    return models_dir(task_dir, staging) / case / name


def save_model(task_dir: Path, case: str, name: str, state: dict | None, staging: bool = False) -> None:
    """Save a kept network's state; a diverged one (``state`` None) leaves no file (an older one is removed)."""
    path = model_path(task_dir, case, name, staging)
    if state is None:
        path.unlink(missing_ok=True)
    else:
        artifacts.save_torch(state, path)


def load_model(task_dir: Path, case: str, name: str) -> dict:
    return artifacts.load_torch(model_path(task_dir, case, name))
