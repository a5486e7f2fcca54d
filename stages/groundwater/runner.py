"""The one interface every MODFLOW consumer uses (generate, ies, posterior predictive): a runner.

A runner is a context manager with ``run(lnk (n, 706)) -> (heads (n, n_periods, 13), ok (n,), reasons (n,))``:
row i of the output belongs to row i of the input whatever executed it, heads are NaN and ok False where a run
failed, and ``reasons`` says why ("" when ok). ``n_workers`` tells how many runs go at once.

``open_runner`` picks the implementation from ``groundwater.model.runner``: ``local`` (a thread pool of model
folders on this machine, `simulate.ModelPool`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from . import freyberg
from .simulate import ModelPool


class Runner(Protocol):
    n_workers: int

    def run(self, lnk: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Runner: ...

    def __exit__(self, *exc) -> None: ...


def open_runner(model_cfg, exe: Path, scenario: freyberg.Scenario = freyberg.Scenario()) -> Runner:
    """The runner named by ``model_cfg`` (a `pipeline.ModelConfig`), ready to use as a context manager."""
    return ModelPool(exe, model_cfg.n_workers, scenario=scenario, timeout=model_cfg.timeout_s)
