"""End to end: the smoke profile through `dvc repro` in a fresh git repository, twice."""

import pytest
import yaml

from tests.project_copy import DVC, project_repo, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


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
    repo = project_repo(project_root, tmp_path / "repo", profile="smoke")

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
