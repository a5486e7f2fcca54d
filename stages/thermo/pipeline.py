"""thermo pipeline: two-spiral data -> one ensemble of networks per optimizer -> tables, figures, metrics.

Artifacts under data/thermo/:
  spirals.parquet           generate: x1, x2, label, split (train/test)
  curves.parquet            train: long table optimizer, run, seed, epoch, train/test loss and accuracy
  models/<label>.pt         train: the ensemble's state dict (all runs of one optimizer)
  ../timings/thermo-train.json  train: wall seconds per optimizer (not a DVC output: it varies between runs)
  metrics.json              evaluate: accuracy/loss tables (mean and sd over runs) at the table epochs
  figures/curves.png, figures/boundaries.png
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.timings import record_timing
from phys_ml.stages.common.config import parse_config
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.progress import print_summary, track
from phys_ml.stages.common.report import ReportSection, markdown_table
from phys_ml.stages.common.runtime import resolve_device

from . import figures, paper
from .config import EvaluateConfig, GenerateConfig, TrainConfig
from .data import two_spirals
from .metrics import mean_sd, summarize
from .model import EnsembleMLP
from .train import train_ensemble

TASK = "thermo"
CURVES = ("train_loss", "train_acc", "test_loss", "test_acc", "kin_first", "kin_rest", "xi_first")


def _check_subtask(subtask: str | None) -> None:
    if subtask is not None:
        raise UserError(f"task 'thermo' has no sub-tasks, got {subtask!r}")


def _member_seeds(cfg: TrainConfig) -> list[int]:
    """Network initialisation seeds, shared by every optimizer (a paired comparison)."""
    return [cfg.seed * 1000 + r for r in range(cfg.runs)]


def _noise_seed(cfg: TrainConfig, label: str) -> int:
    """Minibatch order and optimizer noise: a stable seed per optimizer label."""
    return cfg.seed * 1_000_003 + zlib.crc32(label.encode()) % 1_000_000


# ---- generate ----
def generate(ctx: StageContext, subtask: str | None) -> None:
    _check_subtask(subtask)
    cfg = parse_config(GenerateConfig, ctx.params, "thermo.generate")
    rng = np.random.default_rng(cfg.seed)
    x_train, y_train = two_spirals(cfg.n_train, cfg.noise, rng, cfg.turns)
    x_test, y_test = two_spirals(cfg.n_test, cfg.noise, rng, cfg.turns)
    x = np.concatenate([x_train, x_test])
    table = pa.table({
        "x1": pa.array(x[:, 0], pa.float32()),
        "x2": pa.array(x[:, 1], pa.float32()),
        "label": pa.array(np.concatenate([y_train, y_test]).astype(np.int8), pa.int8()),
        "split": pa.array(["train"] * cfg.n_train + ["test"] * cfg.n_test, pa.string()),
    })
    path = artifacts.write_parquet(table, ctx.task_dir / "spirals.parquet", task=TASK, stage="generate",
                                   seed=cfg.seed, params=cfg.model_dump(), extra={"units": "dimensionless"})
    print_summary(ctx.console, "thermo generate", {"train points": cfg.n_train, "test points": cfg.n_test,
                                                   "noise": cfg.noise, "turns": cfg.turns, "written": str(path)})


def load_spirals(task_dir: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    table, _ = artifacts.read_parquet(task_dir / "spirals.parquet")
    x = np.stack([table["x1"].to_numpy(), table["x2"].to_numpy()], axis=1).astype(np.float32)
    y = table["label"].to_numpy().astype(np.float32)
    train = np.asarray(table["split"].to_pylist()) == "train"
    out = {"x_train": x[train], "y_train": y[train], "x_test": x[~train], "y_test": y[~train]}
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in out.items()}


# ---- train ----
def train(ctx: StageContext, subtask: str | None) -> None:
    _check_subtask(subtask)
    cfg = parse_config(TrainConfig, ctx.params, "thermo.train")
    device = resolve_device(cfg.device)
    data = load_spirals(ctx.task_dir, device)
    seeds = _member_seeds(cfg)
    columns: dict[str, list] = {k: [] for k in ("optimizer", "run", "seed", "epoch", *CURVES)}
    timing, finals = {}, {}
    for label, choice in cfg.optimizers.items():
        start = time.perf_counter()
        model, curves = train_ensemble(
            data, choice, seeds, epochs=cfg.epochs, batch_size=cfg.batch_size, hidden=cfg.hidden,
            eval_every=cfg.eval_every, noise_seed=_noise_seed(cfg, label),
            progress=lambda it, label=label: track(it, f"thermo train {label}", total=cfg.epochs))
        timing[label] = round(time.perf_counter() - start, 2)
        artifacts.save_torch({k: v.cpu() for k, v in model.state_dict().items()},
                             ctx.task_dir / "models" / f"{label}.pt")
        k, runs = len(curves.epochs), len(seeds)
        columns["optimizer"] += [label] * (k * runs)
        columns["run"] += list(np.tile(np.arange(runs), k))
        columns["seed"] += list(np.tile(seeds, k))
        columns["epoch"] += list(np.repeat(curves.epochs, runs))
        for name in CURVES:
            columns[name] += list(getattr(curves, name).ravel())
        acc, sd = mean_sd(curves.test_acc[-1])
        finals[label] = (f"{100 * acc:.1f} ± {100 * sd:.1f} %" if acc is not None else "all runs diverged") + \
            f" ({timing[label]:.0f} s)"
    table = pa.table({
        "optimizer": pa.array(columns["optimizer"], pa.string()),
        "run": pa.array(columns["run"], pa.int32()),
        "seed": pa.array(columns["seed"], pa.int64()),
        "epoch": pa.array(columns["epoch"], pa.int32()),
        **{k: pa.array(columns[k], pa.float64()) for k in CURVES},
    })
    params = cfg.model_dump()
    params["optimizers"] = {k: {"name": v.name, **v.kwargs()} for k, v in cfg.optimizers.items()}
    artifacts.write_parquet(table, ctx.task_dir / "curves.parquet", task=TASK, stage="train", seed=cfg.seed,
                            params=params, extra={"units": "loss: BCE (nats); accuracy: fraction; kin_*: mean p^2 "
                                                                  "(kinetic temperature); xi_first: 1 / time"})
    # wall times vary between identical runs: kept out of DVC's outputs (common/timings.py)
    record_timing(ctx.data_dir, TASK, "train", {"device": str(device), "runs": cfg.runs, "epochs": cfg.epochs,
                                                "wall_s": timing, "wall_s_total": round(sum(timing.values()), 2)})
    print_summary(ctx.console, f"thermo train: final test accuracy over {cfg.runs} runs, {cfg.epochs} epochs",
                  finals)


def read_curves(task_dir: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Per optimizer label: epochs (K,) and (K, runs) arrays of each curve; plus the train metadata."""
    table, meta = artifacts.read_parquet(task_dir / "curves.parquet")
    cols = {name: table[name].to_numpy() for name in table.column_names if name != "optimizer"}
    labels = np.asarray(table["optimizer"].to_pylist())
    out = {}
    for label in dict.fromkeys(labels):  # first-seen order = params order
        rows = labels == label
        runs = int(cols["run"][rows].max()) + 1
        epochs = cols["epoch"][rows].reshape(-1, runs)[:, 0]
        out[label] = {"epochs": epochs, **{k: cols[k][rows].reshape(-1, runs) for k in CURVES}}
    return out, meta


# ---- evaluate ----
def evaluate(ctx: StageContext, subtask: str | None) -> None:
    _check_subtask(subtask)
    cfg = parse_config(EvaluateConfig, ctx.params, "thermo.evaluate")
    curves, meta = read_curves(ctx.task_dir)
    train_params = meta.get("params", {})
    metrics = summarize(curves, cfg.table_epochs)
    metrics["runs"] = int(train_params.get("runs", 0))
    metrics["epochs"] = int(train_params.get("epochs", 0))
    artifacts.write_json(ctx.task_dir / "metrics.json", metrics)

    data = load_spirals(ctx.task_dir)
    hidden = int(train_params.get("hidden", 100))
    models = {}
    for label in curves:
        state = artifacts.load_torch(ctx.task_dir / "models" / f"{label}.pt")
        model = EnsembleMLP(state["layer1.weight"].shape[0], hidden)
        model.load_state_dict(state)
        models[label] = model
    fig_dir = ctx.task_dir / "figures"
    figures.save_curves(curves, fig_dir / "curves.png")
    figures.save_boundaries(models, data, fig_dir / "boundaries.png", grid=cfg.grid, runs=cfg.boundary_runs)
    figures.save_thermostat(curves, thermostat_references(train_params.get("optimizers", {})),
                            fig_dir / "thermostat.png")
    last = metrics["epochs"]
    print_summary(ctx.console, f"thermo evaluate: test accuracy (%) at epoch {last}, mean +- sd",
                  {label: _pm(metrics[label], f"test_acc_e{last}", 100) for label in curves})


def thermostat_references(optimizers: dict[str, dict]) -> dict[str, dict[str, float]]:
    """The target temperatures of each thermodynamic run (tau, tau1, tau2) and AdLaLa's noise-free mean xi,
    sigma_A^2 / (2 tau1) (with minibatch noise the thermostat settles above it, absorbing the extra heat)."""
    out = {}
    for label, spec in optimizers.items():
        name, ref = spec.get("name"), {}
        if name in ("langevin", "overdamped"):
            ref = {"kin_first": spec["tau"], "kin_rest": spec["tau"]}
        elif name in ("adlala", "lol", "lala"):
            ref = {"kin_first": spec["tau1"], "kin_rest": spec["tau2"]}
            if name == "adlala" and spec["tau1"] > 0:
                ref["xi_first"] = spec["sigma_A"] ** 2 / (2 * spec["tau1"])
        out[label] = ref
    return out


def _pm(block: dict, key: str, scale: float = 1.0, digits: int = 1) -> str:
    if block.get(key) is None:
        return "–"
    return f"{scale * block[key]:.{digits}f} ± {scale * block[key + '_sd']:.{digits}f}"


# ---- report ----
def report_section(data_dir: Path) -> ReportSection | None:
    task_dir = Path(data_dir) / TASK
    path = task_dir / "metrics.json"
    if not path.is_file():
        return None
    metrics = artifacts.read_json(path)
    labels = [k for k, v in metrics.items() if isinstance(v, dict)]
    epochs = sorted({int(k[len("test_acc_e"):]) for lbl in labels for k in metrics[lbl]
                     if k.startswith("test_acc_e") and not k.endswith("_sd")})
    runs, last = metrics.get("runs"), metrics.get("epochs")
    md = [f"Two-spiral classification (4 turns, 500 train / 1,000 test points), network 2-100-1, BCE, batch 25; "
          f"{runs} runs per optimizer (same initialisations for every optimizer), {last} epochs. "
          f"Test accuracy (%) on the full test set, mean ± sd over runs. Paper: {paper.SOURCE}.\n"]
    rows = []
    for label in labels:
        rows.append([label, *(_pm(metrics[label], f"test_acc_e{e}", 100) for e in epochs),
                     _pm(metrics[label], f"test_loss_e{last}", 1, 3)])
    for name, values in paper.SINGLE_RUN_ACCURACY.items():
        rows.append([f"paper, {name} (one run)", *(values.get(e, "–") for e in epochs), "–"])
    md.append(markdown_table(["optimizer", *(f"epoch {e}" for e in epochs), f"test loss, epoch {last}"], rows))
    key = f"test_acc_e{last}"
    if all(metrics.get(k, {}).get(key) is not None for k in ("adam", "adlala")):
        ours = {k: 100 * metrics[k][f"test_acc_e{last}"] for k in ("adam", "adlala")}
        sds = [100 * metrics[k][f"test_acc_e{last}_sd"] for k in ("adam", "adlala")]
        gap = ours["adlala"] - ours["adam"]
        gap_se = (sum(sd * sd for sd in sds) / max(runs or 1, 1)) ** 0.5  # standard error of the difference
        paper_acc = paper.TEN_RUN_ACCURACY_4000
        cmp_rows = [
            ["Adam test accuracy (%)", _pm(metrics["adam"], f"test_acc_e{last}", 100), f"≈ {paper_acc['adam']}"],
            ["AdLaLa test accuracy (%)", _pm(metrics["adlala"], f"test_acc_e{last}", 100),
             f"≈ {paper_acc['adlala']}"],
            ["AdLaLa − Adam (points, ± standard error)", f"{gap:.1f} ± {gap_se:.1f}",
             f"≈ {paper_acc['adlala'] - paper_acc['adam']}"],
            ["Adam test loss", _pm(metrics["adam"], f"test_loss_e{last}", 1, 3),
             "{:.3f} ± {:.3f}".format(*paper.TEN_RUN_TEST_LOSS_4000["adam"])],
            ["AdLaLa test loss", _pm(metrics["adlala"], f"test_loss_e{last}", 1, 3),
             "{:.3f} ± {:.3f}".format(*paper.TEN_RUN_TEST_LOSS_4000["adlala"])],
        ]
        md.append(f"\nAt epoch {last} (paper: ten-run averages at epoch 4,000):\n")
        md.append(markdown_table(["quantity", "ours", "paper"], cmp_rows))
        verdict = "meets" if gap >= 10 else "misses"
        md.append(f"\nTarget (AdLaLa at least 10 points above Adam at 4,000 epochs): {verdict} "
                  f"({gap:.1f} ± {gap_se:.1f} points{'' if last == 4000 else f', at epoch {last}'}).\n")
    thermo_rows = [[label, *(f"{metrics[label][k]:.3g}" if k in metrics[label] else "–"
                             for k in ("kin_first_late", "kin_rest_late", "xi_first_late"))]
                   for label in labels if "kin_first_late" in metrics[label]]
    if thermo_rows:
        md.append("\nThermostat state, averaged over the second half of training and over runs. Kinetic temperature "
                  "= mean p², read after the kick B_h, so it includes the minibatch gradient's h² |∇L|² on top of "
                  "the target tau (1e-4 at the default settings). Without gradient noise AdLaLa's ξ would settle "
                  "at sigma_A² / (2 tau1) (0.5 at the defaults); a larger ξ is the thermostat removing the heat "
                  "of the minibatch noise:\n")
        md.append(markdown_table(["optimizer", "first layer mean p²", "other layers mean p²", "first layer ξ"],
                                 thermo_rows))
    md.append(f"\nCost: each optimizer's {runs} runs train at once as one batched ensemble; wall times are not part "
              "of this report (they differ between identical runs): `data/timings/thermo-train.json` has this run's, "
              "and `benchmarks/thermo_bench.py` measures each optimizer's step cost.\n")
    figs = [task_dir / "figures" / f"{name}.png" for name in ("curves", "boundaries", "thermostat")]
    figs = [p for p in figs if p.is_file()]
    return ReportSection(title="Thermodynamic optimizers: two spirals", markdown="\n".join(md), figures=figs)
