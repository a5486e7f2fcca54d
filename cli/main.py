"""The `phys-ml` command. It parses arguments, resolves paths and hands over to the stages; no science here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from phys_ml import __version__
from phys_ml.cli import diphoton as diphoton_cli
from phys_ml.cli import groundwater as groundwater_cli
from phys_ml.stages.common.errors import Interrupted, PhysMLError, UserError

app = typer.Typer(
    name="phys-ml",
    help="Pipelines reproducing physics-informed machine-learning studies. Stages read params.yaml and write "
    "Parquet, metrics and figures under data/; `dvc repro` runs them all.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
profile_app = typer.Typer(help="Parameter profiles: smoke (tests), default (committed), paper (paper scale).",
                          no_args_is_help=True)
app.add_typer(profile_app, name="profile")

err = Console(stderr=True)
STATE = {"debug": False}

TaskArg = Annotated[str, typer.Argument(help="Task: particles, thermo, groundwater, diphoton or rre.")]
SubtaskArg = Annotated[Optional[str], typer.Argument(help="Sub-task (particles: task2, task31, task32); all if omitted.")]
ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="Parameter file.")]
DataOpt = Annotated[Path, typer.Option("--data-dir", help="Where artifacts are written.")]


def _version(value: bool) -> None:
    if value:
        print(f"phys-ml {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    STATE["debug"] = debug


def check_data_dir(data_dir: Path) -> None:
    """--data-dir must be a folder or not exist yet (then it is made); a file there is bad input."""
    for path in (data_dir, *data_dir.parents):
        if path.exists() and not path.is_dir():
            raise UserError(f"--data-dir {data_dir}: {path} is a file, not a folder")


def _run_stage(stage: str, task: str, subtask: str | None, params_path: Path, data_dir: Path) -> None:
    from phys_ml.stages.common.context import StageContext
    from phys_ml.stages.common.params import load_params
    from phys_ml.stages.registry import get_task, stage_function

    info = get_task(task)
    fn = stage_function(info, stage, subtask)
    check_data_dir(data_dir)
    ctx = StageContext(task=task, params=load_params(params_path), data_dir=data_dir, console=err)
    fn(ctx, subtask)


@app.command(rich_help_panel="Stages")
def generate(task: TaskArg, subtask: SubtaskArg = None, params: ParamsOpt = Path("params.yaml"),
             data_dir: DataOpt = Path("data"),
             runner: Annotated[Optional[str], typer.Option(
                 "--runner", help="groundwater: where MODFLOW runs, local or dask.")] = None,
             scheduler: Annotated[Optional[str], typer.Option(
                 "--scheduler", help="groundwater: a dask scheduler address (implies --runner dask).")] = None) -> None:
    """Simulate the data set of a task."""
    if runner is not None or scheduler is not None:
        if task != "groundwater":
            raise UserError(f"--runner and --scheduler apply to the groundwater task only, not '{task}'")
        groundwater_cli.apply_runner_options(runner, scheduler)
    _run_stage("generate", task, subtask, params, data_dir)


@app.command(rich_help_panel="Stages")
def train(task: TaskArg, subtask: SubtaskArg = None, params: ParamsOpt = Path("params.yaml"),
          data_dir: DataOpt = Path("data")) -> None:
    """Train the models of a task."""
    _run_stage("train", task, subtask, params, data_dir)


@app.command(rich_help_panel="Stages")
def evaluate(task: TaskArg, subtask: SubtaskArg = None, params: ParamsOpt = Path("params.yaml"),
             data_dir: DataOpt = Path("data")) -> None:
    """Evaluate a task's models: metrics.json, tables and figures."""
    _run_stage("evaluate", task, subtask, params, data_dir)


@app.command(rich_help_panel="Stages")
def report(params: ParamsOpt = Path("params.yaml"), data_dir: DataOpt = Path("data"),
           out: Annotated[Optional[Path], typer.Option(
               help="Folder for report.md and report.html (default: reports/ for data/, else DATA_DIR/report).")]
           = None) -> None:
    """Write the Markdown and HTML report: the paper's tables beside ours, with the figures."""
    from phys_ml.stages.common.config import section
    from phys_ml.stages.common.params import load_params
    from phys_ml.stages.report_stage import build_report

    check_data_dir(data_dir)
    if out is None:  # the committed reports/ describe data/ only; another data folder gets its own report
        out = Path("reports") if data_dir == Path("data") else data_dir / "report"
    title = section(load_params(params), "report").get("title", "phys-ml report")
    md, html, shown, missing = build_report(data_dir, out, str(title))
    err.print(f"report: {md} and {html}; tasks shown: {', '.join(shown) or 'none'}; "
              f"not run: {', '.join(missing) or 'none'}")


@app.command(rich_help_panel="Pipeline")
def reproduce(
    force: Annotated[bool, typer.Option("--force", "-f", help="Run every stage even if unchanged.")] = False,
    target: Annotated[Optional[str], typer.Argument(help="A stage name to reproduce (with its dependencies).")] = None,
) -> None:
    """Run the whole pipeline with `dvc repro` (only what changed)."""
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    if not Path(dvc).exists() and not shutil.which("dvc"):
        raise UserError("dvc not found: install the project with `make install`")
    if not Path("dvc.yaml").is_file():
        raise UserError("no dvc.yaml here: run `phys-ml reproduce` from the project's root folder")
    cmd = [dvc, "repro"] + (["--force"] if force else []) + ([target] if target else [])
    # The stages call `phys-ml`: put this environment's bin folder first, activated or not.
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "DVC_NO_ANALYTICS": "1"}
    code = subprocess.call(cmd, env=env)
    if code:
        raise typer.Exit(code)  # dvc's own exit code


@app.command(rich_help_panel="Pipeline")
def info(lock: Annotated[Optional[Path], typer.Option(
        help="Lock file to compare the installed versions with (default: the checkout's uv.lock).")] = None) -> None:
    """Versions (and whether they are uv.lock's), the resolved torch device and the MODFLOW 6 executable."""
    import platform

    import torch

    from phys_ml import environment
    from phys_ml.stages.common.runtime import resolve_device

    lock_path = lock or environment.default_lock_path()
    if lock is not None and not lock.is_file():
        raise UserError(f"--lock {lock}: no such file")
    locked = environment.locked_versions(lock_path) if lock_path.is_file() else None
    rows = [("phys-ml", __version__), ("python", platform.python_version()),
            ("device (auto)", str(resolve_device("auto"))), ("torch threads", str(torch.get_num_threads())),
            *environment.version_rows(locked), ("dvc", environment.installed_version("dvc") or "not installed"),
            ("mf6", _mf6_line())]
    if locked is not None:
        moved = environment.mismatches(locked)
        rows.append(("uv.lock", f"{lock_path}: " + (f"{len(moved)} installed version(s) differ: "
                                                    + ", ".join(sorted(moved)) if moved
                                                    else f"all {len(locked)} locked versions installed")))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _mf6_line() -> str:
    from phys_ml.stages.groundwater.mf6 import EXPECTED_VERSION, mf6_info

    found = mf6_info()
    if found["error"]:
        return f"not found ({found['error']})"
    pinned = "= the pinned" if found["version"] == EXPECTED_VERSION else "the pipeline pins"
    return f"{found['path']} (version {found['version']}; {pinned} {EXPECTED_VERSION})"


@profile_app.command("apply")
def profile_apply(name: Annotated[str, typer.Argument(help="Profile name: smoke or paper.")],
                  root: Annotated[Path, typer.Option(help="Project root.")] = Path(".")) -> None:
    """Overlay profiles/NAME.yaml onto params.yaml (`git checkout params.yaml` restores the defaults)."""
    from phys_ml.stages.common.params import apply_profile

    path = apply_profile(root, name)
    err.print(f"applied profile '{name}' to {path}")


@profile_app.command("list")
def profile_list(root: Annotated[Path, typer.Option(help="Project root.")] = Path(".")) -> None:
    """List the available profiles."""
    from phys_ml.stages.common.params import available_profiles

    for name in available_profiles(root):
        print(name)


# Task-specific helper commands: `phys-ml groundwater ...`, `phys-ml diphoton ...`.
app.add_typer(diphoton_cli.app, name="diphoton", rich_help_panel="Task helpers")
app.add_typer(groundwater_cli.app, name="groundwater", rich_help_panel="Task helpers")


def run() -> None:
    """Console entry point: errors become one line on stderr and an exit code (2 bad input, 1 failed run)."""
    debug = "--debug" in sys.argv[1:]
    try:
        # standalone_mode=False returns typer's exit code instead of exiting (Ctrl-C outside a stage: 130)
        code = app(standalone_mode=False)
    except Interrupted as exc:  # a stage caught Ctrl-C, cleaned up and says how a rerun resumes
        err.print(str(exc), highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except PhysMLError as exc:
        if debug:
            raise
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted", highlight=False)
        sys.exit(130)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            raise
        err.print(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                  highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
    if code == 130:
        err.print(INTERRUPTED, highlight=False, markup=False, soft_wrap=True)
    sys.exit(code if isinstance(code, int) else 0)


INTERRUPTED = "interrupted; nothing half-written was kept: rerun the command (long stages resume where they stopped)"


if __name__ == "__main__":
    run()
