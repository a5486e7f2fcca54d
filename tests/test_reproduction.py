"""A fresh environment reproduces the committed results: the cheap stages of the default profile, run again in a
copy of the project, give exactly the bytes that the committed dvc.lock records.

The bytes depend on the installed versions (pyarrow writes its version into every Parquet file; numpy, torch
and TensorFlow decide the numbers), which is why `make install` installs uv.lock's versions. When this fails:
- "dvc.lock is stale": code or params of the stage changed since dvc.lock was written: run `dvc repro` (or
  `make pipeline`) and commit dvc.lock and reports/ with the change;
- "bytes moved": the same code and params give other bytes, so the environment differs from the one that wrote
  dvc.lock (`phys-ml info` names versions that are not uv.lock's). If a version change is intended (`make lock`),
  rerun the pipeline and commit uv.lock, dvc.lock and reports/ together.
The bytes also depend on the kind of CPU (MKL and OpenBLAS choose kernels by it): they are compared only on the
kind that wrote dvc.lock, which the report stage records in reports/machine.json; elsewhere that part is skipped
with the two kinds named, and the staleness check still holds.
"""

import pytest

from phys_ml.environment import cpu_kind, describe_cpu_kind, recorded_cpu_kind
from tests.project_copy import DVC, lock_stages, project_repo, run

pytestmark = pytest.mark.slow

# The stages of the default profile that take seconds to a minute on one core.
CHEAP_STAGES = ["thermo-generate", "diphoton-generate", "rre-generate", "particles-generate@task2",
                "particles-generate@task31", "particles-generate@task32"]


ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def entries(stage: dict, kind: str) -> dict[str, str]:
    return {item["path"]: item.get("md5") for item in stage.get(kind, [])}


@pytest.mark.parametrize("stage", CHEAP_STAGES)
def test_cheap_stage_gives_the_committed_bytes(stage, tmp_path, project_root):
    committed = lock_stages((project_root / "dvc.lock").read_text())
    assert stage in committed, f"{stage} is not in the committed dvc.lock: run `dvc repro {stage}` and commit it"
    repo = project_repo(project_root, tmp_path / "repo")
    # One thread, while `make pipeline` wrote dvc.lock with every core: the bytes must not depend on how a
    # threaded BLAS or torch splits a sum (CI found solver.json moving with the thread count).
    run([DVC, "repro", "--single-item", "--force", stage], repo, env_set=ONE_THREAD)
    rerun = lock_stages((repo / "dvc.lock").read_text())[stage]
    before = committed[stage]

    stale = sorted(path for path, md5 in entries(rerun, "deps").items() if entries(before, "deps").get(path) != md5)
    if rerun.get("params") != before.get("params"):
        stale.append("params.yaml")
    assert not stale, (f"dvc.lock is stale for {stage}: {', '.join(stale)} changed since it was written; "
                       f"run `dvc repro` and commit dvc.lock and reports/")

    recorded = recorded_cpu_kind(project_root / "reports")
    if recorded != cpu_kind():
        pytest.skip(f"dvc.lock was written on {describe_cpu_kind(recorded) if recorded else 'an unrecorded CPU'}, "
                    f"this is {describe_cpu_kind(cpu_kind())}: other kernels, other last bits")
    moved = [f"{path} (md5 {md5}, dvc.lock records {entries(before, 'outs').get(path)})"
             for path, md5 in entries(rerun, "outs").items() if entries(before, "outs").get(path) != md5]
    assert not moved, (f"{stage}: bytes moved in {'; '.join(moved)}. Same code and params, other bytes: this "
                       f"environment is not the one that wrote dvc.lock (`phys-ml info` names versions that differ "
                       f"from uv.lock). To change versions on purpose: `make lock`, `dvc repro`, and commit uv.lock, "
                       f"dvc.lock and reports/ together.")
