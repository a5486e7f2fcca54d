"""The generate / ies / evaluate stages on the smoke profile, resume after interruption, bad params."""

import copy

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import Interrupted, UserError
from phys_ml.stages.groundwater import pipeline, report
from phys_ml.stages.groundwater.store import REFERENCES
from phys_ml.stages.groundwater.simulate import ModelPool

from .test_report import check_report_tables


def _ctx(params, tmp_path):
    return StageContext(task="groundwater", params=params, data_dir=tmp_path / "data")


def test_bad_params_fail_before_work(smoke_params, tmp_path):
    p = copy.deepcopy(smoke_params)
    p["groundwater"]["generate"]["n_train"] = 10_000
    with pytest.raises(UserError, match="n_train"):
        pipeline.generate(_ctx(p, tmp_path))
    p = copy.deepcopy(smoke_params)
    p["groundwater"]["generate"]["prior"]["variance"] = -1.0
    with pytest.raises(UserError, match="groundwater.generate.prior.variance must be > 0"):
        pipeline.generate(_ctx(p, tmp_path))
    p = copy.deepcopy(smoke_params)
    p["groundwater"]["model"]["mf6"] = str(tmp_path / "no-mf6")
    with pytest.raises(UserError, match="mf6 not found"):
        pipeline.generate(_ctx(p, tmp_path))


@pytest.mark.slow
def test_interrupted_generation_resumes_without_duplicates(smoke_params, tmp_path, mf6_exe, monkeypatch):
    ctx = _ctx(smoke_params, tmp_path)
    calls = {"n": 0}
    real_run = ModelPool.run

    def flaky_run(self, lnk):
        calls["n"] += 1
        if calls["n"] == 2:  # die while simulating the second chunk
            raise KeyboardInterrupt
        return real_run(self, lnk)

    monkeypatch.setattr(ModelPool, "run", flaky_run)
    with pytest.raises(Interrupted, match=r"rerun resumes from .*chunks \(1 of 3 chunks kept\)"):
        pipeline.generate(ctx)
    chunks = sorted((ctx.task_dir / "chunks").glob("chunk-*.parquet"))
    assert [c.name for c in chunks] == ["chunk-00000.parquet"]
    monkeypatch.setattr(ModelPool, "run", real_run)
    pipeline.generate(ctx)

    summary = artifacts.read_json(ctx.task_dir / "generate.json")
    timing = artifacts.read_json(ctx.data_dir / "timings" / "groundwater-generate.json")
    cfg = smoke_params["groundwater"]["generate"]
    assert timing["n_chunks_resumed"] == 1
    assert timing["n_run_this_time"] == cfg["n_sims"] - cfg["chunk_size"]
    table, meta = artifacts.read_parquet(ctx.task_dir / "simulations.parquet")
    ids = table.column("sim_id").to_numpy()
    assert len(np.unique(ids)) == len(ids) == summary["n_ok"] == cfg["n_sims"] - summary["n_failed"]
    assert meta["n_failed"] == summary["n_failed"]
    splits = table.column("split").to_pylist()
    assert splits.count("train") == cfg["n_train"] and splits.count("val") == cfg["n_val"]
    heads = artifacts.fixed_size_to_numpy(table.column("heads"), (13, 25))
    lnk = artifacts.fixed_size_to_numpy(table.column("lnk"))
    assert lnk.shape == (len(ids), 706) and np.isfinite(heads).all() and 30 < heads.mean() < 45
    assert not (ctx.task_dir / "chunks").exists()

    # Same params and seed give the same bytes, interrupted or not.
    first = (ctx.task_dir / "simulations.parquet").read_bytes()
    refs_first = (ctx.task_dir / "references.parquet").read_bytes()
    pipeline.generate(ctx)
    assert (ctx.task_dir / "simulations.parquet").read_bytes() == first
    assert (ctx.task_dir / "references.parquet").read_bytes() == refs_first

    # The smoother, the amortized posterior and the evaluation on top of them.
    pipeline.train(ctx, "jacobian")
    pipeline.train(ctx, "ies")
    pipeline.train(ctx, "flow")
    pipeline.train(ctx, "glm")
    pipeline.train(ctx, "refine")
    pipeline.evaluate(ctx)
    m = artifacts.read_json(ctx.task_dir / "metrics.json")
    settings = smoke_params["groundwater"]["ies"]["localization"]
    for setting in settings:
        for name in REFERENCES:
            key = f"ies_{setting}_{name}"
            assert 0 <= m[f"{key}_coverage95"] <= 1 and np.isfinite(m[f"{key}_lpp"])
            ens = pq.read_table(ctx.task_dir / "ies" / setting / f"{name}.parquet")
            assert ens.num_rows == smoke_params["groundwater"]["ies"]["n_ens"] + 1
    figs = [f for f in report.figures(ctx.data_dir, m) if not f.name.startswith("flow_")]
    assert len(figs) == 1 + 4 * len(settings)
    for fig in figs:
        assert fig.stat().st_size > 1000
    for name in REFERENCES:
        assert 0 <= m[f"flow_{name}_coverage95"] <= 1 and np.isfinite(m[f"flow_{name}_lpp"])
        assert m[f"flow_{name}_predictive_failed"] == 0
    n_test = pq.read_table(ctx.task_dir / "simulations.parquet").column("split").to_pylist().count("test")
    assert m["flow_test_n_sets"] == n_test
    section = report.report_section(ctx.data_dir)
    assert section is not None and "PEST-IES" in section.markdown and "ours: amortized flow" in section.markdown
    assert set(figs) <= set(section.figures) and any(f.name == "flow_calibration.png" for f in section.figures)
    assert all(f"localization {s}" in section.markdown for s in settings) and "prior only" in section.markdown
    n_sets = 2 + smoke_params["groundwater"]["glm"]["n_test"]
    assert m["cmp_glm_n_sets"] == m["cmp_refine_n_sets"] == n_sets and 0 <= m["cmp_refine_n_fallbacks"] <= n_sets
    assert "ours: linear analysis" in section.markdown and "ours: flow + refinement" in section.markdown
    assert section.markdown.index("Every method on the same data sets") < section.markdown.index("Table 1")
    check_report_tables(section.markdown, m, artifacts.read_json(ctx.task_dir / "flow_train.json"))


@pytest.mark.slow
def test_extra_training_simulations_leave_the_validation_and_test_splits_unchanged(smoke_params, tmp_path, mf6_exe):
    """generate.extra_train: the draw continues past n_sims and those simulations join the training split; the
    first n_sims (ln K and heads, bit for bit) and their splits are those of a run without them."""
    base = _ctx(smoke_params, tmp_path / "base")
    p = copy.deepcopy(smoke_params)
    p["groundwater"]["generate"]["extra_train"] = 5
    more = _ctx(p, tmp_path / "more")
    for ctx in (base, more):
        pipeline.generate(ctx)
    first, extended = (pq.read_table(ctx.task_dir / "simulations.parquet").to_pylist() for ctx in (base, more))
    cfg = smoke_params["groundwater"]["generate"]
    assert extended[:len(first)] == first and len(extended) == len(first) + 5
    assert [r["sim_id"] for r in extended[len(first):]] == list(range(cfg["n_sims"], cfg["n_sims"] + 5))
    assert {r["split"] for r in extended[len(first):]} == {"train"}
    assert artifacts.read_json(more.task_dir / "generate.json")["n_train"] == cfg["n_train"] + 5
    _, lnk, _ = pipeline.store.read_split(more.task_dir, "train")
    assert len(lnk) == cfg["n_train"] + 5


def test_failed_runs_are_counted_and_kept_out(smoke_params, tmp_path, mf6_exe, monkeypatch):
    ctx = _ctx(smoke_params, tmp_path)
    real_run = ModelPool.run

    def failing_run(self, lnk):
        heads, ok, reasons = real_run(self, lnk)
        if len(lnk) > 2:  # the simulation chunks, not the two reference fields
            heads[1], ok[1], reasons[1] = np.nan, False, "failed to converge"
        return heads, ok, reasons

    monkeypatch.setattr(ModelPool, "run", failing_run)
    pipeline.generate(ctx)
    cfg = smoke_params["groundwater"]["generate"]
    n_chunks = -(-cfg["n_sims"] // cfg["chunk_size"])
    summary = artifacts.read_json(ctx.task_dir / "generate.json")
    assert summary["n_failed"] == n_chunks and summary["failure_reasons"] == {"failed to converge": n_chunks}
    table, meta = artifacts.read_parquet(ctx.task_dir / "simulations.parquet")
    failed = [c * cfg["chunk_size"] + 1 for c in range(n_chunks)]
    assert meta["failed_sim_ids"] == failed
    assert not set(failed) & set(table.column("sim_id").to_pylist())
    assert table.num_rows == cfg["n_sims"] - n_chunks


def test_cli_helpers(tmp_path):
    from phys_ml.cli.groundwater import app

    runner = CliRunner()
    assert runner.invoke(app, ["--help"]).exit_code == 0
    for cmd in ("install-mf6", "which-mf6", "ies"):
        assert runner.invoke(app, [cmd, "--help"]).exit_code == 0
    result = runner.invoke(app, ["which-mf6", "--mf6", str(tmp_path / "missing")])
    assert isinstance(result.exception, UserError) and "not found" in str(result.exception)
