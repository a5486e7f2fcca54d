"""The particles pipeline end to end on the smoke profile, in a temporary data folder."""

import json
import shutil

import numpy as np
import pytest

from phys_ml.stages.common.artifacts import read_parquet
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.particles import pipeline, report, store


@pytest.fixture
def ctx(smoke_params, tmp_path):
    return StageContext(task="particles", params=smoke_params, data_dir=tmp_path)


def test_generate_is_deterministic_and_round_trips(ctx, tmp_path):
    pipeline.generate(ctx, "task2")
    path = ctx.task_dir / "task2.parquet"
    first = path.read_bytes()
    pipeline.generate(ctx, "task2")
    assert path.read_bytes() == first
    table, meta = read_parquet(path)
    assert meta["task"] == "particles" and meta["stage"] == "generate-task2" and meta["seed"] == 20
    assert meta["horizons"] == [0.5, 1.0, 1.5]
    ds = store.load_task2(path)
    gen = ctx.params["particles"]["generate"]["task2"]
    assert ds.splits["train"]["targets"].shape == (gen["n_train"], 3, 5, 2)
    assert set(np.unique(ds.splits["test"]["charges"])) <= {-1.0, 1.0}


@pytest.mark.slow
def test_smoke_pipeline_writes_metrics_and_figures(smoke_run):
    metrics = json.loads((smoke_run.task_dir / "metrics.json").read_text())
    assert set(metrics) == {"task2", "task31", "task32"}
    assert metrics["task31"]["least_squares"]["mse"] < metrics["task31"]["train_mean"]["mse"]
    assert "physics_rollout" in metrics["task32"]["beats_linear"]
    for name in report.FIGURES:
        assert (smoke_run.task_dir / "figures" / name).is_file()
    section = report.report_section(smoke_run.data_dir)
    assert section is not None and "Task 3.2" in section.markdown and len(section.figures) == len(report.FIGURES)


@pytest.mark.slow
def test_a_rerun_gives_the_same_bytes(smoke_run, tmp_path):
    """Same params, same outputs: a second evaluate (and train of one sub-task) leaves every file unchanged."""
    ctx = StageContext(task="particles", params=smoke_run.params, data_dir=tmp_path)
    shutil.copytree(smoke_run.task_dir, ctx.task_dir)
    before = {p.relative_to(tmp_path): p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    pipeline.train(ctx, "task32")
    pipeline.evaluate(ctx, None)
    after = {p.relative_to(tmp_path): p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert after.keys() == before.keys()
    assert [k for k in before if before[k] != after[k]] == []


def test_train_before_generate_is_a_user_error(ctx):
    with pytest.raises(UserError, match="task31.parquet not found"):
        pipeline.train(ctx, "task31")


def test_report_section_is_none_before_a_run(tmp_path):
    assert report.report_section(tmp_path) is None
