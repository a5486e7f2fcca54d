"""Plot style and deterministic PNG output."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .artifacts import atomic_path  # noqa: E402

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "phys-ml",
}


def new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] | None = None, **kwargs):
    """A figure and its axes in the project's style."""
    plt.rcParams.update(STYLE)
    size = size or (4.0 * ncols, 3.2 * nrows)
    return plt.subplots(nrows, ncols, figsize=size, squeeze=False, **kwargs)


def save_png(fig, path: str | Path) -> Path:
    """Save atomically, without a Software/date tag, so the same figure gives the same bytes; closes it."""
    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    return path
