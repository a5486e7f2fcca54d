"""The rre pipeline on a reduced smoke configuration: artifacts, determinism, records, report numbers, divergence,
schema checks, bad params."""

import copy
import json
import re
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.report import fmt, markdown_table_rows
from phys_ml.stages.rre import case_training, pipeline, report, store


def small(params, runs=None):
    p = copy.deepcopy(params)
    g, t = p["rre"]["generate"], p["rre"]["train"]
    g["cases"] = ["patch"]
    g["grid"] = {"nx": 6, "ny": 6, "nz": 10, "lx": 25.0, "ly": 25.0, "lz": 5.0}
    t["cases"] = ["patch"]
    t["runs"] = runs or [
        {"optimizer": {"name": "adam", "lr": 0.01}, "batch": "full", "iterations": 5},
        {"optimizer": {"name": "gd", "lr": 0.01}, "batch": "mini", "iterations": 5},
        {"optimizer": {"name": "adam", "lr": 0.01}, "batch": "full", "iterations": 5, "residual_weight": 0.25},
        {"optimizer": {"name": "adam", "lr": 0.01}, "batch": "full", "iterations": 5, "residual_weight": 0.0},
    ]
    t["selection"].update(weights=[0.0, 0.1], iterations=3, collocation=100)
    t["studies"].update(iterations=3, sparse=[{"locations": 3, "layers": 2}])
    t["studies"]["soil"]["iterations"] = 3
    return p


@pytest.mark.slow
def test_smoke_pipeline_runs_and_is_deterministic(smoke_params, tmp_path):
    params = small(smoke_params)
    a = StageContext(task="rre", params=params, data_dir=tmp_path / "a")
    b = StageContext(task="rre", params=params, data_dir=tmp_path / "b")
    for ctx in (a, b):
        pipeline.generate(ctx, None)
    for name in ("patch_solution", "patch_sensors", "patch_collocation", "patch_boundary"):
        pa_, pb_ = (c.task_dir / "generated" / f"{name}.parquet" for c in (a, b))
        assert pa_.read_bytes() == pb_.read_bytes()
    assert "seconds" not in (a.task_dir / "solver.json").read_text()  # wall times go to data/timings/
    assert (a.data_dir / "timings" / "rre-generate.json").is_file()
    pipeline.train(a, None)
    pipeline.evaluate(a, None)
    assert (a.data_dir / "timings" / "rre-train.json").is_file()
    res = store.read_all(store.result_paths(a.task_dir))
    runs = res["runs"]
    settings = {(r["setting"], r["kind"]) for r in runs}
    assert {("table1", "run"), ("table1", "interpolation"), ("sparse-3x2", "pdl"), ("sparse-3x2", "data"),
            ("sparse-3x2", "interpolation"), ("forecast", "pdl"), ("forecast", "interpolation"),
            ("soil", "soil")} <= settings
    assert any(r["override"] and r["residual_weight"] == 0.25 for r in runs)
    metrics = json.loads((a.task_dir / "metrics.json").read_text())
    assert "patch.adam-full.re_psi" in metrics and "patch.interpolation.re_psi" in metrics
    assert not re.search("second|ms_per", json.dumps(metrics))
    section = report.report_section(a.data_dir)
    md = section.markdown
    assert len(section.figures) == 6 and "re_psi nan" not in md and "nan" not in md
    assert "MRST-like comparison: – (the solution itself uses the MRST-like stepping" in md
    # the report's numbers are the records' numbers
    t1 = [r for r in runs if r["setting"] == "table1" and r["kind"] == "run"]
    rows = markdown_table_rows(md, "optimizer | batch")
    assert len(rows) == len(t1) + 1
    for r in t1:
        label = r["optimizer"] + (" data-only" if r["override"] and r["residual_weight"] == 0 else "")
        row = next(x for x in rows if x[:3] == [label, r["batch"], fmt(r["residual_weight"])])
        assert row[3] == fmt(r["re_psi"]) and row[6] == fmt(r["re_theta"])
        assert row[9] == fmt(r["final_l_data"]) and row[10] == fmt(r["final_l_rre"])
        assert row[11] == fmt(r["iterations_run"])
    base = next(r for r in runs if r["setting"] == "table1" and r["kind"] == "interpolation")
    assert rows[-1][0] == "sensor interpolation" and rows[-1][3] == fmt(base["re_psi"])
    study = markdown_table_rows(md, "case | setting | probes")
    for row in study:
        k = {r["kind"]: r for r in runs if r["setting"] == row[1]}
        assert row[5:8] == [fmt(k["pdl"]["re_psi"]), fmt(k["data"]["re_psi"]), fmt(k["interpolation"]["re_psi"])]
    by = {(r["setting"], r["kind"]): r["re_psi"] for r in runs if r["setting"] in {row[1] for row in study}}
    n_data = sum(by[(s, "pdl")] < by[(s, "data")] for s in {row[1] for row in study})
    n_interp = sum(by[(s, "pdl")] < by[(s, "interpolation")] for s in {row[1] for row in study})
    assert f"below the data-only network's in {n_data} of {len(study)} settings" in md
    assert f"below interpolation's in {n_interp}" in md
    for row, rec in zip(markdown_table_rows(md, "case | parameter"), res["soil"]):
        assert row[1:] == [rec["parameter"], fmt(rec["init"]), fmt(rec["learned"]), fmt(rec["true"]),
                           fmt(rec["rel_error"])]
    chosen = {(r["setting"]): r["w"] for r in res["selection"] if r["chosen"]}
    for row in markdown_table_rows(md, "case | setting | held-out"):
        assert row[3] == fmt(chosen[row[1]])
    assert report.report_section(tmp_path / "none") is None


@pytest.mark.slow
def test_a_diverging_run_is_kept_and_marked_diverged(smoke_params, tmp_path, capsys):
    runs = [{"optimizer": {"name": "gd", "lr": 1e6}, "batch": "full", "iterations": 5},
            {"optimizer": {"name": "adam", "lr": 0.01}, "batch": "full", "iterations": 5}]
    params = small(smoke_params, runs)
    params["rre"]["train"]["studies"].update(sparse=[], forecast=False)
    params["rre"]["train"]["studies"]["soil"]["enabled"] = False
    ctx = StageContext(task="rre", params=params, data_dir=tmp_path)
    pipeline.generate(ctx, None)
    pipeline.train(ctx, None)
    pipeline.evaluate(ctx, None)
    rec = next(r for r in store.read_all(store.result_paths(ctx.task_dir))["runs"] if r["optimizer"] == "gd")
    assert rec["diverged"] and rec["re_psi"] is None and rec["model"] is None and rec["iterations_run"] <= 5
    assert "rre patch table1 run gd-full diverged" in capsys.readouterr().err.replace("\n", " ")
    row = next(x for x in markdown_table_rows(report.report_section(tmp_path).markdown, "optimizer | batch") if x[0] == "gd")
    assert row[3] == "diverged" and row[6] == "diverged" and row[12] == "diverged"
    assert json.loads((ctx.task_dir / "metrics.json").read_text())["patch.diverged_runs"] == 1


@pytest.mark.slow
def test_cases_trained_in_worker_processes_give_the_same_records_and_model_bytes(smoke_params, tmp_path, monkeypatch):
    params = small(smoke_params, runs=[{"optimizer": {"name": "adam", "lr": 0.01}, "batch": "full", "iterations": 5},
                                       {"optimizer": {"name": "gd", "lr": 0.01}, "batch": "mini", "iterations": 5}])
    for key in ("generate", "train"):
        params["rre"][key]["cases"] = ["evaporation", "patch"]
    dirs = {}
    for n in (1, 2):
        p = copy.deepcopy(params)
        p["rre"]["train"]["processes"] = n
        if n == 2:  # spawned workers import the real module; only this process would see the patch
            monkeypatch.setattr(case_training, "fit_case", lambda *a: pytest.fail("trained in the parent process"))
        ctx = StageContext(task="rre", params=p, data_dir=tmp_path / str(n))
        pipeline.generate(ctx, None)
        pipeline.train(ctx, None)
        dirs[n] = ctx.task_dir
    models = sorted(f.relative_to(dirs[1]) for f in (dirs[1] / "models").rglob("*.pt"))
    assert any("evaporation" in str(f) for f in models) and any("patch" in str(f) for f in models)
    for f in models:
        assert (dirs[1] / f).read_bytes() == (dirs[2] / f).read_bytes(), f
    for path, _ in store.train_paths(dirs[1]).values():  # same records (the params metadata differs: processes)
        assert pq.read_table(path).equals(pq.read_table(dirs[2] / path.relative_to(dirs[1]))), path
    runs = pq.read_table(store.train_paths(dirs[2])["runs"][0]).column("case").to_pylist()
    assert runs == sorted(runs)  # evaporation's records first, as in one process
    assert json.loads((tmp_path / "2" / "timings" / "rre-train.json").read_text()).keys() >= {
        "rre evaporation table1 run adam-full", "rre patch table1 run adam-full"}


def test_a_wrong_schema_parquet_exits_2(smoke_params, tmp_path, project_root):
    bad = store.generated(tmp_path / "rre", "evaporation", "sensors")
    bad.parent.mkdir(parents=True)
    pq.write_table(pa.table({"x": [0.0], "y": [0.0]}), bad)
    with pytest.raises(UserError, match="lacks the column"):
        store.read_inputs(tmp_path / "rre", "evaporation")
    out = subprocess.run([sys.executable, "-m", "phys_ml.cli.main", "train", "rre", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, cwd=project_root)
    assert out.returncode == 2, out.stderr
    assert "evaporation_sensors.parquet lacks the column(s) z, t, psi_obs" in out.stderr


def test_bad_params_name_the_key(smoke_params, tmp_path):
    params = copy.deepcopy(smoke_params)
    params["rre"]["generate"]["n_times"] = 1
    with pytest.raises(UserError, match=r"rre.generate.n_times must be >= 2"):
        pipeline.generate(StageContext(task="rre", params=params, data_dir=tmp_path), None)
    params = copy.deepcopy(smoke_params)
    params["rre"]["train"]["runs"][0]["optimizer"]["name"] = "nope"
    with pytest.raises(UserError, match="rre.train"):
        pipeline.train(StageContext(task="rre", params=params, data_dir=tmp_path), None)
    params = copy.deepcopy(smoke_params)
    params["rre"]["generate"]["sensors"]["layers"] = [0, 99]
    with pytest.raises(UserError, match=r"rre.generate.sensors.layers must lie in 0..9"):
        pipeline.generate(StageContext(task="rre", params=params, data_dir=tmp_path), None)
    params = copy.deepcopy(smoke_params)
    params["rre"]["generate"]["soil"]["theta_r"] = 0.5
    with pytest.raises(UserError, match=r"rre.generate.soil.theta_r must be < theta_s"):
        pipeline.generate(StageContext(task="rre", params=params, data_dir=tmp_path), None)
    params = copy.deepcopy(smoke_params)
    params["rre"]["train"]["runs"].append(copy.deepcopy(params["rre"]["train"]["runs"][0]))
    with pytest.raises(UserError, match=r"rre.train.runs: each"):
        pipeline.train(StageContext(task="rre", params=params, data_dir=tmp_path), None)
    params = copy.deepcopy(smoke_params)
    del params["rre"]["train"]["hidden"]
    with pytest.raises(UserError, match=r"rre.train.hidden is required"):
        pipeline.train(StageContext(task="rre", params=params, data_dir=tmp_path), None)


def test_compile_without_a_cxx_compiler_is_a_clear_error(smoke_params, tmp_path, monkeypatch):
    from torch._inductor import cpp_builder

    def no_compiler():
        raise RuntimeError("No working C++ compiler found")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    params = copy.deepcopy(smoke_params)
    params["rre"]["train"]["compile"] = True
    with pytest.raises(UserError, match="rre.train.compile is true but torch.compile found no working C\\+\\+ compiler"):
        pipeline.train(StageContext(task="rre", params=params, data_dir=tmp_path), None)
