"""How particles stages fail, through the CLI entry point: one line on stderr and the right exit code."""

import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from phys_ml.cli.main import run
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.particles import pipeline


def _yaml(params) -> str:
    return yaml.safe_dump(json.loads(json.dumps(params)))  # a plain dict (params load as a dict subclass)


def _cli(monkeypatch, capsys, *args) -> tuple[int, list[str]]:
    capsys.readouterr()  # only what the command prints
    monkeypatch.setattr(sys, "argv", ["phys-ml", *args])
    with pytest.raises(SystemExit) as info:
        run()
    lines = capsys.readouterr().err.strip().splitlines()
    return info.value.code, lines


@pytest.fixture
def params_file(smoke_params, tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(_yaml(smoke_params))
    return path


@pytest.mark.parametrize(("sub", "table", "complaint"), [
    ("task2", pa.table({"split": ["train"], "pos0": [1.0]}), "lacks the column(s) vel0, charges"),
    ("task31", pa.table({"split": ["train"], "length": pa.array([3], pa.int32())}), "lacks the column(s) cont_length"),
    ("task32", pa.table({"split": ["train"], "length": pa.array([3], pa.int32()),
                         "cont_length": pa.array([1], pa.int32()), "given": [[0.0]], "continuation": [[0.0]],
                         "q1": ["a"], "q2": [0.0], "q3": [0.0]}), "column q1 has type string, expected double"),
])
def test_a_wrong_schema_parquet_exits_2_with_one_line(monkeypatch, capsys, tmp_path, params_file, sub, table,
                                                      complaint):
    path = tmp_path / "data" / "particles" / f"{sub}.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    code, lines = _cli(monkeypatch, capsys, "train", "particles", sub, "--params", str(params_file),
                       "--data-dir", str(tmp_path / "data"))
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0] and complaint in lines[0]


def test_a_wrong_schema_history_exits_2(monkeypatch, capsys, tmp_path, params_file, smoke_params):
    ctx = StageContext(task="particles", params=smoke_params, data_dir=tmp_path / "data")
    pipeline.generate(ctx, "task31")
    history = ctx.task_dir / "history_task31.parquet"
    pq.write_table(pa.table({"group": ["main"], "label": ["x"], "epoch": [1.5]}), history)
    code, lines = _cli(monkeypatch, capsys, "evaluate", "particles", "task31", "--params", str(params_file),
                       "--data-dir", str(ctx.data_dir))
    assert code == 2 and len(lines) == 1 and str(history) in lines[0] and "train_loss" in lines[0]


@pytest.mark.slow
def test_a_diverged_training_exits_1_naming_the_run_and_keeps_the_old_models(monkeypatch, capsys, tmp_path,
                                                                             smoke_params):
    import torch

    torch.set_num_threads(1)
    ctx = StageContext(task="particles", params=smoke_params, data_dir=tmp_path / "data")
    pipeline.generate(ctx, "task31")
    pipeline.train(ctx, "task31")
    kept = {p: p.read_bytes() for p in sorted(ctx.task_dir.glob("models/task31/*.pt"))}
    kept[ctx.task_dir / "history_task31.parquet"] = (ctx.task_dir / "history_task31.parquet").read_bytes()
    compare = smoke_params["particles"]["train"]["task31"]["compare"]
    compare["optimizers"][0] = {"name": "sgd", "lr": 1.0e6}
    compare["epochs"] = 4
    path = tmp_path / "diverging.yaml"
    path.write_text(_yaml(smoke_params))
    code, lines = _cli(monkeypatch, capsys, "train", "particles", "task31", "--params", str(path),
                       "--data-dir", str(ctx.data_dir))
    assert code == 1
    assert lines[-1].startswith("error: task31 compare sgd lr=1e+06 diverged: ")
    assert "earlier outputs were kept" in lines[-1]
    assert {p: p.read_bytes() for p in kept} == kept  # the lstm run before it finished, yet nothing was written
