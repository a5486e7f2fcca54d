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

# typer 0.29 raises the exceptions of its own copy of click, not those of the `click` package
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

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


def _run_stage(stage: str, task: str, subtask: str | None, params_path: Path, data_dir: Path) -> None:
    from phys_ml.stages.common.artifacts import check_output_dir
    from phys_ml.stages.common.context import StageContext
    from phys_ml.stages.registry import get_task, load_stage_params, stage_function

    info = get_task(task)
    fn = stage_function(info, stage, subtask)
    check_output_dir(data_dir, "--data-dir")
    ctx = StageContext(task=task, params=load_stage_params(params_path), data_dir=data_dir, console=err)
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
    from phys_ml.stages.common.artifacts import check_output_dir
    from phys_ml.stages.common.config import parse_config
    from phys_ml.stages.common.report import ReportConfig
    from phys_ml.stages.registry import load_stage_params
    from phys_ml.stages.report_stage import build_report

    check_output_dir(data_dir, "--data-dir")
    if out is None:  # the committed reports/ describe data/ only; another data folder gets its own report
        out = Path("reports") if data_dir == Path("data") else data_dir / "report"
    check_output_dir(out, "--out")
    title = parse_config(ReportConfig, load_stage_params(params), "report").title
    md, html, shown, missing = build_report(data_dir, out, title)
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
            ("mf6", _mf6_line()),
            ("cpu", _cpu_line(environment, environment.default_lock_path().parent / "reports"))]
    if locked is not None:
        moved = environment.mismatches(locked)
        rows.append(("uv.lock", f"{lock_path}: " + (f"{len(moved)} installed version(s) differ: "
                                                    + ", ".join(sorted(moved)) if moved
                                                    else f"all {len(locked)} locked versions installed")))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _cpu_line(environment, reports_dir: Path) -> str:
    """This CPU's kind, and whether it is the one the committed results were written on."""
    here, recorded = environment.cpu_kind(), environment.recorded_cpu_kind(reports_dir)
    verdict = ("no reports/machine.json to compare" if recorded is None else "= reports/machine.json"
               if recorded == here else "reports/machine.json names another: outputs may differ in the last bits")
    return f"{environment.describe_cpu_kind(here)}  ({verdict})"


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
    from phys_ml.stages.registry import validate_params

    path = apply_profile(root, name, validate=validate_params)
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


def _usage_line(exc: UsageError) -> str:
    """Click's usage error as one line: the command, what is wrong and where help is."""
    ctx = exc.ctx
    command = ctx.command_path if ctx is not None else "phys-ml"
    if isinstance(exc, NoArgsIsHelpError):  # the help is already on stdout
        return f"error: {command}: missing command (see the list above)"
    return f"error: {command}: {exc.format_message()} (see '{command} --help')"


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
        err.print(f"error: {_one_line(str(exc))}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except UsageError as exc:  # typer's own click (typer._click): a bad command line is bad input
        err.print(_usage_line(exc), highlight=False, markup=False, soft_wrap=True)
        sys.exit(UserError.exit_code)
    except ClickException as exc:  # other click errors (a file option that cannot be opened): bad input too
        err.print(f"error: {_one_line(exc.format_message())}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(UserError.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted", highlight=False)
        sys.exit(130)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # a bug: say so in one line; --debug shows the traceback
        if debug:
            raise
        err.print(f"error: unexpected {type(exc).__name__}: {_one_line(str(exc))} (run with --debug for the "
                  "traceback)", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
    if code == 130:
        err.print(INTERRUPTED, highlight=False, markup=False, soft_wrap=True)
    sys.exit(code if isinstance(code, int) else 0)


def _one_line(text: str) -> str:
    """The first line of a message (messages are one line by contract; a library's may not be)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] + (" ..." if len(lines) > 1 else "") if lines else ""


INTERRUPTED = "interrupted; nothing half-written was kept: rerun the command (long stages resume where they stopped)"


if __name__ == "__main__":
    run()
