"""End to end: the smoke profile through `dvc repro` in a fresh git repository, twice."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DVC = str(Path(sys.executable).with_name("dvc"))
PHYS_ML = str(Path(sys.executable).with_name("phys-ml"))


def run(cmd, cwd, timeout=1500):
    bin_dir = str(Path(sys.executable).parent)  # dvc's stages call `phys-ml`, which lives beside this python
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "DVC_NO_ANALYTICS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def copy_project(src: Path, dst: Path) -> None:
    """The files git would commit (tracked and untracked-but-not-ignored), nothing generated."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=src,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        if (src / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dst / rel)


def declared_outputs(dvc_yaml: dict) -> list[str]:
    paths = []
    for stage in dvc_yaml["stages"].values():
        ((var, values),) = stage.get("matrix", {"_": [None]}).items()  # one-variable matrices, as in dvc.yaml
        for value in values:
            for kind in ("outs", "metrics", "plots"):
                for item in stage.get(kind, []):
                    path = next(iter(item)) if isinstance(item, dict) else item
                    paths.append(path.replace("${item.%s}" % var, str(value)))
    return paths


def test_smoke_pipeline_runs_and_second_repro_does_nothing(tmp_path, project_root):
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_project(project_root, repo)
    run(["git", "init", "-q"], repo)
    run([PHYS_ML, "profile", "apply", "smoke"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "smoke"], repo)

    run([DVC, "repro"], repo)
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())
    for rel in declared_outputs(stages):
        path = repo / rel
        assert path.exists(), f"declared output {rel} is missing"
        if path.is_dir():
            assert any(path.iterdir()), f"declared output folder {rel} is empty"
        else:
            assert path.stat().st_size > 0, f"declared output {rel} is empty"

    second = run([DVC, "repro"], repo)
    assert "Running stage" not in second.stdout + second.stderr
    status = run([DVC, "status"], repo)
    assert "up to date" in status.stdout

    report = (repo / "reports" / "report.md").read_text()
    assert "Not run" not in report, "every task should appear in the smoke report"

    # Every stage run again on the same params and data gives the same bytes: dvc.lock does not change.
    lock = (repo / "dvc.lock").read_bytes()
    run([DVC, "repro", "--force"], repo)
    if (repo / "dvc.lock").read_bytes() != lock:
        changed = changed_entries(lock.decode(), (repo / "dvc.lock").read_text())
        pytest.fail(f"a forced rerun changed dvc.lock: {changed}")
    status = run([DVC, "status"], repo)
    assert "up to date" in status.stdout


def changed_entries(before: str, after: str) -> list[str]:
    """The paths whose md5 differs between two dvc.lock texts, by stage."""
    old, new = yaml.safe_load(before)["stages"], yaml.safe_load(after)["stages"]
    changed = []
    for stage, entry in new.items():
        for kind in ("deps", "outs"):
            for item, prior in zip(entry.get(kind, []), old.get(stage, {}).get(kind, [])):
                if item != prior:
                    changed.append(f"{stage}: {item['path']}")
    return changed
