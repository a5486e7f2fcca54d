"""Failures outside the model are not cached, stale model folders are cleaned, wrong-schema inputs exit 2."""

import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import RunFailed
from phys_ml.stages.groundwater import pipeline, simulate
from phys_ml.stages.groundwater.mf6 import failed_outside_model
from tests.groundwater.stand_in_mf6 import stand_in_mf6

PHYS_ML = str(Path(sys.executable).with_name("phys-ml"))


def test_which_failures_lie_outside_the_model():
    for reason in ("exit code 1", "exit code -9", "timed out after 120 s", "could not start mf6: [Errno 2]"):
        assert failed_outside_model(reason)
    for reason in ("failed to converge", "no normal termination", "non-finite heads", "unreadable heads: x", ""):
        assert not failed_outside_model(reason)


def test_chunks_of_a_broken_mf6_are_rerun_after_the_fix(smoke_params, tmp_path, mf6_exe):
    broken = stand_in_mf6(tmp_path / "mf6-broken", "exit 1", mf6_exe)  # crashes on every run
    params = copy.deepcopy(smoke_params)
    params["groundwater"]["model"]["mf6"] = str(broken)
    params["groundwater"]["model"]["max_consecutive_failures"] = 1000  # run them all (fail-fast: test_mf6_processes)
    ctx = StageContext(task="groundwater", params=params, data_dir=tmp_path / "data")
    with pytest.raises(RunFailed, match=r"30 of 30 simulations failed outside the model .*which-mf6.* rerun"):
        pipeline.generate(ctx)
    assert len(list((ctx.task_dir / "chunks").glob("chunk-*.parquet"))) == 3
    assert not (ctx.task_dir / "simulations.parquet").exists()

    params["groundwater"]["model"]["mf6"] = str(mf6_exe)
    pipeline.generate(StageContext(task="groundwater", params=params, data_dir=tmp_path / "data"))
    timing = artifacts.read_json(ctx.data_dir / "timings" / "groundwater-generate.json")
    assert timing["n_chunks_resumed"] == 0 and timing["n_run_this_time"] == 30
    summary = artifacts.read_json(ctx.task_dir / "generate.json")
    assert summary["n_ok"] + summary["n_failed"] == 30 and summary["n_ok"] > 24
    assert not any(failed_outside_model(r) for r in summary["failure_reasons"])


def test_stale_model_folders_of_dead_processes_are_removed(tmp_path, mf6_exe, monkeypatch):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{simulate.TMP_PREFIX}{dead.pid}-abc"
    alive = tmp_path / f"{simulate.TMP_PREFIX}{os.getppid()}-def"  # a live process (our parent)
    foreign = tmp_path / f"{simulate.TMP_PREFIX}old-style"
    for folder in (stale, alive, foreign):
        (folder / "w00").mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with simulate.ModelPool(mf6_exe, 1) as pool:
        assert pool.root.parent == tmp_path and pool.root.name.startswith(f"{simulate.TMP_PREFIX}{os.getpid()}-")
        assert not stale.exists() and alive.exists() and foreign.exists()
    assert not pool.root.exists()


def test_a_wrong_schema_parquet_exits_2_with_one_line(smoke_params, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(json.loads(json.dumps(smoke_params))))
    task_dir = tmp_path / "data" / "groundwater"
    task_dir.mkdir(parents=True)
    pq.write_table(pa.table({"sim_id": [0, 1], "lnk": [1.0, 2.0]}), task_dir / "simulations.parquet")
    pq.write_table(pa.table({"name": ["test1"]}), task_dir / "references.parquet")
    for cmd in (["train", "groundwater", "flow"], ["groundwater", "ies"]):
        result = subprocess.run([PHYS_ML, *cmd, "-p", str(params), "--data-dir", str(tmp_path / "data")],
                                capture_output=True, text=True, cwd=tmp_path, timeout=300)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, result.stderr
        assert len(lines) == 1 and "lacks the column(s)" in lines[0] and ".parquet" in lines[0], lines
