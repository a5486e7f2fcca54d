"""The particles section of `phys-ml report`: our metrics (metrics.json) beside the paper's numbers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from phys_ml.stages.common.report import ReportSection, markdown_table, task_metrics

from . import paper

FIGURES = ("task2_loss_curves.png", "task2_studies.png", "task2_trajectories.png", "task31_loss_curves.png",
           "task31_charges.png", "task31_best_worst.png", "task32_loss_curves.png", "task32_best_worst.png")

NOTE = (
    "The paper's data set is not public; ours is simulated to match its description (softened Coulomb force, "
    "velocity Verlet, see `params.yaml`), so the numbers compare methods, not identical data. Paper numbers are "
    "from the paper's tables and text. Where we differ from the paper's models: sequences are packed instead of "
    "zero- or last-value-padded; the default profile is smaller (see `params.yaml`: fewer epochs, hidden 64, larger "
    "MLP batches, velocity features for the LSTM) while `profiles/paper.yaml` restores the paper's settings; task-3.2 "
    "gradients are clamped element-wise (`grad_clip`) because the paper's GRU otherwise diverges; the graph network, "
    "the least-squares fit, the physics roll-out and the residual GRU are ours."
)


def _natural(label: str) -> list:
    """Sort key that orders 'batch=8' before 'batch=16' (metrics.json keeps keys sorted as text)."""
    return [float(p) if re.fullmatch(r"[0-9.e+-]+", p) and p not in ".+-e" else p
            for p in re.split(r"([0-9][0-9.e+-]*)", label) if p]


def _task2(m: dict[str, Any]) -> str:
    hs = m["horizons"]
    lines = ["### Task 2: positions of 5 charges at later times (test set)\n"]
    headers = ["train sims", "model"] + [f"RMSE t={t:g}" for t in hs] + [f"R² t={t:g}" for t in hs]
    rows = []
    for n in m["train_sizes"]:
        ours = m[f"n{n}"]
        for name, label in (("baseline", "constant velocity (ours)"), ("mlp", "MLP (ours)"),
                            ("gnn", "graph net (ours)")):
            rows.append([n, label] + [ours[name][f"rmse_t{t:g}"] for t in hs] + [ours[name][f"r2_t{t:g}"] for t in hs])
        if n in paper.TASK2 and len(hs) == 3:
            for name, label in (("baseline", "constant velocity (paper)"), ("model", "MLP (paper)")):
                p = paper.TASK2[n][name]
                rows.append([n, label, *p["rmse"], *p["r2"]])
    lines.append(markdown_table(headers, rows))
    lines.append("\nThe constant-velocity baseline does not depend on the training set, so our rows repeat; the "
                 "paper's baseline numbers differ between its Tables 1-3 (it does not say why).\n")
    studies = m.get("studies") or {}
    if studies:
        lines.append("\nPaper Sec. 1.4 studies (MLP, first horizon, training subset): validation MSE.\n")
        srows = [[group.replace("_", " "), label, runs[label]["best_val_mse"], runs[label]["final_val_mse"]]
                 for group, runs in studies.items() for label in sorted(runs, key=_natural)]
        lines.append(markdown_table(["study", "setting", "best val MSE", "final val MSE"], srows))
        lines.append(f"\nPaper (best validation RMSE per horizon 0.5/1.0/1.5): Adam {paper.TASK2_OPTIMIZERS['adam']}, "
                     f"SGD {paper.TASK2_OPTIMIZERS['sgd']}; chosen lr 1e-4, batch 8.\n")
    return "\n".join(lines)


def _task31(m: dict[str, Any]) -> str:
    rows = [
        ["LSTM (ours, " + m["lstm"]["optimizer"] + ")", m["lstm"]["mse"], m["lstm"]["mae"], m["lstm"]["best_val_mse"]],
        ["least squares on the force law (ours)", m["least_squares"]["mse"], m["least_squares"]["mae"], None],
        ["predict the training mean (ours)", m["train_mean"]["mse"], m["train_mean"]["mae"], None],
        ["LSTM (paper, SGD)", paper.TASK31_TEST_MSE, None, paper.TASK31_BEST_VAL_MSE],
    ]
    text = ["### Task 3.1: the three fixed charges from a trajectory\n",
            markdown_table(["model", "test MSE", "test MAE", "best val MSE"], rows),
            f"\nCharges uniform in [-1, 0] have variance 1/12 = {paper.CHARGE_PRIOR_VARIANCE:.4f}: the MSE of always "
            "predicting -0.5. The paper's best validation MSE 0.0898 is at that level.\n"]
    if m.get("compare"):
        crow = [[label, v["best_val_mse"], v["worst_val_mse"], v["test_mse"]] for label, v in m["compare"].items()]
        for name, v in paper.TASK31_TABLE4.items():
            crow.append([f"{name} (paper, Table 4)", v["best_val"], v["worst_val"], v["test"]])
        text += ["\nOptimizer comparison (paper Sec. 2.4):\n",
                 markdown_table(["optimizer", "best val MSE", "worst val MSE", "test MSE"], crow)]
    return "\n".join(text)


def _task32(m: dict[str, Any]) -> str:
    rows = [[name + " (ours)", v["mse"], v.get("best_val_mse")] for name, v in m["models"].items()]
    rows += [["GRU (paper)", paper.TASK32_GRU_TEST_MSE, paper.TASK32_GRU_BEST_VAL_MSE],
             ["linear extrapolation (paper)", paper.TASK32_LINEAR_TEST_MSE, None]]
    beats = ", ".join(m.get("beats_linear") or []) or "none"
    return "\n".join([
        "### Task 3.2: continuing the trajectory (test MSE over the continuation)\n",
        markdown_table(["model", "test MSE", "best val MSE"], rows),
        f"\nBelow linear extrapolation: {beats}. `physics_rollout` fits the charges by least squares and integrates "
        f"the force law (charge MSE {m['physics_rollout_charge_mse']:.3g}); `gru_residual` learns the correction to "
        "linear extrapolation.\n",
    ])


def report_section(data_dir: Path) -> ReportSection | None:
    """The section from data_dir/particles/metrics.json and its figures; None before the evaluate stage ran."""
    metrics = task_metrics(data_dir, "particles")
    return None if metrics is None else build_section(metrics, Path(data_dir) / "particles" / "figures")


def build_section(metrics: dict[str, Any], figures_dir: Path) -> ReportSection:
    parts = [NOTE + "\n"]
    for key, fn in (("task2", _task2), ("task31", _task31), ("task32", _task32)):
        parts.append(fn(metrics[key]) if key in metrics else f"### {key}\n\nNot run.\n")
    figs = [figures_dir / f for f in FIGURES if (figures_dir / f).is_file()]
    return ReportSection(title="Charged-particle regression", markdown="\n".join(parts), figures=figs)
