"""The particles pipeline end to end on the smoke profile, in a temporary data folder."""

import json

import numpy as np
import pytest

from phys_ml.stages.common.artifacts import read_parquet
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.particles import pipeline


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
    data, _ = pipeline.load_task2(path)
    gen = ctx.params["particles"]["generate"]["task2"]
    assert data["train"]["targets"].shape == (gen["n_train"], 3, 5, 2)
    assert set(np.unique(data["test"]["charges"])) <= {-1.0, 1.0}


@pytest.mark.slow
def test_smoke_pipeline_writes_metrics_and_figures(ctx):
    pipeline.generate(ctx, None)
    pipeline.train(ctx, None)
    pipeline.evaluate(ctx, None)
    metrics = json.loads((ctx.task_dir / "metrics.json").read_text())
    assert set(metrics) == {"task2", "task31", "task32"}
    assert metrics["task31"]["least_squares"]["mse"] < metrics["task31"]["train_mean"]["mse"]
    assert "physics_rollout" in metrics["task32"]["beats_linear"]
    for name in ("task2_loss_curves", "task2_trajectories", "task31_charges", "task32_best_worst"):
        assert (ctx.task_dir / "figures" / f"{name}.png").is_file()
    section = pipeline.report_section(ctx.data_dir)
    assert section is not None and "Task 3.2" in section.markdown and section.figures


def test_train_before_generate_is_a_user_error(ctx):
    with pytest.raises(UserError, match="task31.parquet not found"):
        pipeline.train(ctx, "task31")


def test_report_section_is_none_before_a_run(tmp_path):
    assert pipeline.report_section(tmp_path) is None
