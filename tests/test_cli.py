"""CLI behaviour: help everywhere, one-line errors with exit code 2, versions."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phys_ml import __version__
from phys_ml.cli.main import app

runner = CliRunner()
PHYS_ML = str(Path(sys.executable).with_name("phys-ml"))


@pytest.mark.parametrize("args", [[], ["generate"], ["train"], ["evaluate"], ["report"], ["reproduce"],
                                  ["info"], ["profile"], ["profile", "apply"], ["profile", "list"]])
def test_help_everywhere(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_version():
    result = subprocess.run([PHYS_ML, "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"phys-ml {__version__}"


def run_cli(*args, cwd=None):
    return subprocess.run([PHYS_ML, *args], capture_output=True, text=True, cwd=cwd)


def test_unknown_task_is_one_line_and_exit_2(tmp_path):
    result = run_cli("generate", "nosuchtask", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown task 'nosuchtask' (known: particles, thermo, groundwater, diphoton, rre)"
    assert "Traceback" not in result.stderr


def test_unknown_subtask_exit_2(project_root):
    result = run_cli("train", "particles", "task9", cwd=project_root)
    assert result.returncode == 2
    assert "no sub-task 'task9'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_params_file_exit_2(tmp_path):
    result = run_cli("generate", "particles", "--params", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "nope.yaml not found" in result.stderr and "Traceback" not in result.stderr


def test_bad_param_value_is_named(tmp_path, project_root):
    params = tmp_path / "params.yaml"
    committed = (project_root / "params.yaml").read_text()
    assert "n_train: 10000" in committed
    params.write_text(committed.replace("n_train: 10000", "n_train: 0", 1))
    result = run_cli("generate", "particles", "--params", str(params), "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: particles.generate.task2.n_train must be >= 2, got 0"
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").rglob("*.parquet"))


def test_debug_shows_traceback(tmp_path):
    result = run_cli("--debug", "generate", "nosuchtask", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_unknown_profile_exit_2(project_root, tmp_path):
    result = run_cli("profile", "apply", "huge", "--root", str(project_root))
    assert result.returncode == 2 and "unknown profile 'huge'" in result.stderr


def test_info_lists_versions_and_device():
    result = run_cli("info")
    assert result.returncode == 0
    for key in ("phys-ml", "torch", "device (auto)", "mf6"):
        assert key in result.stdout


def test_report_lists_tasks_not_run(tmp_path, project_root):
    result = run_cli("report", "--params", str(project_root / "params.yaml"), "--data-dir", str(tmp_path / "empty"),
                     "--out", str(tmp_path / "rep"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "Not run" in text and "`particles`" in text
    assert (tmp_path / "rep" / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_reproduce_returns_dvc_exit_code(tmp_path, project_root):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo hi\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([str(Path(sys.executable).with_name("dvc")), "init", "-q"], cwd=repo, check=True)
    result = run_cli("reproduce", "nosuch-stage", cwd=repo)
    assert result.returncode != 0
    assert "nosuch-stage" in result.stdout + result.stderr


def test_data_dir_that_is_a_file_exit_2(tmp_path, project_root):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    for args in (["generate", "particles", "task2"], ["report"]):
        result = run_cli(*args, "--params", str(project_root / "params.yaml"), "--data-dir", str(blocker / "sub"),
                         cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == f"error: --data-dir {blocker / 'sub'}: {blocker} is a file, not a folder"


def test_params_folder_and_empty_params_name_the_file(tmp_path):
    result = run_cli("generate", "particles", "-p", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path} is a folder, not a YAML file"
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = run_cli("generate", "particles", "-p", str(empty), cwd=tmp_path)
    assert result.returncode == 2 and f"{empty} has no section" in result.stderr


def test_report_of_another_data_dir_leaves_reports_alone(tmp_path, project_root):
    result = run_cli("report", "--params", str(project_root / "params.yaml"), "--data-dir", str(tmp_path / "d"),
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "report" / "report.md").is_file()
    assert not (tmp_path / "reports").exists()


# ---------------------------------------------------------------- usage errors: exit 2, one line (issue 21)
def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _stage_commands() -> list[list[str]]:
    from phys_ml.stages.registry import STAGE_NAMES, TASKS

    out = []
    for stage in STAGE_NAMES:
        for name, task in TASKS.items():
            out.append([stage, name])
            takes = getattr(task, "subtask_stages", (stage,))
            out += [[stage, name, sub] for sub in task.subtasks if stage in takes]
    return out


HELPERS = [["report"], ["reproduce"], ["info"], ["profile", "apply", "smoke"], ["profile", "list"],
           ["groundwater", "install-mf6"], ["groundwater", "which-mf6"], ["groundwater", "ies"],
           ["groundwater", "infer", "obs.csv", "--out", "x.parquet"], ["diphoton", "inspect-root", "x.root"]]


@pytest.mark.parametrize("args", _stage_commands() + HELPERS, ids=" ".join)
def test_every_command_and_subtask_rejects_an_unknown_option_with_exit_2(tmp_path, args):
    line = _one_error_line(run_cli(*args, "--no-such-option", cwd=tmp_path))
    assert "No such option: --no-such-option" in line and f"phys-ml {args[0]}" in line


@pytest.mark.parametrize("args, missing", [
    (["generate"], "task"), (["train"], "task"), (["evaluate"], "task"), (["profile", "apply"], "name"),
    (["groundwater", "infer"], "obs"), (["groundwater", "infer", "obs.csv"], "--out"),
    (["diphoton", "inspect-root"], "files"), (["groundwater", "infer", "obs.csv", "--out"], "--out"),
    (["generate", "thermo", "--params"], "--params"), (["report", "--data-dir"], "--data-dir"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_a_missing_argument_is_exit_2_and_one_line_naming_it(tmp_path, args, missing):
    line = _one_error_line(run_cli(*args, cwd=tmp_path))
    assert missing in line and ("Missing" in line or "requires an argument" in line), line


@pytest.mark.parametrize("args, culprit", [
    (["Generate", "thermo"], "No such command 'Generate'"),
    (["profile", "remove"], "No such command 'remove'"),
    (["groundwater", "nosuch"], "No such command 'nosuch'"),
    (["diphoton", "nosuch"], "No such command 'nosuch'"),
    (["generate", "thermo", "a", "b"], "unexpected extra argument"),
    (["groundwater", "infer", "OBS.csv", "--samples", "abc", "--out", "x.parquet"], "--samples"),
    (["groundwater", "infer", "OBS.csv", "--samples", "99999999999999999999", "--out", "x.parquet"], "--samples"),
    (["groundwater", "infer", "OBS.csv", "--samples", "0", "--out", "x.parquet"], "--samples"),
    (["groundwater", "infer", "OBS.csv", "--seed", "-1", "--out", "x.parquet"], "--seed"),
])
def test_usage_errors_are_exit_2_with_one_line(tmp_path, args, culprit):
    assert culprit in _one_error_line(run_cli(*args, cwd=tmp_path))


@pytest.mark.parametrize("group", [[], ["profile"], ["groundwater"], ["diphoton"]])
def test_a_group_without_its_command_shows_help_and_exits_2(tmp_path, group):
    result = run_cli(*group, cwd=tmp_path)
    assert "Usage" in result.stdout
    assert "missing command" in _one_error_line(result)


# ---------------------------------------------------------------- params: sections, finite values, profiles
def _params_with(tmp_path, project_root, edit) -> Path:
    import yaml

    params = yaml.safe_load((project_root / "params.yaml").read_text())
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_a_misspelt_section_is_named(tmp_path, project_root):
    def misspell(p):
        p["thermo"]["trian"] = p["thermo"].pop("train")
    params = _params_with(tmp_path, project_root, misspell)
    line = _one_error_line(run_cli("generate", "thermo", "-p", str(params), "--data-dir", str(tmp_path / "d"),
                                   cwd=tmp_path))
    assert "'thermo.trian' is not a known section" in line and "train" in line
    assert not (tmp_path / "d").exists()
    params = _params_with(tmp_path, project_root, lambda p: p.update(thremo=p.pop("thermo")))
    assert "'thremo' is not a known top-level section" in _one_error_line(
        run_cli("generate", "particles", "-p", str(params), cwd=tmp_path))


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_floats_are_bad_params(tmp_path, project_root, value):
    params = _params_with(tmp_path, project_root, lambda p: p["thermo"]["generate"].update(noise=value))
    line = _one_error_line(run_cli("generate", "thermo", "-p", str(params), "--data-dir", str(tmp_path / "d"),
                                   cwd=tmp_path))
    assert line == f"error: thermo.generate.noise must be a finite number, got {value!r}"
    assert not (tmp_path / "d").exists()


def test_profile_apply_refuses_a_profile_that_makes_bad_params(tmp_path, project_root):
    import shutil

    shutil.copy(project_root / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "bad.yaml").write_text("thermo:\n  train:\n    epochs: 0\n")
    (tmp_path / "profiles" / "typo.yaml").write_text("thermo:\n  trian:\n    epochs: 5\n")
    before = (tmp_path / "params.yaml").read_bytes()
    assert "thermo.train.epochs must be >= 1, got 0" in _one_error_line(
        run_cli("profile", "apply", "bad", "--root", str(tmp_path)))
    assert "'thermo.trian' is not a known section" in _one_error_line(
        run_cli("profile", "apply", "typo", "--root", str(tmp_path)))
    assert (tmp_path / "params.yaml").read_bytes() == before


def test_committed_params_and_profiles_validate_in_full(project_root):
    """Every section of params.yaml, and of each profile applied to it, is known to the registry and parses."""
    from phys_ml.stages.common.params import deep_merge, load_params, load_yaml
    from phys_ml.stages.registry import validate_params

    params = load_params(project_root / "params.yaml")
    validate_params(params)
    for profile in sorted((project_root / "profiles").glob("*.yaml")):
        validate_params(deep_merge(params, load_yaml(profile)))


def test_a_subtask_is_refused_by_a_stage_that_takes_none(tmp_path, project_root):
    params = _params_with(tmp_path, project_root, lambda p: p["groundwater"]["generate"].update(n_sims=1))
    line = _one_error_line(run_cli("generate", "groundwater", "flow", "-p", str(params),  # (once ran 1 simulation)
                                   "--data-dir", str(tmp_path / "d"), cwd=tmp_path))
    assert "`generate groundwater` takes no sub-task (got 'flow'" in line


# ---------------------------------------------------------------- bad files and paths
def test_a_binary_params_file_is_exit_2(tmp_path):
    params = tmp_path / "params.bin"
    params.write_bytes(bytes(range(256)) * 4)
    assert _one_error_line(run_cli("generate", "thermo", "-p", str(params), cwd=tmp_path)) == (
        f"error: {params} is not a text (UTF-8) YAML file")


def test_an_unwritable_data_dir_is_exit_2_and_named(tmp_path, project_root):
    if os.geteuid() == 0:  # root writes anywhere but a read-only or virtual file system
        target = Path("/proc/sys/phys-ml-data")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        target = locked / "data"
    line = _one_error_line(run_cli("generate", "thermo", "-p", str(project_root / "params.yaml"), "--data-dir",
                                   str(target), cwd=tmp_path))
    assert line.startswith(f"error: --data-dir {target}: ") and "not writable" in line


def test_a_folder_is_not_reported_as_not_found(tmp_path, project_root):
    (tmp_path / "data" / "thermo" / "spirals.parquet").mkdir(parents=True)
    line = _one_error_line(run_cli("train", "thermo", "-p", str(project_root / "params.yaml"), "--data-dir",
                                   str(tmp_path / "data"), cwd=tmp_path))
    assert line == f"error: {tmp_path / 'data' / 'thermo' / 'spirals.parquet'} is a folder, not a file"


def test_ies_with_a_data_dir_that_is_a_file_names_it(tmp_path, project_root):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    line = _one_error_line(run_cli("groundwater", "ies", "-p", str(project_root / "params.yaml"), "--data-dir",
                                   str(blocker), cwd=tmp_path))
    assert line == f"error: --data-dir {blocker}: {blocker} is a file, not a folder"


def test_messages_name_the_option_or_param_that_gave_the_value(tmp_path, project_root):
    import socket

    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("PHYS_ML_GW_RUNNER", "DASK_SCHEDULER_ADDRESS")}
    result = subprocess.run([PHYS_ML, "generate", "groundwater", "--scheduler", f"tcp://127.0.0.1:{port}", "-p",
                             str(project_root / "params.yaml"), "--data-dir", str(tmp_path / "d")],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    line = _one_error_line(result)
    assert "(from --scheduler)" in line and "DASK_SCHEDULER_ADDRESS" not in line

    params = _params_with(tmp_path, project_root,
                          lambda p: p["groundwater"]["model"].update(mf6=str(tmp_path / "no-mf6")))
    line = _one_error_line(run_cli("generate", "groundwater", "-p", str(params), "--data-dir",
                                   str(tmp_path / "d"), cwd=tmp_path))
    assert line == f"error: mf6 not found at {tmp_path / 'no-mf6'} (given by groundwater.model.mf6)"
    line = _one_error_line(run_cli("groundwater", "which-mf6", "--mf6", str(tmp_path), cwd=tmp_path))
    assert line == f"error: mf6 at {tmp_path} (given by --mf6) is a folder, not the mf6 executable"
