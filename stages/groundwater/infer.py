"""`phys-ml groundwater infer`: amortized inference on a user's observed heads with the trained flow (file I/O).

Reads a CSV or Parquet table of heads (`observations.parse_observations`), draws posterior samples of the 706
ln K values, writes them and a per-cell summary (mean, sd, 95 % interval) beside them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.params import load_params
from phys_ml.stages.common.runtime import resolve_device

from . import analysis, freyberg, ood
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


def infer(obs: Path, n_samples: int, out: Path, model_path: Path, seed: int, device: str = "auto", *,
          refine: bool = False, params_path: Path = Path("params.yaml"), data_dir: Path = Path("data"),
          warn: Callable[[str], None] | None = None) -> dict:
    """Posterior samples of ln K for the observations in ``obs``, written to ``out`` and a summary beside it.

    Observed heads outside the training range (`ood`) give a warning through ``warn`` and the flag
    ``out_of_distribution`` in the metadata. With ``refine`` the flow's draws are refined with MODFLOW
    (`analysis.refine_observations`, settings from ``params_path``, the prior Jacobian under ``data_dir``)."""
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
    setup = analysis.refine_setup(load_params(params_path), data_dir) if refine else None  # fail before any work
    model, meta = load_model(model_path, resolve_device(device))
    lo, hi = ood.training_range(meta, model.heads_mean.cpu().numpy(), model.heads_sd.cpu().numpy())
    flags = ood.outside_training_range(heads, mask, lo, hi, model.heads_sd.cpu().numpy())
    where = ood.describe(flags)
    if where and warn is not None:
        warn(f"warning: {int(flags.sum())} observed heads lie outside the range of the training simulations "
             f"({'; '.join(where)}): the posterior there is an extrapolation")
    t0 = time.perf_counter()
    n_draw = max(n_samples, setup[2].n_draws) if refine else n_samples
    samples = posterior_samples(model, heads, mask, n_draw, seed)
    seconds = time.perf_counter() - t0
    extra = {"units": {"lnk": "ln(K / (m/d))"}, "n_observed": int(mask.sum()),
             "observed_steps_per_well": mask.sum(1).tolist(), "out_of_distribution": bool(flags.any()),
             "out_of_distribution_values": where}
    if refine:
        samples, info = analysis.refine_observations(setup, model, heads, mask, samples, seed)
        extra.update(info)
    samples = samples[:n_samples]  # a refined posterior is an ensemble of glm.n_draws members: maybe fewer
    n_kept = len(samples)
    params = {"observations": str(obs), "model": str(model_path), "samples": n_samples, "seed": seed,
              "refine": refine}
    artifacts.write_parquet(pa.table({"sample": pa.array(np.arange(n_kept, dtype=np.int32)),
                                      "lnk": artifacts.fixed_size_list(samples)}),
                            out, task=TASK, stage="infer", seed=seed, params=params, extra=extra)
    flat = freyberg.active_index()
    rows, cols = flat // freyberg.NCOL + 1, flat % freyberg.NCOL + 1
    sd = samples.std(0, ddof=1) if n_kept > 1 else np.zeros(samples.shape[1])
    lo, hi = np.quantile(samples, [0.025, 0.975], axis=0)
    summary = pa.table({"cell": pa.array(np.arange(samples.shape[1], dtype=np.int32)),
                        "row": pa.array(rows.astype(np.int32)), "col": pa.array(cols.astype(np.int32)),
                        "lnk_mean": samples.mean(0), "lnk_sd": sd, "lnk_q025": lo, "lnk_q975": hi})
    summary_path = summary_file(out)
    artifacts.write_parquet(summary, summary_path, task=TASK, stage="infer", seed=seed, params=params, extra=extra)
    result = {"samples": str(out), "summary": str(summary_path), "n_samples": n_kept,
              "observed values": int(mask.sum()), "sampling seconds": round(seconds, 3),
              "out of distribution": bool(flags.any())}
    if refine:
        result.update({k.replace("_", " "): v for k, v in extra.items() if k.startswith(("refine", "predictive"))})
    return result


def summary_file(out: Path) -> Path:
    return out.with_name(out.stem + "-summary.parquet")
