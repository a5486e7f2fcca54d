"""`phys-ml groundwater infer`: amortized inference on a user's observed heads with the trained flow (file I/O).

Reads a CSV or Parquet table of heads (`observations.parse_observations`), draws posterior samples of the 706
ln K values, writes them and a per-cell summary (mean, sd, 95 % interval) beside them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.runtime import resolve_device

from . import freyberg
from .flow import posterior_samples
from .observations import parse_observations
from .store import TASK, load_model


def read_observation_file(path: Path) -> pa.Table:
    artifacts.require_file(path, hint="")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            from pyarrow import csv

            return csv.read_csv(path, convert_options=csv.ConvertOptions(strings_can_be_null=True))
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path} could not be read ({str(exc).splitlines()[0]})") from None
    raise UserError(f"{path}: expected a .csv or .parquet file")


def infer(obs: Path, n_samples: int, out: Path, model_path: Path, seed: int, device: str = "auto") -> dict:
    """Posterior samples of ln K for the observations in ``obs``, written to ``out`` and a summary beside it."""
    if n_samples < 1:
        raise UserError(f"--samples must be >= 1, got {n_samples}")
    if out.suffix.lower() != ".parquet":
        raise UserError(f"--out must name a .parquet file, got {out}")
    for written in (out, summary_file(out)):
        artifacts.check_output_file(written, "--out")
        for given, what in ((obs, "the observations"), (model_path, "--model")):
            if written.resolve() == Path(given).resolve():
                raise UserError(f"--out {out} would overwrite {what} ({given}): choose another name")
    heads, mask = parse_observations(read_observation_file(obs), str(obs))
    model, meta = load_model(model_path, resolve_device(device))
    t0 = time.perf_counter()
    samples = posterior_samples(model, heads, mask, n_samples, seed)
    seconds = time.perf_counter() - t0
    params = {"observations": str(obs), "model": str(model_path), "samples": n_samples, "seed": seed}
    extra = {"units": {"lnk": "ln(K / (m/d))"}, "n_observed": int(mask.sum()),
             "observed_steps_per_well": mask.sum(1).tolist()}
    artifacts.write_parquet(pa.table({"sample": pa.array(np.arange(n_samples, dtype=np.int32)),
                                      "lnk": artifacts.fixed_size_list(samples)}),
                            out, task=TASK, stage="infer", seed=seed, params=params, extra=extra)
    flat = freyberg.active_index()
    rows, cols = flat // freyberg.NCOL + 1, flat % freyberg.NCOL + 1
    sd = samples.std(0, ddof=1) if n_samples > 1 else np.zeros(samples.shape[1])
    lo, hi = np.quantile(samples, [0.025, 0.975], axis=0)
    summary = pa.table({"cell": pa.array(np.arange(samples.shape[1], dtype=np.int32)),
                        "row": pa.array(rows.astype(np.int32)), "col": pa.array(cols.astype(np.int32)),
                        "lnk_mean": samples.mean(0), "lnk_sd": sd, "lnk_q025": lo, "lnk_q975": hi})
    summary_path = summary_file(out)
    artifacts.write_parquet(summary, summary_path, task=TASK, stage="infer", seed=seed, params=params, extra=extra)
    return {"samples": str(out), "summary": str(summary_path), "n_samples": n_samples,
            "observed values": int(mask.sum()), "sampling seconds": round(seconds, 3)}


def summary_file(out: Path) -> Path:
    return out.with_name(out.stem + "-summary.parquet")
