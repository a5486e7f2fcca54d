"""CLI behaviour: help everywhere, one-line errors with exit code 2, versions."""

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
