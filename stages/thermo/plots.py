"""Figures of the thermo task: learning curves, decision boundaries, thermostat state. Each function returns a
matplotlib figure; the pipeline saves it."""

from __future__ import annotations

import numpy as np
import torch

from phys_ml.stages.common.figures import new_figure

from .model import EnsembleMLP


def curves_figure(curves: dict[str, dict[str, np.ndarray]]):
    """Test accuracy and test loss against epochs: mean over runs with a band of +- one sd."""
    fig, axes = new_figure(1, 2, size=(10.0, 3.6))
    for label, c in curves.items():
        for ax, name, scale in ((axes[0, 0], "test_acc", 100.0), (axes[0, 1], "test_loss", 1.0)):
            mean, sd = scale * c[name].mean(axis=1), scale * c[name].std(axis=1)
            (line,) = ax.plot(c["epochs"], mean, label=label, lw=1.2)
            ax.fill_between(c["epochs"], mean - sd, mean + sd, color=line.get_color(), alpha=0.2, lw=0)
    axes[0, 0].set(xlabel="epoch", ylabel="test accuracy (%)", title="Two spirals: test accuracy")
    axes[0, 1].set(xlabel="epoch", ylabel="test BCE", title="Two spirals: test loss")
    axes[0, 0].legend(loc="lower right")
    return fig


@torch.no_grad()
def boundaries_figure(models: dict[str, EnsembleMLP], data: dict[str, torch.Tensor], *, grid: int, runs: int):
    """The learned decision regions of the first ``runs`` runs of each optimizer, with the test points."""
    x_test, y_test = data["x_test"].cpu().numpy(), data["y_test"].cpu().numpy()
    lim = float(np.abs(x_test).max()) * 1.1
    axis = np.linspace(-lim, lim, grid, dtype=np.float32)
    gx, gy = np.meshgrid(axis, axis)
    points = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1))
    cols = len(models)
    fig, axes = new_figure(runs, cols, size=(2.8 * cols, 2.8 * runs))
    for j, (label, model) in enumerate(models.items()):
        prob = torch.sigmoid(model(points)).numpy()  # (E, grid * grid)
        for r in range(runs):
            ax = axes[r, j]
            if r >= prob.shape[0]:
                ax.set_axis_off()
                continue
            ax.contourf(gx, gy, prob[r].reshape(grid, grid), levels=[0, 0.5, 1], colors=["#c6dbef", "#fdd0a2"])
            ax.scatter(x_test[:, 0], x_test[:, 1], c=np.where(y_test > 0.5, "#d94801", "#08519c"), s=2, lw=0)
            ax.set(xticks=[], yticks=[], aspect="equal", title=f"{label}, run {r}")
            ax.grid(False)
    return fig


def thermostat_figure(curves: dict[str, dict[str, np.ndarray]], references: dict[str, dict[str, float]]):
    """Kinetic temperature (mean p^2) of the first layer and of the rest, and AdLaLa's xi, against epochs,
    for the thermodynamic optimizers; dotted lines: the target temperatures and sigma_A^2 / (2 tau1)."""
    fig, axes = new_figure(1, 3, size=(12.0, 3.4))
    titles = {"kin_first": "first layer: mean p²", "kin_rest": "other layers: mean p²", "xi_first": "first layer: ξ"}
    for ax, (name, title) in zip(axes[0], titles.items()):
        for label, c in curves.items():
            values = c.get(name)
            if values is None or not np.isfinite(values).any():
                continue
            ok = np.isfinite(values).all(axis=1)  # (the initialisation has no momenta yet)
            (line,) = ax.plot(c["epochs"][ok], values[ok].mean(axis=1), label=label, lw=1.2)
            ref = references.get(label, {}).get(name)
            if ref is not None and ref > 0:
                ax.axhline(ref, color=line.get_color(), ls=":", lw=1)
        ax.set(xlabel="epoch", title=title, yscale="log")
    if axes[0, 0].get_legend_handles_labels()[0]:  # none when no thermodynamic optimizer ran
        axes[0, 0].legend(loc="upper right")
    return fig


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
