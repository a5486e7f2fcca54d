"""Figures of the diphoton task: each function returns a matplotlib figure; the pipeline saves it under the
name in ``FIGURES``."""

from __future__ import annotations

import numpy as np

from phys_ml.stages.common.figures import new_figure

from .events import COLUMNS, with_mass

FIGURES = ("m_gg.png", "features.png", "roc.png", "mdmm.png", "training.png")


def all_figures(samples: dict[str, np.ndarray], rocs: dict[str, dict], histories: dict[str, dict], bins: int):
    """File name -> figure, for every name in ``FIGURES``."""
    figs = (m_gg_figure(samples, bins), features_figure(samples, bins), roc_figure(rocs), mdmm_figure(histories),
            training_figure(histories))
    return dict(zip(FIGURES, figs))


def _hist(ax, x, bins, label, style):
    h, edges = np.histogram(x, bins=bins, density=True)
    ax.stairs(h, edges, label=label, **style)


_STYLES = {"data": {"color": "black", "lw": 1.6}, "mc": {"color": "tab:gray", "lw": 1.2, "ls": "--"},
           "log": {"color": "tab:blue"}, "kl": {"color": "tab:green"}, "mmd": {"color": "tab:orange"},
           "mdmm": {"color": "tab:red"}}


def m_gg_figure(samples: dict[str, np.ndarray], bins: int):
    """m_gg of every sample: the full range and the signal region (Fig. 3 left)."""
    fig, ax = new_figure(1, 2, size=(9, 3.4))
    for k, x in samples.items():
        m = with_mass(x)[:, 6]
        _hist(ax[0, 0], m, np.linspace(60, 300, bins + 1), k, _STYLES.get(k, {}))
        _hist(ax[0, 1], m[(m > 100) & (m < 160)], np.linspace(100, 160, bins + 1), k, _STYLES.get(k, {}))
    ax[0, 0].set_yscale("log")
    for a, title in zip(ax[0], ("m_gg", "m_gg, 100-160 GeV")):
        a.set_xlabel("m_gg [GeV]")
        a.set_title(title)
    ax[0, 0].legend(fontsize=7)
    return fig


def features_figure(samples: dict[str, np.ndarray], bins: int):
    """The six features (Fig. 1): data, MC and every model."""
    fig, ax = new_figure(2, 3, size=(11, 6))
    ranges = {"pt1": (35, 250), "pt2": (25, 250), "eta1": (-2.4, 2.4), "eta2": (-2.4, 2.4),
              "phi1": (-3.3, 3.3), "phi2": (-3.3, 3.3)}
    for i, name in enumerate(COLUMNS[:6]):
        a = ax[i // 3, i % 3]
        nb = 3 * bins if name.startswith("eta") else bins
        for k, x in samples.items():
            _hist(a, x[:, i], np.linspace(*ranges[name], nb + 1), k, _STYLES.get(k, {"lw": 0.9}))
        a.set_xlabel(name)
        if name.startswith("pt"):
            a.set_yscale("log")
    ax[0, 0].legend(fontsize=7)
    return fig


def roc_figure(rocs: dict[str, dict]):
    """ROC of the data-vs-X classifier (Fig. 3 right)."""
    fig, ax = new_figure(1, 1, size=(4.5, 4))
    for k, r in rocs.items():
        ax[0, 0].plot(r["fpr"], r["tpr"], label=f"{k} (AUC {r['auc']:.3f})", **_line(k))
    ax[0, 0].plot([0, 1], [0, 1], color="lightgray", lw=0.8)
    ax[0, 0].set_xlabel("false positive rate")
    ax[0, 0].set_ylabel("true positive rate")
    ax[0, 0].legend(fontsize=7)
    return fig


def mdmm_figure(histories: dict[str, dict]):
    """The MDMM trajectories of lambda, L1 and L2 (Fig. 2 right); empty axes without an MDMM run."""
    fig, ax = new_figure(1, 3, size=(11, 3.2))
    if "mdmm" in histories:
        h = histories["mdmm"]
        ax[0, 0].plot(h["epoch"], h["lambda"], color="tab:red")
        ax[0, 0].set_title("lambda")
        ax[0, 1].plot(h["epoch"], h["l1"], color="tab:green")
        ax[0, 1].set_title("L1 = KL (primary)")
        ax[0, 2].plot(h["epoch"], h["l2"], color="tab:orange")
        ax[0, 2].axhline(h["epsilon"], color="black", ls=":", label="epsilon")
        ax[0, 2].set_title("L2 = MMD (constraint)")
        ax[0, 2].legend(fontsize=7)
        for a in ax[0]:
            a.set_xlabel("epoch")
    return fig


def training_figure(histories: dict[str, dict]):
    """Training and validation loss against epochs, one panel per model, with the evaluated (best) epoch."""
    fig, ax = new_figure(1, max(len(histories), 1), size=(3.2 * max(len(histories), 1), 3))
    for a, (k, h) in zip(ax[0], histories.items()):
        a.plot(h["epoch"], h["loss"], label="train")
        a.plot(h["epoch"], h["val_loss"], label="validation")
        if h.get("best_epoch"):
            a.axvline(h["best_epoch"], color="black", ls=":", lw=1, label="best score (evaluated)")
        a.set_title(k)
        a.set_xlabel("epoch")
        a.legend(fontsize=7)
    return fig


def _line(k):
    style = dict(_STYLES.get(k, {"color": "tab:purple", "ls": ":"}))
    style.pop("lw", None)
    return style
