"""I/O of the amortized inference: `phys-ml train groundwater flow` and `phys-ml groundwater infer`.

Artifacts under data/groundwater/:
  models/flow.pt          the trained summary network + flow (best validation epoch), with its config
  flow_history.parquet    per-epoch training / validation loss and learning rate
  flow_train.json         epochs, best epoch, stop reason, sizes, training wall time
  flow_checkpoint.pt      the last completed epoch (not a DVC output): a restarted run resumes from it and it is
                          removed when training finishes; a non-finite loss stops the run and leaves it in place
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.config import parse_config
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import RunFailed, UserError
from phys_ml.stages.common.progress import print_summary, track
from phys_ml.stages.common.runtime import resolve_device

from . import freyberg
from .config import FlowConfig
from .flow import AmortizedPosterior, FlowSizes, n_parameters
from .flow_training import NonFiniteLoss, TrainState, train
from .observations import N_STEPS, N_WELLS, parse_observations

TASK = "groundwater"
MODEL_FILE = Path("models") / "flow.pt"
CHECKPOINT_FILE = "flow_checkpoint.pt"


def flow_config(ctx: StageContext) -> FlowConfig:
    return parse_config(FlowConfig, ctx.params, f"{TASK}.flow")


def set_threads(cfg: FlowConfig) -> None:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)


def read_split(task_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sim_id (n,), lnk (n, 706), clean heads (n, 13, 25)) of one split of simulations.parquet."""
    table, _ = artifacts.read_parquet(task_dir / "simulations.parquet")
    missing = {"sim_id", "split", "lnk", "heads"} - set(table.column_names)
    if missing:
        raise UserError(f"{task_dir / 'simulations.parquet'} lacks column(s) {sorted(missing)}")
    keep = np.asarray(table.column("split").to_pylist()) == split
    table = table.filter(pa.array(keep))
    lnk = artifacts.fixed_size_to_numpy(table.column("lnk"))
    heads = artifacts.fixed_size_to_numpy(table.column("heads")).reshape(-1, N_WELLS, N_STEPS)
    return table.column("sim_id").to_numpy(), lnk, heads


def _fingerprint(cfg: FlowConfig, prior_params: dict, lnk: np.ndarray, heads: np.ndarray) -> str:
    h = hashlib.sha256(json.dumps({"flow": cfg.model_dump(), "prior": prior_params}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(lnk).tobytes())
    h.update(np.ascontiguousarray(heads).tobytes())
    return h.hexdigest()[:16]


def build_model(cfg: FlowConfig, prior, heads_train: np.ndarray) -> AmortizedPosterior:
    """A fresh model: prior whitening, head standardization from the training split (per well and step)."""
    mean = heads_train.mean(0)
    sd = np.maximum(heads_train.std(0), 1e-3)
    return AmortizedPosterior(prior.mean, prior.cov, mean, sd, cfg.model.sizes(cfg.seed))


def save_model(model: AmortizedPosterior, path: Path, extra: dict) -> None:
    artifacts.save_torch({"sizes": vars(model.sizes), "dim": model.dim, "n_wells": N_WELLS, "n_steps": N_STEPS,
                          "state_dict": model.state_dict(), "meta": json.dumps(extra, sort_keys=True)}, path)


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[AmortizedPosterior, dict]:
    """The trained model (eval mode) and its metadata; a missing or foreign file is a UserError."""
    blob = artifacts.load_torch(path)
    if not isinstance(blob, dict) or "state_dict" not in blob or "sizes" not in blob:
        raise UserError(f"{path} is not a phys-ml groundwater flow model")
    dim = int(blob["dim"])
    model = AmortizedPosterior(np.zeros(dim), np.eye(dim), np.zeros((blob["n_wells"], blob["n_steps"])),
                               np.ones((blob["n_wells"], blob["n_steps"])), FlowSizes(**blob["sizes"]))
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval(), json.loads(blob["meta"])


def train_flow(ctx: StageContext) -> None:
    """Train summary network + conditional flow on the training split, early stopping on the validation split."""
    from .pipeline import _configs, _prior

    cfg = flow_config(ctx)
    set_threads(cfg)
    _, gen_cfg = _configs(ctx)
    if gen_cfg.n_val < 1:
        raise UserError("groundwater.generate.n_val must be >= 1: the flow stops early on the validation split")
    prior = _prior(gen_cfg.prior)
    _, lnk_tr, heads_tr = read_split(ctx.task_dir, "train")
    _, lnk_va, heads_va = read_split(ctx.task_dir, "val")
    if len(lnk_tr) < cfg.train.batch_size:
        raise UserError(f"groundwater.flow.train.batch_size ({cfg.train.batch_size}) exceeds the "
                        f"{len(lnk_tr)} training simulations")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, prior, heads_tr).to(device)
    settings = cfg.train.settings(gen_cfg.noise_sd)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.asarray(a), dtype=torch.float32, device=device)

    with torch.no_grad():
        z_tr, z_va = model.whitening(tensor(lnk_tr)), model.whitening(tensor(lnk_va))
    fingerprint = _fingerprint(cfg, gen_cfg.prior.model_dump(), lnk_tr, heads_tr)
    ckpt_path = ctx.task_dir / CHECKPOINT_FILE
    state = _resume(ckpt_path, fingerprint, ctx)
    resumed_epochs = state.epoch if state else 0

    def checkpoint(s: TrainState) -> None:
        artifacts.save_torch({"fingerprint": fingerprint, "state": s.to_dict()}, ckpt_path)
        last = s.history[-1]
        if not _log_epoch(s.epoch, settings.epochs):
            return
        ctx.console.print(f"{TASK} flow: epoch {s.epoch} train {last['train_loss']:.2f} val {last['val_loss']:.2f} "
                          f"(best {s.best_val:.2f} at {s.best_epoch}) lr {last['lr']:.2e}", highlight=False)

    t0 = time.perf_counter()
    try:
        state = train(model, z_tr, tensor(heads_tr), z_va, tensor(heads_va), settings, cfg.seed, state=state,
                      on_epoch=checkpoint,
                      progress=lambda r: track(r, f"{TASK}: flow epochs", total=len(r)))
    except NonFiniteLoss as exc:
        kept = f"; last good checkpoint kept at {ckpt_path}" if ckpt_path.is_file() else ""
        raise RunFailed(f"{TASK} flow training stopped: {exc}{kept}") from None
    wall = time.perf_counter() - t0
    params = {"flow": cfg.model_dump(), "prior": gen_cfg.prior.model_dump(), "noise_sd": gen_cfg.noise_sd}
    extra = {"params": params, "best_epoch": state.best_epoch, "best_val_loss": state.best_val,
             "units": {"lnk": "ln(K / (m/d))", "heads": "m"}, "obs_cells": freyberg.OBS_CELLS}
    save_model(model.cpu(), ctx.task_dir / MODEL_FILE, extra)
    hist = state.history
    table = pa.table({k: pa.array([h[k] for h in hist]) for k in ("epoch", "train_loss", "val_loss", "lr")})
    artifacts.write_parquet(table, ctx.task_dir / "flow_history.parquet", task=TASK, stage="train-flow",
                            seed=cfg.seed, params=params, extra={"stop_reason": state.stopped})
    summary = {"epochs_run": state.epoch, "best_epoch": state.best_epoch, "best_val_nll": state.best_val,
               "stop_reason": state.stopped, "n_parameters": n_parameters(model), "n_train": len(lnk_tr),
               "n_val": len(lnk_va), "device": str(device), "train_wall_s": round(wall, 1),
               "s_per_epoch": round(wall / max(1, state.epoch - resumed_epochs), 3)}
    artifacts.write_json(ctx.task_dir / "flow_train.json", summary)
    ckpt_path.unlink(missing_ok=True)
    print_summary(ctx.console, f"{TASK} train flow", summary)


def _log_epoch(epoch: int, total: int, lines: int = 10) -> bool:
    return epoch == 1 or epoch % max(1, total // lines) == 0


def _resume(path: Path, fingerprint: str, ctx: StageContext) -> TrainState | None:
    if not path.is_file():
        return None
    try:
        blob = artifacts.load_torch(path)
    except Exception:  # an unreadable checkpoint (killed mid-write cannot happen: writes are atomic) restarts
        blob = None
    if not isinstance(blob, dict) or blob.get("fingerprint") != fingerprint:
        ctx.console.print(f"{TASK} flow: {path} belongs to other params or data; starting afresh", highlight=False)
        return None
    state = TrainState.from_dict(blob["state"])
    ctx.console.print(f"{TASK} flow: resuming after epoch {state.epoch} from {path}", highlight=False)
    return state


# ---------------------------------------------------------------- amortized inference on a user's data
def read_observation_file(path: Path) -> pa.Table:
    if not path.is_file():
        raise UserError(f"{path} not found")
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


def posterior_samples(model: AmortizedPosterior, heads: np.ndarray, mask: np.ndarray, n: int,
                      seed: int) -> np.ndarray:
    """(n, 706) float64 ln K draws for one data set (heads in m, NaN where ``mask`` is False)."""
    device = model.heads_mean.device
    gen = torch.Generator(device=device).manual_seed(seed)
    h = torch.as_tensor(np.where(mask, heads, 0.0), dtype=torch.float32, device=device)
    m = torch.as_tensor(mask, device=device)
    return model.sample_lnk(h, m, n, generator=gen).double().cpu().numpy()


def infer(obs: Path, n_samples: int, out: Path, model_path: Path, seed: int, device: str = "auto") -> dict:
    """Posterior samples of ln K for the observations in ``obs``, written to ``out`` and a summary beside it."""
    if n_samples < 1:
        raise UserError(f"--samples must be >= 1, got {n_samples}")
    if out.suffix.lower() != ".parquet":
        raise UserError(f"--out must name a .parquet file, got {out}")
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
