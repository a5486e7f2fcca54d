"""Figures of the particle study (matplotlib figures returned to the pipeline, which saves them)."""

from __future__ import annotations

import numpy as np

from phys_ml.stages.common.figures import new_figure

from .datasets import FIXED_POSITIONS


def loss_curves(panels: list[tuple[str, dict[str, dict[str, list[float]]]]], log: bool = True):
    """One panel per (title, {label: {"train_loss": [...], "val_loss": [...]}}): validation solid, training dashed."""
    fig, axes = new_figure(1, len(panels), size=(4.2 * len(panels), 3.3))
    for ax, (title, runs) in zip(axes[0], panels):
        for i, (label, hist) in enumerate(runs.items()):
            color = f"C{i % 10}"
            epochs = np.arange(1, len(hist["val_loss"]) + 1)
            ax.plot(epochs, hist["val_loss"], color=color, label=label)
            ax.plot(epochs, hist["train_loss"], color=color, ls="--", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("MSE (solid: validation, dashed: training)")
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    return fig


def note(text: str):
    """A placeholder figure saying why there is nothing to show (keeps the declared outputs complete)."""
    fig, axes = new_figure(1, 1, size=(4.0, 1.5))
    axes[0][0].axis("off")
    axes[0][0].text(0.5, 0.5, text, ha="center", va="center")
    return fig


def task2_trajectories(cases: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]):
    """cases: (title, pos0 (N, 2), true (H, N, 2), predicted (H, N, 2), charges (N,)) per panel."""
    fig, axes = new_figure(1, len(cases), size=(4.2 * len(cases), 4.0))
    for ax, (title, pos0, true, pred, charges) in zip(axes[0], cases):
        for i in range(pos0.shape[0]):
            color = f"C{i}"
            t = np.concatenate([pos0[None, i], true[:, i]])
            p = np.concatenate([pos0[None, i], pred[:, i]])
            ax.plot(t[:, 0], t[:, 1], "o-", color=color, ms=3)
            ax.plot(p[:, 0], p[:, 1], "x--", color=color, ms=5)
            ax.annotate("+" if charges[i] > 0 else "-", pos0[i], fontsize=11, color=color)
        ax.set_title(title)
        ax.set_aspect("equal", adjustable="datalim")
    axes[0][0].plot([], [], "ko-", ms=3, label="simulated")
    axes[0][0].plot([], [], "kx--", label="predicted")
    axes[0][0].legend(fontsize=7)
    return fig


def _fixed_charges(ax, charges: np.ndarray | None, predicted: np.ndarray | None = None) -> None:
    for j, (x, y) in enumerate(FIXED_POSITIONS):
        ax.plot(x, y, "ks", ms=6)
        if charges is not None:
            text = f"q={charges[j]:.2f}" + (f"\npred {predicted[j]:.2f}" if predicted is not None else "")
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=7)


def task31_cases(cases: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]):
    """cases: (title, trajectory (L, 2), true charges (3,), predicted charges (3,))."""
    fig, axes = new_figure(1, len(cases), size=(4.2 * len(cases), 4.0))
    for ax, (title, traj, q, qp) in zip(axes[0], cases):
        ax.plot(traj[:, 0], traj[:, 1], "-", lw=1)
        ax.plot(traj[0, 0], traj[0, 1], "go", ms=4)
        _fixed_charges(ax, q, qp)
        ax.set_title(title)
        ax.set_aspect("equal", adjustable="datalim")
    return fig


def charge_scatter(panels: list[tuple[str, np.ndarray, np.ndarray]]):
    """Predicted vs true charges: (title, true (n, 3), predicted (n, 3)) per panel."""
    fig, axes = new_figure(1, len(panels), size=(3.6 * len(panels), 3.4))
    for ax, (title, q, qp) in zip(axes[0], panels):
        ax.plot([-1, 0], [-1, 0], "k:", lw=1)
        ax.scatter(q.ravel(), qp.ravel(), s=6, alpha=0.6)
        ax.set_xlabel("true charge")
        ax.set_ylabel("predicted charge")
        ax.set_title(title)
    return fig


def task32_cases(cases: list[tuple[str, np.ndarray, np.ndarray, dict[str, np.ndarray]]]):
    """cases: (title, given (L, 2), true continuation (C, 2), {label: predicted continuation (C, 2)})."""
    fig, axes = new_figure(1, len(cases), size=(4.4 * len(cases), 4.2))
    for ax, (title, given, cont, preds) in zip(axes[0], cases):
        ax.plot(given[:, 0], given[:, 1], "k-", lw=1, label="given")
        ax.plot(cont[:, 0], cont[:, 1], "r-", lw=1.5, label="true continuation")
        for i, (label, p) in enumerate(preds.items()):
            ax.plot(p[:, 0], p[:, 1], "--", color=f"C{i}", lw=1.2, label=label)
        _fixed_charges(ax, None)
        ax.set_title(title)
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize=6)
    return fig


# ---------------------------------------------------------------- the evaluate stage's figures
def _best_worst(err: np.ndarray) -> tuple[tuple[str, int], tuple[str, int]]:
    return ("best", int(np.argmin(err))), ("worst", int(np.argmax(err)))


def task2_figures(test: dict[str, np.ndarray], horizons: tuple[float, ...], preds: dict[str, np.ndarray], n: int,
                  history: dict) -> dict[str, object]:
    """The task-2 figures by file name; ``preds``: model name -> predictions with ``n`` training simulations."""
    main = {lab: h for lab, h in history["mlp"].items() if lab.startswith(f"n={n} ")}
    gnn = {f"gnn {lab}": h for lab, h in history["gnn"].items()}
    panels = [(f"study: {g[6:].replace('_', ' ')} (MLP, t={horizons[0]:g})", runs)
              for g, runs in history.items() if g.startswith("study_")]
    err = ((preds["gnn"][:, -1] - test["targets"][:, -1]) ** 2).mean((1, 2))
    cases = [(f"{which} test sim for the GNN ({model})", test["pos0"][i], test["targets"][i], preds[model][i],
              test["charges"][i]) for which, i in _best_worst(err) for model in ("gnn", "mlp")]
    return {
        "task2_loss_curves.png": loss_curves([(f"MLP, {n} training sims (one per horizon)", main),
                                              ("graph network (all horizons)", gnn)]),
        "task2_studies.png": loss_curves(panels) if panels else note("studies disabled in params"),
        "task2_trajectories.png": task2_trajectories(cases),
    }


def task31_figures(test: dict[str, np.ndarray], lstm: np.ndarray, least_squares: np.ndarray,
                   history: dict) -> dict[str, object]:
    q = test["charges"]
    main_label, main_hist = next(iter(history["main"].items()))
    panels = [("LSTM (" + main_label + ")", {"main": main_hist})]
    if history.get("compare"):
        panels.append(("optimizer comparison", history["compare"]))
    err = ((lstm - q) ** 2).mean(1)
    cases = [(f"{which} LSTM prediction (MSE {err[i]:.3g})", test["given"][i, :test["lengths"][i]], q[i], lstm[i])
             for which, i in _best_worst(err)]
    return {
        "task31_loss_curves.png": loss_curves(panels),
        "task31_charges.png": charge_scatter([("LSTM", q, lstm), ("least squares (force law)", q, least_squares)]),
        "task31_best_worst.png": task31_cases(cases),
    }


def task32_figures(test: dict[str, np.ndarray], preds: dict[str, np.ndarray], models: list[str], err_of,
                   test_mse: dict[str, float], history: dict) -> dict[str, object]:
    """``models``: the learned ones; ``err_of(pred)``: per-sequence MSE; ``test_mse``: name -> test MSE."""
    best = min(models, key=lambda k: test_mse[k])
    cases = []
    for which, i in _best_worst(err_of(preds[best])):
        c = test["cont_lengths"][i]
        shown = {k: preds[k][i, :c] for k in dict.fromkeys([models[0], best, "linear_extrapolation",
                                                            "physics_rollout"])}
        cases.append((f"{which} test case for {best}", test["given"][i, :test["lengths"][i]], test["cont"][i, :c],
                      shown))
    return {
        "task32_loss_curves.png": loss_curves([("continuation roll-out", history.get("model", {}))]),
        "task32_best_worst.png": task32_cases(cases),
    }
