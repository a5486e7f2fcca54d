"""The diphoton stages end to end on a tiny profile, the report's tables against metrics.json, params
validation, bad inputs, divergence, lazy TensorFlow."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from phys_ml.stages.common.artifacts import read_json, write_json
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.params import deep_merge, load_params, load_yaml
from phys_ml.stages.common.report import fmt, markdown_table_rows
from phys_ml.stages.diphoton import paper, report
from phys_ml.stages.diphoton.events import COLUMNS

ROOT = Path(__file__).resolve().parents[2]


def _params(**override):
    p = deep_merge(load_params(ROOT / "params.yaml"), load_yaml(ROOT / "profiles" / "smoke.yaml"))
    return deep_merge(p, {"diphoton": override})


def check_report_tables(data_dir: Path) -> str:
    """Every number in the report's correlation, AUC and Wasserstein tables is the metrics.json number."""
    m = read_json(data_dir / "diphoton" / "metrics.json")
    md = report.report_section(data_dir).markdown
    cols = list(paper.TABLE1_COLUMNS)
    ours = [r for r in markdown_table_rows(md, "sample |") if r[1] == "ours"]
    assert [r[0] for r in ours] == [k for k in report.ORDER if k in m["correlation"]]
    for r in ours:
        assert r[2:] == [fmt(m["correlation"][r[0]][c]) for c in cols] + [fmt(m["corr_max_abs_diff"].get(r[0]))]
    sigma = next(r for r in markdown_table_rows(md, "sample |") if r[1].startswith("±"))
    assert sigma[2:-1] == [fmt(m["corr_stderr_data"][c]) for c in cols]
    aucs = markdown_table_rows(md, "sample | AUC |")
    assert aucs and all(r[1] == fmt(m["auc"][r[0]]) for r in aucs)
    w1 = markdown_table_rows(md, "sample | pt1 |")
    assert w1 and all(r[1:] == [fmt(m["wasserstein"][r[0]][c]) for c in COLUMNS] for r in w1)
    return md


def test_report_tables_are_the_metrics(tmp_path):
    """A metrics.json built by the evaluate stage's own function, without TensorFlow."""
    from phys_ml.stages.diphoton.metrics import build_metrics

    labels = ["data", "mc", "log", "mmd"]
    corr = {k: {c: 0.1 * i + 0.01 * j for j, c in enumerate(paper.TABLE1_COLUMNS)} for i, k in enumerate(labels)}
    w1 = {k: {c: 0.001 * (i + 1) * (j + 1) for j, c in enumerate(COLUMNS)} for i, k in enumerate(labels[1:])}
    aucs = {"shuffled data": 0.501, "mc": 0.7, "log": 0.55, "mmd": 0.53}
    m = build_metrics(corr, w1, aucs, {}, ["log", "mmd"], "simulated", 300,
                      {c: 0.02 for c in paper.TABLE1_COLUMNS})
    m["setup"] = {"epochs": {"log": 3, "mmd": 1}, "n_blocks": 2, "hidden_units": [16, 16], "batch_size": 1024,
                  "batch_size_mmd": 256, "mmd_form": "standard", "mmd_sigma": 1.0, "log_pt": True,
                  "mdmm_epsilon_rel": 0.015, "cost": {"log": {"epochs": 3, "steps_per_epoch": 2, "batch": 1024}}}
    write_json(tmp_path / "diphoton" / "metrics.json", m)
    md = check_report_tables(tmp_path)
    assert "log 3 epochs × 2 steps of 1,024 events (6 gradient steps)" in md
    assert "data/timings/diphoton-train.json" in md
    assert report.report_section(tmp_path / "nothing") is None


def test_pipeline_import_does_not_load_tensorflow():
    code = ("import sys, phys_ml.stages.diphoton.pipeline, phys_ml.stages.diphoton.report as r; r.report_section; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_smoke_pipeline_end_to_end(tmp_path, monkeypatch):
    from phys_ml.stages.diphoton import pipeline, plots

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
    assert not list((task / "models").rglob("*timing*"))
    assert set(read_json(tmp_path / "timings" / "diphoton-train.json")) == {"log", "mmd", "mdmm"}
    metrics = read_json(task / "metrics.json")
    assert set(metrics["corr_stderr_data"]) >= {"pT1,pT2", "m_gg,pT2"}
    assert all(0 < v < 0.2 for v in metrics["corr_diff_noise"].values())  # 300 events: ~0.06 per pair
    log = read_json(task / "models" / "log" / "history.json")
    assert len(log["epoch"]) == 3 and log["max_epochs"] == 3  # epochs x epochs_scale, under the patience
    assert log["best_epoch"] == int(np.argmin(log["score"])) + 1  # the evaluated checkpoint: the lowest score
    assert read_json(task / "models" / "log" / "ckpt" / "best.json")["epoch"] == log["best_epoch"]
    assert metrics["convergence"]["log"]["stopped"] == "epoch cap"
    rows = metrics["transport"]
    assert set(rows["noise_free"]) == {"log", "mmd", "mdmm"} and "marginal" in rows["spearman"]
    assert rows["kl_marginals"]["marginal"] < rows["kl_marginals"]["mc"]  # the quantile map fixes the marginals
    section = report.report_section(tmp_path)
    assert section is not None and "paper" in section.markdown and section.figures
    assert "bootstrap" in section.markdown and "log 3 epochs × 2 steps" in section.markdown
    assert "Convergence rule" in section.markdown and "What moves the correlations" in section.markdown
    check_report_tables(tmp_path)

    # A failed evaluate leaves no new outputs (issue 21, item 11's class): everything is computed first and
    # metrics.json is written last.
    for name in ("metrics.json", "transformed.parquet"):
        (task / name).unlink()
    shutil.rmtree(task / "figures")

    def broken(*args, **kwargs):
        raise RuntimeError("a figure failed")

    monkeypatch.setattr(plots, "all_figures", broken)
    with pytest.raises(RuntimeError, match="a figure failed"):
        pipeline.evaluate(ctx, None)
    assert not (task / "metrics.json").exists() and not (task / "transformed.parquet").exists()
    assert not (task / "figures").exists()

    # A checkpoint pointer that names no checkpoint file is bad input, named (it was a KeyError, exit 1).
    pointer = task / "models" / "log" / "ckpt" / "best.json"
    for broken_pointer in ({"epoch": 1}, {"epoch": 1, "prefix": "../../mmd/ckpt/x"}, [1]):
        pointer.write_text(json.dumps(broken_pointer))
        with pytest.raises(UserError, match="best.json does not name a checkpoint"):
            pipeline.evaluate(ctx, None)


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


@pytest.mark.parametrize(("second", "reason"), [(float("nan"), "validation loss became nan;"),
                                                 (2.0e4, "validation loss grew to 2e\\+04, over 10000 times")])
def test_divergence_fails_naming_the_run_and_keeps_last_checkpoint(tmp_path, monkeypatch, second, reason):
    from phys_ml.stages.common.divergence import Diverged
    from phys_ml.stages.diphoton import pipeline, store

    ctx = StageContext(task="diphoton", data_dir=tmp_path,
                       params=_params(train={"losses": ["log"], "epochs": 3}))
    pipeline.generate(ctx, None)
    from phys_ml.stages.diphoton import training

    calls = []

    def validation_loss(self):  # 1 after epoch 1, then NaN or 2e4 times that (the shared rule: over 1e4 times)
        calls.append(1)
        return 1.0 if len(calls) == 1 else second

    monkeypatch.setattr(training.Trainer, "validation_loss", validation_loss)
    with pytest.raises(Diverged, match=rf"^diphoton train log diverged at epoch 2: {reason}.*"
                                       r"best checkpoint \(epoch 1\)") as info:
        pipeline.train(ctx, None)
    assert info.value.exit_code == 1
    ckpt = tmp_path / "diphoton" / "models" / "log" / "ckpt"
    assert read_json(ckpt / "best.json")["epoch"] == 1
    assert list(ckpt.glob("epoch-1.index"))
    monkeypatch.undo()
    store.load_flow(tmp_path / "diphoton", "log", pipeline.parse_config(
        pipeline.TrainConfig, ctx.params, "diphoton.train"))  # the kept checkpoint loads
