"""`phys-ml train groundwater flow` and `phys-ml groundwater infer` on smoke-sized data: checkpoints, resume,
non-finite losses, the observation-table formats and bad input."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from phys_ml.cli.main import app
from phys_ml.stages.common import artifacts
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import RunFailed, UserError
from phys_ml.stages.common.errors import Interrupted
from phys_ml.stages.groundwater import flow_training, infer as infer_mod, pipeline, store
from phys_ml.stages.groundwater.flow import posterior_samples
from phys_ml.stages.groundwater.observations import WELL_NAMES, parse_observations

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory, mf6_exe):
    """Smoke-profile simulations (generated once for the module) and a trained flow."""
    from phys_ml.stages.common.params import deep_merge, load_params, load_yaml

    params = deep_merge(load_params(ROOT / "params.yaml"), load_yaml(ROOT / "profiles" / "smoke.yaml"))
    root = tmp_path_factory.mktemp("gwflow")
    ctx = StageContext(task="groundwater", params=params, data_dir=root / "data")
    pipeline.generate(ctx)
    pipeline.train(ctx, "jacobian")
    pipeline.train(ctx, "flow")
    return params, ctx


def _copy_ctx(smoke_data, tmp_path, params=None):
    params0, ctx0 = smoke_data
    data = tmp_path / "data" / "groundwater"
    data.mkdir(parents=True)
    for name in ("simulations.parquet", "references.parquet", "generate.json", store.JACOBIAN_FILE):
        shutil.copy(ctx0.task_dir / name, data / name)
    return StageContext(task="groundwater", params=params or params0, data_dir=tmp_path / "data")


def test_training_writes_model_history_and_no_checkpoint(smoke_data):
    params, ctx = smoke_data
    model, meta = store.load_model(ctx.task_dir / store.MODEL_FILE)
    hist, _ = artifacts.read_parquet(ctx.task_dir / "flow_history.parquet")
    assert hist.num_rows == params["groundwater"]["flow"]["train"]["epochs"]
    assert meta["best_epoch"] >= 1 and not (ctx.task_dir / store.CHECKPOINT_FILE).exists()
    summary = artifacts.read_json(ctx.task_dir / "flow_train.json")
    assert summary["epochs_run"] == hist.num_rows and summary["n_parameters"] > 0


def _interrupt_validation_at(monkeypatch, epoch: int):
    """Ctrl-C in the validation of ``epoch`` (after the checkpoint of the epoch before); returns the real
    validation function, to put back for the rerun."""
    real = flow_training.validation_loss
    calls = {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(flow_training, "validation_loss", interrupting)
    return real


def test_same_params_same_model_bytes(smoke_data, tmp_path):
    params, ctx0 = smoke_data
    ctx = _copy_ctx(smoke_data, tmp_path)
    pipeline.train(ctx, "flow")
    assert (ctx.task_dir / store.MODEL_FILE).read_bytes() == (ctx0.task_dir / store.MODEL_FILE).read_bytes()


def test_interrupted_training_resumes_to_the_same_model(smoke_data, tmp_path, monkeypatch):
    params, ctx0 = smoke_data
    ctx = _copy_ctx(smoke_data, tmp_path)
    real = _interrupt_validation_at(monkeypatch, 2)
    with pytest.raises(Interrupted, match="rerun resumes from .*flow_checkpoint.pt .epoch 1 of"):
        pipeline.train(ctx, "flow")
    ckpt = ctx.task_dir / store.CHECKPOINT_FILE
    assert ckpt.is_file() and not (ctx.task_dir / store.MODEL_FILE).exists()
    monkeypatch.setattr(flow_training, "validation_loss", real)
    pipeline.train(ctx, "flow")
    assert not ckpt.exists()
    assert (ctx.task_dir / store.MODEL_FILE).read_bytes() == (ctx0.task_dir / store.MODEL_FILE).read_bytes()


def test_linear_rest_is_fitted_and_an_interrupted_fit_resumes_to_the_same_model(smoke_data, tmp_path, monkeypatch):
    """rest: linear is fitted after the flow's epochs, while the last checkpoint still exists: Ctrl-C there leaves
    no model file, and the rerun (from that checkpoint) writes the uninterrupted run's bytes."""
    from phys_ml.stages.groundwater.flow import AmortizedPosterior

    params, ctx0 = smoke_data
    model, _ = store.load_model(ctx0.task_dir / store.MODEL_FILE)
    table = artifacts.read_json(ctx0.task_dir / "flow_train.json")["rest_selection"]
    assert [(r["rest_modes"], r["rest_given"]) for r in table] == [(0, "heads"), (4, "heads"),
                                                                   (4, "heads_and_coupled")]
    kept = min(table, key=lambda r: r["val_nll"])
    assert [r["kept"] for r in table] == [r is kept for r in table]
    assert (model.sizes.rest_modes, model.sizes.rest_given) == (kept["rest_modes"], kept["rest_given"])
    assert model.rest_linear is None if kept["rest_modes"] == 0 else bool(model.rest_linear.fitted)
    ctx = _copy_ctx(smoke_data, tmp_path)
    real = AmortizedPosterior.fit_linear_rest

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(AmortizedPosterior, "fit_linear_rest", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.train(ctx, "flow")
    assert (ctx.task_dir / store.CHECKPOINT_FILE).is_file() and not (ctx.task_dir / store.MODEL_FILE).exists()
    monkeypatch.setattr(AmortizedPosterior, "fit_linear_rest", real)
    pipeline.train(ctx, "flow")
    assert (ctx.task_dir / store.MODEL_FILE).read_bytes() == (ctx0.task_dir / store.MODEL_FILE).read_bytes()


def test_a_checkpoint_survives_a_change_of_the_rest_candidates_and_evaluation(smoke_data, tmp_path, monkeypatch):
    """The flow's epochs do not depend on the rest's candidates (fitted after them) nor on the evaluation settings:
    changing those between an interrupted run and its rerun resumes the flow, whose history is then the
    uninterrupted run's; the rest is chosen from the new candidates."""
    params0, ctx0 = smoke_data
    ctx = _copy_ctx(smoke_data, tmp_path)
    real = _interrupt_validation_at(monkeypatch, 2)
    with pytest.raises(Interrupted):
        pipeline.train(ctx, "flow")
    monkeypatch.setattr(flow_training, "validation_loss", real)
    params = copy.deepcopy(params0)
    flow = params["groundwater"]["flow"]
    flow["model"]["rest_modes"], flow["model"]["rest_given"] = [4], ["heads"]
    flow["evaluate"]["n_samples"] += 1
    resumed = StageContext(task="groundwater", params=params, data_dir=ctx.data_dir)
    with resumed.console.capture() as captured:
        pipeline.train(resumed, "flow")
    assert "resuming after epoch 1" in captured.get()
    history = [artifacts.read_parquet(c.task_dir / "flow_history.parquet")[0] for c in (resumed, ctx0)]
    assert history[0].equals(history[1])
    table = artifacts.read_json(resumed.task_dir / "flow_train.json")["rest_selection"]
    assert [(r["rest_modes"], r["rest_given"]) for r in table] == [(4, "heads")]


def test_linear_rest_beyond_the_jacobian_is_a_user_error(smoke_data, tmp_path):
    params = copy.deepcopy(smoke_data[0])
    params["groundwater"]["flow"]["model"]["rest_modes"] = 100
    ctx = _copy_ctx(smoke_data, tmp_path, params)
    with pytest.raises(UserError, match=r"groundwater.flow.model.coupling_dims \+ rest_modes \(116\) exceeds the 20 "):
        pipeline.train(ctx, "flow")
    assert not (ctx.task_dir / store.MODEL_FILE).exists()


def test_resume_after_a_checkpoint_equals_an_uninterrupted_run_with_dropout(smoke_data, tmp_path, monkeypatch):
    """Issue 21 item 3: the checkpoint holds every random state of training (the dropout draws use torch's
    global generator), so the history and the model of a resumed run are those of an uninterrupted one."""
    params, _ = smoke_data
    p = copy.deepcopy(params)
    p["groundwater"]["flow"]["train"].update(epochs=4, patience=10)
    p["groundwater"]["flow"]["model"]["dropout"] = 0.5
    whole = _copy_ctx(smoke_data, tmp_path / "whole", p)
    pipeline.train(whole, "flow")
    ctx = _copy_ctx(smoke_data, tmp_path / "resumed", p)
    real = _interrupt_validation_at(monkeypatch, 3)
    with pytest.raises(Interrupted, match="epoch 2 of 4"):
        pipeline.train(ctx, "flow")
    monkeypatch.setattr(flow_training, "validation_loss", real)
    torch.manual_seed(12345)  # a new process: torch's global generator is anywhere
    torch.rand(7)
    pipeline.train(ctx, "flow")
    for name in ("flow_history.parquet", str(store.MODEL_FILE)):
        assert (ctx.task_dir / name).read_bytes() == (whole.task_dir / name).read_bytes(), name


def test_non_finite_loss_exits_1_and_keeps_the_last_good_checkpoint(smoke_data, tmp_path, monkeypatch):
    params, _ = smoke_data
    p = copy.deepcopy(params)
    p["groundwater"]["flow"]["train"]["epochs"] = 3
    ctx = _copy_ctx(smoke_data, tmp_path, p)
    real = flow_training.nll
    calls = {"epochs": 0}
    steps_per_epoch = 20 // p["groundwater"]["flow"]["train"]["batch_size"]

    def nan_in_second_epoch(model, z, heads, mask):
        loss = real(model, z, heads, mask)
        if torch.is_grad_enabled():
            calls["epochs"] += 1
            if calls["epochs"] > steps_per_epoch:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(flow_training, "nll", nan_in_second_epoch)
    with pytest.raises(RunFailed, match="last good checkpoint kept") as exc:
        pipeline.train(ctx, "flow")
    assert exc.value.exit_code == 1
    blob = artifacts.load_torch(ctx.task_dir / store.CHECKPOINT_FILE)
    assert blob["state"]["epoch"] == 1 and not (ctx.task_dir / store.MODEL_FILE).exists()


def _long_table(heads: np.ndarray, keep: np.ndarray) -> pa.Table:
    wells, periods, values = [], [], []
    for w in range(13):
        for t in range(25):
            if keep[w, t]:
                wells.append(WELL_NAMES[w])
                periods.append(t + 1)
                values.append(float(heads[w, t]))
    return pa.table({"well": wells, "period": periods, "head": values})


def test_infer_round_trip_csv_and_parquet(smoke_data, tmp_path):
    _, ctx = smoke_data
    refs = store.read_references(ctx.task_dir)
    heads = refs["test1"]["heads_obs"].reshape(13, 25)
    keep = np.ones((13, 25), bool)
    keep[:, 22:] = False  # 22 observed steps: absent rows
    long = _long_table(heads, keep)
    csv_path = tmp_path / "obs.csv"
    import pyarrow.csv as pcsv

    pcsv.write_csv(long, csv_path)
    wide = {"period": list(range(1, 26))}
    for w, name in enumerate(WELL_NAMES):
        wide[name] = [float(v) if keep[w, t] else None for t, v in enumerate(heads[w])]
    pq_path = tmp_path / "obs.parquet"
    pq.write_table(pa.table(wide), pq_path)
    model = ctx.task_dir / store.MODEL_FILE
    runner = CliRunner()
    outs = []
    for src in (csv_path, pq_path):
        out = tmp_path / f"post-{src.suffix[1:]}.parquet"
        result = runner.invoke(app, ["groundwater", "infer", str(src), "--samples", "30", "--out", str(out),
                                     "--model", str(model), "--seed", "3"])
        assert result.exit_code == 0, result.output
        table, meta = artifacts.read_parquet(out)
        assert table.num_rows == 30 and meta["n_observed"] == int(keep.sum())
        summary, _ = artifacts.read_parquet(infer_mod.summary_file(out))
        assert summary.num_rows == 706 and {"lnk_mean", "lnk_sd", "row", "col"} <= set(summary.column_names)
        outs.append(artifacts.fixed_size_to_numpy(table.column("lnk")))
    # The two layouts hold the same data: the same samples for the same seed.
    np.testing.assert_array_equal(outs[0], outs[1])
    # Missing values do not matter, their mask does: the same as sampling with the mask directly.
    h, m = parse_observations(long)
    loaded, _ = store.load_model(model)
    np.testing.assert_allclose(posterior_samples(loaded, h, m, 30, 3), outs[0])


@pytest.mark.parametrize("table, message", [
    (pa.table({"well": ["h99"], "period": [1], "head": [30.0]}), "unknown well"),
    (pa.table({"well": ["h01"], "period": [26], "head": [30.0]}), "outside 1..25"),
    (pa.table({"well": ["h01"], "period": [1], "head": ["high"]}), "not numeric"),
    (pa.table({"well": ["h01", "h02"], "period": [1, 1], "head": [None, None]},
              schema=pa.schema([("well", pa.string()), ("period", pa.int64()), ("head", pa.float64())])),
     "every head is missing"),
    (pa.table({"well": ["h01", "h01"], "period": [3, 3], "head": [30.0, 31.0]}), "more than once"),
    (pa.table({"x": [1.0]}), "expected columns"),
])
def test_bad_observation_tables_are_user_errors_and_write_nothing(smoke_data, tmp_path, table, message):
    _, ctx = smoke_data
    import pyarrow.csv as pcsv

    src = tmp_path / "bad.csv"
    pcsv.write_csv(table, src)
    out = tmp_path / "post.parquet"
    with pytest.raises(UserError, match=message):
        infer_mod.infer(src, 10, out, ctx.task_dir / store.MODEL_FILE, seed=0)
    assert not out.exists() and not infer_mod.summary_file(out).exists()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phys_ml.cli.main", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_infer_bad_input_exits_2_with_one_line(smoke_data, tmp_path):
    _, ctx = smoke_data
    src = tmp_path / "obs.csv"
    src.write_text("well,period,head\nh01,1,thirty\n")
    out = tmp_path / "p.parquet"
    result = _cli("groundwater", "infer", str(src), "--out", str(out), "--model",
                  str(ctx.task_dir / store.MODEL_FILE))
    assert result.returncode == 2 and "not numeric" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
    src.write_text("well,period,head\nh01,1,30.0\n")
    result = _cli("groundwater", "infer", str(src), "--out", str(out), "--model", str(tmp_path / "none.pt"))
    assert result.returncode == 2 and "not found" in result.stderr


def test_ood_warning_fires_on_heads_far_outside_the_training_range_and_not_on_a_test_set(smoke_data, tmp_path):
    _, ctx = smoke_data
    _, _, heads = store.read_split(ctx.task_dir, "test")
    model = ctx.task_dir / store.MODEL_FILE
    import pyarrow.csv as pcsv

    keep = np.ones((13, 25), bool)
    for shift, expect in ((0.0, False), (25.0, True)):
        h = heads[0].copy()
        h[2, 3:6] += shift  # well h03, steps 4-6
        src = tmp_path / f"obs{shift}.csv"
        pcsv.write_csv(_long_table(h, keep), src)
        out = tmp_path / f"post{shift}.parquet"
        warnings: list[str] = []
        infer_mod.infer(src, 20, out, model, seed=0, warn=warnings.append)
        _, meta = artifacts.read_parquet(out)
        assert meta["out_of_distribution"] is expect and bool(warnings) is expect
        if expect:
            assert meta["out_of_distribution_values"] == ["h03 steps 4-6"]
            assert len(warnings) == 1 and "h03 steps 4-6" in warnings[0] and "\n" not in warnings[0]


def test_infer_refine_without_modflow_exits_2_with_one_line(smoke_data, tmp_path):
    _, ctx = smoke_data
    refs = store.read_references(ctx.task_dir)
    import pyarrow.csv as pcsv

    src = tmp_path / "obs.csv"
    pcsv.write_csv(_long_table(refs["test1"]["heads_obs"].reshape(13, 25), np.ones((13, 25), bool)), src)
    out = tmp_path / "p.parquet"
    env = {**__import__("os").environ, "PHYS_ML_MF6": str(tmp_path / "no-mf6")}
    result = subprocess.run([sys.executable, "-m", "phys_ml.cli.main", "groundwater", "infer", str(src), "--out",
                             str(out), "--model", str(ctx.task_dir / store.MODEL_FILE), "--refine"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "mf6" in result.stderr
    assert not out.exists() and not infer_mod.summary_file(out).exists()


def test_infer_refine_runs_modflow_and_records_what_it_did(smoke_data, tmp_path):
    import yaml

    params, ctx = smoke_data
    refs = store.read_references(ctx.task_dir)
    import pyarrow.csv as pcsv

    src = tmp_path / "obs.csv"
    pcsv.write_csv(_long_table(refs["test2"]["heads_obs"].reshape(13, 25), np.ones((13, 25), bool)), src)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(dict(params)))
    out = tmp_path / "p.parquet"
    result = infer_mod.infer(src, 12, out, ctx.task_dir / store.MODEL_FILE, seed=1, refine=True,
                             params_path=params_file, data_dir=ctx.data_dir)
    table, meta = artifacts.read_parquet(out)
    assert table.num_rows == 12 and isinstance(meta["refined"], bool)
    assert 0 < meta["refine_modflow_runs"] <= params["groundwater"]["glm"]["refine"]["max_runs"] + 2 * params[
        "groundwater"]["glm"]["n_draws"]
    assert result["refined"] == meta["refined"] and meta["predictive_mean_heads_rmse"] > 0
