"""The diphoton stages end to end on a tiny profile, params validation, bad inputs, lazy TensorFlow."""

import subprocess
import sys
from pathlib import Path

import pytest

from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.params import deep_merge, load_params, load_yaml

ROOT = Path(__file__).resolve().parents[2]


def _params(**override):
    p = deep_merge(load_params(ROOT / "params.yaml"), load_yaml(ROOT / "profiles" / "smoke.yaml"))
    return deep_merge(p, {"diphoton": override})


def test_pipeline_import_does_not_load_tensorflow():
    code = ("import sys, phys_ml.stages.diphoton.pipeline as p; p.report_section; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_smoke_pipeline_end_to_end(tmp_path):
    from phys_ml.stages.diphoton import pipeline

    params = _params(train={"losses": ["log", "mmd", "mdmm"], "epochs": 1, "epochs_scale": {"log": 3}})
    ctx = StageContext(task="diphoton", params=params, data_dir=tmp_path)
    pipeline.generate(ctx, None)
    first = (tmp_path / "diphoton" / "mc.parquet").read_bytes()
    pipeline.generate(ctx, None)
    assert (tmp_path / "diphoton" / "mc.parquet").read_bytes() == first  # same params, same bytes
    pipeline.train(ctx, None)
    pipeline.evaluate(ctx, None)
    task = tmp_path / "diphoton"
    for name in ("data.parquet", "transformed.parquet", "metrics.json", "models/scaler.json",
                 "models/mdmm/history.json", "figures/m_gg.png", "figures/roc.png", "figures/mdmm.png"):
        assert (task / name).is_file(), name
    from phys_ml.stages.common.artifacts import read_json

    metrics = read_json(task / "metrics.json")
    assert set(metrics["corr_stderr_data"]) >= {"pT1,pT2", "m_gg,pT2"}
    assert all(0 < v < 0.2 for v in metrics["corr_diff_noise"].values())  # 300 events: ~0.06 per pair
    assert len(read_json(task / "models" / "log" / "history.json")["epoch"]) == 3  # epochs x epochs_scale
    section = pipeline.report_section(tmp_path)
    assert section is not None and "paper" in section.markdown and section.figures
    assert "bootstrap" in section.markdown
    assert pipeline.report_section(tmp_path / "nothing") is None


@pytest.mark.parametrize(("override", "message"), [
    ({"train": {"epochs": 0}}, "diphoton.train.epochs must be >= 1"),
    ({"train": {"losses": ["kl", "gan"]}}, "diphoton.train.losses"),
    ({"generate": {"n_mc": 10}}, "diphoton.generate.n_mc must be >= 100"),
])
def test_bad_params_name_the_key(tmp_path, override, message):
    from phys_ml.stages.diphoton import pipeline

    ctx = StageContext(task="diphoton", params=_params(**override), data_dir=tmp_path)
    stage = pipeline.train if "train" in override else pipeline.generate
    with pytest.raises(UserError, match=message):
        stage(ctx, None)


def test_missing_inputs_are_clear_errors(tmp_path):
    from phys_ml.stages.diphoton import pipeline

    ctx = StageContext(task="diphoton", params=_params(), data_dir=tmp_path)
    with pytest.raises(UserError, match="mc.parquet not found"):
        pipeline.train(ctx, None)
    ctx = StageContext(task="diphoton", data_dir=tmp_path, params=_params(
        generate={"source": "opendata", "opendata": {"mc_files": [str(tmp_path / "nope.root")]}}))
    with pytest.raises(UserError, match="nope.root: ROOT file not found"):
        pipeline.generate(ctx, None)


def test_nan_in_training_fails_clearly_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    from phys_ml.stages.common.artifacts import read_json
    from phys_ml.stages.common.errors import RunFailed
    from phys_ml.stages.diphoton import pipeline

    ctx = StageContext(task="diphoton", data_dir=tmp_path,
                       params=_params(train={"losses": ["log"], "epochs": 3}))
    pipeline.generate(ctx, None)
    from phys_ml.stages.diphoton import training

    calls = []

    def validation_loss(self):  # finite after epoch 1, NaN after epoch 2
        calls.append(1)
        return 1.0 if len(calls) == 1 else float("nan")

    monkeypatch.setattr(training.Trainer, "validation_loss", validation_loss)
    with pytest.raises(RunFailed, match=r"NaN/inf at epoch 2.*last good checkpoint \(epoch 1\)"):
        pipeline.train(ctx, None)
    ckpt = tmp_path / "diphoton" / "models" / "log" / "ckpt"
    assert read_json(ckpt / "latest.json")["epoch"] == 1
    assert list(ckpt.glob("epoch-1.index"))
    monkeypatch.undo()
    pipeline.load_flow(tmp_path / "diphoton", "log", pipeline.parse_config(
        pipeline.TrainConfig, ctx.params, "diphoton.train"))  # the kept checkpoint loads
