"""The one interface every MODFLOW consumer uses (generate, ies, posterior predictive): a runner.

A runner is a context manager with ``run(lnk (n, 706)) -> (heads (n, n_periods, 13), ok (n,), reasons (n,))``:
row i of the output belongs to row i of the input whatever executed it, heads are NaN and ok False where a run
failed, and ``reasons`` says why ("" when ok). ``n_workers`` tells how many runs go at once.

``open_runner`` picks the implementation (`runner_settings`, the one place that resolves it):
- ``local``: a thread pool of model folders on this machine (`simulate.ModelPool`), the default;
- ``dask``: dask.distributed (`dask_runner.DaskRunner`): with no scheduler address a `LocalCluster` of
  ``n_workers`` one-thread worker processes on this machine, else the user's scheduler
  (``dask scheduler`` + ``dask worker ADDRESS`` on each node, or dask-jobqueue on SLURM/PBS).
Both retry a failed run ``groundwater.model.retries`` times before counting it as failed.

Precedence, highest first:
1. the command line: ``--runner local|dask`` and ``--scheduler ADDRESS`` (of ``phys-ml generate`` and
   ``phys-ml groundwater ies``) set the two environment variables below for their own process;
2. the environment: ``PHYS_ML_GW_RUNNER=local|dask`` names the runner; ``DASK_SCHEDULER_ADDRESS`` (the
   variable dask itself reads) gives the scheduler and, unless ``PHYS_ML_GW_RUNNER`` says otherwise, selects
   ``dask``;
3. params: ``groundwater.model.runner`` and ``groundwater.model.scheduler_address``.
Where the runs execute never changes results: rows are keyed by run index, so the bytes are the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from phys_ml.stages.common.errors import RunFailed, UserError

from . import freyberg
from .mf6 import WHICH_MF6, failed_outside_model
from .simulate import ModelPool
from .store import to_obs

RUNNER_ENV = "PHYS_ML_GW_RUNNER"
ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"
RUNNERS = ("local", "dask")
CLI_ENV = "PHYS_ML_GW_CLI_OPTIONS"  # set by the CLI: which of --runner / --scheduler it passed on (for messages)


class Runner(Protocol):
    n_workers: int

    def run(self, lnk: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Runner: ...

    def __exit__(self, *exc) -> None: ...


@dataclass(frozen=True)
class RunnerSettings:
    runner: str                     # local | dask
    scheduler_address: str | None   # dask only; None: a LocalCluster on this machine
    source: str                     # where the choice came from, for messages


def runner_settings(model_cfg, environ: dict[str, str] | None = None) -> RunnerSettings:
    """The runner and scheduler address to use: environment (set by the CLI options too) over params."""
    env = os.environ if environ is None else environ
    env_runner = env.get(RUNNER_ENV, "").strip().lower()
    env_address = env.get(ADDRESS_ENV, "").strip() or None
    cli = env.get(CLI_ENV, "").split(",")
    runner_source = "--runner" if "--runner" in cli else "--scheduler" if "--scheduler" in cli else f"${RUNNER_ENV}"
    address_source = "--scheduler" if "--scheduler" in cli else f"${ADDRESS_ENV}"
    if env_runner and env_runner not in RUNNERS:
        raise UserError(f"${RUNNER_ENV} must be one of {', '.join(RUNNERS)}, got {env.get(RUNNER_ENV)!r}")
    if env_runner:
        runner, source = env_runner, runner_source
    elif env_address:
        runner, source = "dask", address_source
    else:
        runner, source = model_cfg.runner, "groundwater.model.runner"
    if runner == "local":
        return RunnerSettings("local", None, source)
    if env_address:
        return RunnerSettings("dask", env_address, address_source)
    address = (model_cfg.scheduler_address or "").strip() or None
    return RunnerSettings("dask", address, "groundwater.model.scheduler_address" if address else source)


def open_runner(model_cfg, exe: Path, scenario: freyberg.Scenario = freyberg.Scenario(), *,
                environ: dict[str, str] | None = None) -> Runner:
    """The runner named by ``model_cfg`` (a `pipeline.ModelConfig`), ready to use as a context manager.

    ``exe`` is the mf6 found on this machine; dask workers look for mf6 themselves (``model_cfg.mf6``, their
    environment, PATH, ...), except on a LocalCluster, which uses ``exe``.
    """
    settings = runner_settings(model_cfg, environ)
    retries = getattr(model_cfg, "retries", 0)
    streak = getattr(model_cfg, "max_consecutive_failures", None)
    if settings.runner == "local":
        return ModelPool(exe, model_cfg.n_workers, scenario=scenario, timeout=model_cfg.timeout_s, retries=retries,
                         max_consecutive_failures=streak)
    from .dask_runner import DaskRunner

    return DaskRunner(exe if settings.scheduler_address is None else model_cfg.mf6, model_cfg.n_workers,
                      scenario=scenario, timeout=model_cfg.timeout_s, retries=retries,
                      address=settings.scheduler_address, source=settings.source, max_consecutive_failures=streak)


def checked_forward(runner: Runner, what: str):
    """The forward model of the smoother and the predictive checks: lnk (n, 706) -> (heads (n, 325) well-major,
    ok (n,)). A run that failed outside the model (mf6 crashed, timed out) stops the stage: it says nothing
    about the field."""
    def forward(lnk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heads, ok, reasons = runner.run(lnk)
        bad = sorted({r for r in reasons if failed_outside_model(r)})
        if bad:
            raise RunFailed(f"{what}: MODFLOW runs failed outside the model ({', '.join(bad)}); {WHICH_MF6} "
                            "and rerun")
        return to_obs(heads), ok
    return forward
