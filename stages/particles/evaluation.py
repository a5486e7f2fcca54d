"""Test-set metrics of every model and baseline, from predictions and loss histories (numpy, no I/O).

The pipeline loads the models, predicts, and writes what these functions return to metrics.json.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import metrics as M
from .store import History


def continuation_mask(test: dict[str, np.ndarray]) -> np.ndarray:
    """(n, C) mask of the valid continuation steps of the zero-padded test set."""
    horizon = test["cont"].shape[1]
    return np.arange(horizon)[None] < test["cont_lengths"][:, None]


def task2(test: dict[str, np.ndarray], horizons: tuple[float, ...], preds: dict[int, dict[str, np.ndarray]],
          history: History) -> dict[str, Any]:
    """preds: training size -> model name -> (n, H, N, 2) predicted positions."""
    out: dict[str, Any] = {"train_sizes": list(preds), "horizons": list(horizons)}
    for n, by_model in preds.items():
        out[f"n{n}"] = {
            name: {**{f"rmse_t{t:g}": M.rmse(p[:, h], test["targets"][:, h]) for h, t in enumerate(horizons)},
                   **{f"r2_t{t:g}": M.r2(p[:, h], test["targets"][:, h]) for h, t in enumerate(horizons)}}
            for name, p in by_model.items()
        }
    out["studies"] = {group[6:]: {label: {"best_val_mse": min(h["val_loss"]), "final_val_mse": h["val_loss"][-1]}
                                  for label, h in runs.items()}
                      for group, runs in history.items() if group.startswith("study_")}
    return out


def charge_errors(pred: np.ndarray, q: np.ndarray) -> dict[str, float]:
    return {"mse": float(((pred - q) ** 2).mean()), "mae": float(np.abs(pred - q).mean()),
            "rmse": float(np.sqrt(((pred - q) ** 2).mean()))}


def task31(q: np.ndarray, train_q: np.ndarray, lstm: np.ndarray, least_squares: np.ndarray,
           compare: list[np.ndarray], history: History) -> dict[str, Any]:
    """q: true test charges; compare: test predictions of the comparison runs, in the history's order."""
    main_label, main_hist = next(iter(history["main"].items()))
    mean_pred = np.broadcast_to(train_q.mean(0), q.shape)
    out: dict[str, Any] = {
        "lstm": {**charge_errors(lstm, q), "best_val_mse": min(main_hist["val_loss"]), "optimizer": main_label},
        "least_squares": charge_errors(least_squares, q),
        "train_mean": charge_errors(mean_pred, q),
        "compare": {},
    }
    for (label, h), p in zip(history.get("compare", {}).items(), compare):
        out["compare"][label] = {"best_val_mse": min(h["val_loss"]), "worst_val_mse": max(h["val_loss"]),
                                 "test_mse": charge_errors(p, q)["mse"]}
    return out


def task32(test: dict[str, np.ndarray], preds: dict[str, np.ndarray], q_fit: np.ndarray,
           history: History) -> dict[str, Any]:
    """preds: name -> (n, C, 2) continuation, baselines and learned models."""
    mask = continuation_mask(test)
    learned = history.get("model", {})
    out: dict[str, Any] = {"models": {}, "physics_rollout_charge_mse": float(((q_fit - test["charges"]) ** 2).mean())}
    for name, p in preds.items():
        row = {"mse": M.masked_mse(p, test["cont"], mask)}
        if name in learned:
            row["best_val_mse"] = min(learned[name]["val_loss"])
        out["models"][name] = row
    lin = out["models"]["linear_extrapolation"]["mse"]
    out["beats_linear"] = sorted(k for k, v in out["models"].items() if v["mse"] < lin)
    return out


def headline(sub: str, m: dict[str, Any]) -> dict[str, float]:
    """The few numbers the evaluate stage prints per sub-task."""
    if sub == "task2":
        n = max(m["train_sizes"])
        big = m[f"n{n}"]
        last = m["horizons"][-1]
        return {f"n={n} R2 t={last:g} {k}": big[k][f"r2_t{last:g}"] for k in ("baseline", "mlp", "gnn")}
    if sub == "task31":
        return {"LSTM charge MSE": m["lstm"]["mse"], "least-squares charge MSE": m["least_squares"]["mse"]}
    return {f"{k} MSE": v["mse"] for k, v in m["models"].items()}
