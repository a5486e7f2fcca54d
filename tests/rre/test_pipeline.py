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
            ("soil", "soil"), ("forward", "physics")} <= settings
    seeds = params["rre"]["train"]["studies"]["seeds"]
    assert sorted(r["init"] for r in runs if (r["setting"], r["kind"]) == ("sparse-3x2", "pdl")) == list(range(seeds))
    assert any(r["override"] and r["residual_weight"] == 0.25 for r in runs)
    metrics = json.loads((a.task_dir / "metrics.json").read_text())
    assert "patch.adam-full.re_psi" in metrics and "patch.interpolation.re_psi" in metrics
    assert "patch.forward.re_psi" in metrics and metrics["patch.solver_l_rre_norm"] > 0
    assert not re.search("second|ms_per", json.dumps(metrics))
    section = report.report_section(a.data_dir)
    md = section.markdown
    assert len(section.figures) == 6 and "re_psi nan" not in md and "nan" not in md
    assert "MRST-like comparison: – (the solution itself uses the MRST-like stepping" in md
    # the report's numbers are the records' numbers
    t1 = [r for r in runs if r["setting"] == "table1" and r["kind"] == "run"]
    rows = markdown_table_rows(md, "optimizer | network")
    assert len(rows) == len(t1) + 1
    for r in t1:
        row = next(x for x in rows if x[:4] == [report.run_label(r), r["architecture"], r["batch"],
                                                fmt(r["residual_weight"])])
        assert row[4] == fmt(r["re_psi"]) and row[7] == fmt(r["re_theta"])
        assert row[10] == fmt(r["final_l_data"]) and row[11] == fmt(r["final_l_rre"])
        assert row[12] == fmt(r["l_rre_norm"]) and row[13] == fmt(r["iterations_run"])
    base = next(r for r in runs if r["setting"] == "table1" and r["kind"] == "interpolation")
    assert rows[-1][0] == "sensor interpolation" and rows[-1][4] == fmt(base["re_psi"])
    # the forward check: one network per candidate output range, the lowest final L_RRE kept and in the metrics
    fws = [r for r in runs if r["setting"] == "forward"]
    fwd = params["rre"]["train"]["forward"]
    assert [(r["init"], r["output_range"]) for r in fws if r["case"] == "patch"] == \
        [(i, o) for i in range(fwd["inits"]) for o in fwd["output_range"]] and fwd["inits"] > 1
    for case in {r["case"] for r in fws}:
        cand = [r for r in fws if r["case"] == case]
        kept = [r for r in cand if r["kept"]]
        assert len(kept) == 1 and kept[0]["final_l_rre"] == min(r["final_l_rre"] for r in cand)
        assert metrics[f"{case}.forward.re_psi"] == kept[0]["re_psi"]
    fw_rows = markdown_table_rows(md, "case | network | output range")
    assert len(fw_rows) == len(fws)
    for row, fw in zip(fw_rows, fws):
        assert row[2:5] == [fw["output_range"], fmt(fw["init"]), "yes" if fw["kept"] else "no"]
        assert row[8] == fmt(fw["re_psi"]) and row[7].startswith(
            f"{fw['lbfgs_iterations']} / {fw['lbfgs_evaluations']} / {fw['lbfgs_moved']}") and fw["lbfgs_moved"] > 0
        # the error split between the two halves of the output times: the whole lies between its halves
        assert row[10:12] == [fmt(fw["re_psi_early"]), fmt(fw["re_psi_late"])]
        assert min(fw["re_psi_early"], fw["re_psi_late"]) <= fw["re_psi"] <= max(fw["re_psi_early"], fw["re_psi_late"])
    assert all(r["re_psi_early"] is None for r in runs if r["setting"] != "forward")
    studies = {st["setting"]: st for st in res["studies"]}
    for row in markdown_table_rows(md, "case | setting | probes"):
        st = studies[row[1]]
        assert row[6:10] == [report.pm(st["pdl_mean"], st["pdl_sd"]), report.pm(st["data_mean"], st["data_sd"]),
                             fmt(st["interpolation"]), report.pm(st["diff_mean"], st["diff_sd"])]
        pdl = [r["re_psi"] for r in runs if (r["setting"], r["kind"]) == (row[1], "pdl")]
        data = [r["re_psi"] for r in runs if (r["setting"], r["kind"]) == (row[1], "data")]
        assert st["seeds"] == seeds and abs(st["diff_mean"] - (sum(pdl) - sum(data)) / seeds) < 1e-12
    n_target = sum(st["target"] for st in res["studies"])
    assert f"met in {n_target} of {len(studies)} settings" in md
    soil_runs = [r for r in runs if r["setting"] == "soil"]
    assert "iterations run per initialization: patch: " + " / ".join(
        f"{r['iterations_run']}" + ("" if r["stalled"] else " (budget)") for r in soil_runs if r["case"] == "patch") in md
    for row in markdown_table_rows(md, "case | parameter"):
        rec = [r for r in res["soil"] if r["parameter"] == row[1]]
        assert len(rec) == seeds and row[2] == fmt(rec[0]["init"]) and row[4] == fmt(rec[0]["true"])
    chosen = {(r["setting"], r["network"]): r["w"] for r in res["selection"] if r["chosen"]}
    for row in markdown_table_rows(md, "case | setting | network"):
        assert row[4] == fmt(chosen[(row[1], row[2].split()[0])])
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
    row = next(x for x in markdown_table_rows(report.report_section(tmp_path).markdown, "optimizer | network")
               if x[0] == "gd")
    assert row[4] == "diverged" and row[7] == "diverged" and row[15] == "diverged"
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


@pytest.mark.slow
def test_an_interrupted_train_keeps_the_previous_models_and_records_together(smoke_params, tmp_path, monkeypatch):
    """Issue 21 item 4: Ctrl-C in `phys-ml train rre` used to leave the new run's model files beside the previous
    run's records (evaluate then mixed them, exit 0). The stage writes a staging folder and swaps it in at the end."""
    from phys_ml.stages.common.errors import Interrupted

    params = small(smoke_params, runs=[{"optimizer": {"name": "adam", "lr": 0.01}, "batch": "full", "iterations": 5},
                                       {"optimizer": {"name": "gd", "lr": 0.01}, "batch": "mini", "iterations": 5}])
    t = params["rre"]["train"]
    t["studies"].update(sparse=[], forecast=False)
    t["studies"]["soil"]["enabled"] = t["forward"]["enabled"] = False
    ctx = StageContext(task="rre", params=params, data_dir=tmp_path)
    pipeline.generate(ctx, None)
    pipeline.train(ctx, None)
    models = store.models_dir(ctx.task_dir)
    before = {f.relative_to(models): f.read_bytes() for f in models.rglob("*") if f.is_file()}
    assert any(str(f).endswith(".pt") for f in before)

    other = copy.deepcopy(params)
    other["rre"]["train"]["seed"] = 7  # a different run: other weights under the same file names
    saved = []
    real_save = store.save_model

    def save_then_interrupt(*args, **kwargs):
        real_save(*args, **kwargs)
        saved.append(args)
        if len(saved) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(store, "save_model", save_then_interrupt)
    with pytest.raises(Interrupted, match="is unchanged"):
        pipeline.train(StageContext(task="rre", params=other, data_dir=tmp_path), None)
    assert len(saved) == 2
    after = {f.relative_to(models): f.read_bytes() for f in models.rglob("*") if f.is_file()}
    assert after == before  # the previous run's models and records, together
    assert not store.models_dir(ctx.task_dir, staging=True).exists()
    monkeypatch.undo()
    pipeline.evaluate(ctx, None)  # evaluates the previous run, consistently


def _minimal(smoke_params):
    params = small(smoke_params, runs=[{"optimizer": {"name": "adam", "lr": 0.01}, "batch": "full", "iterations": 5}])
    t = params["rre"]["train"]
    t["studies"].update(sparse=[], forecast=False)
    t["studies"]["soil"]["enabled"] = t["forward"]["enabled"] = False
    return params


def test_non_finite_sensor_readings_exit_2_before_training(smoke_params, tmp_path, project_root):
    """Issue 21 (the same class as item 2): a NaN reading in a sensor table used to train to NaN."""
    params = _minimal(smoke_params)
    ctx = StageContext(task="rre", params=params, data_dir=tmp_path)
    pipeline.generate(ctx, None)
    path = store.generated(ctx.task_dir, "patch", "sensors")
    table = pq.read_table(path)
    psi = table.column("psi_obs").to_numpy().copy()
    psi[3] = float("nan")
    pq.write_table(table.set_column(table.schema.get_field_index("psi_obs"), "psi_obs", pa.array(psi)), path)
    with pytest.raises(UserError, match=r"patch_sensors.parquet: column psi_obs holds 1 NaN or infinite value"):
        store.read_inputs(ctx.task_dir, "patch")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(json.dumps(params))  # JSON is YAML
    out = subprocess.run([sys.executable, "-m", "phys_ml.cli.main", "train", "rre", "-p", str(params_file),
                          "--data-dir", str(tmp_path)], capture_output=True, text=True, cwd=project_root)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().count("\n") == 0 and "column psi_obs holds 1 NaN" in out.stderr
    assert not store.models_dir(ctx.task_dir).exists()


@pytest.mark.slow
def test_a_model_file_of_other_settings_is_a_named_error(smoke_params, tmp_path):
    """Issue 21 (the same class as item 2): a model file that does not fit the network is bad input naming it."""
    import torch

    params = _minimal(smoke_params)
    ctx = StageContext(task="rre", params=params, data_dir=tmp_path)
    pipeline.generate(ctx, None)
    pipeline.train(ctx, None)
    model = next(store.models_dir(ctx.task_dir).rglob("*.pt"))
    torch.save({"weight": torch.zeros(3)}, model)
    with pytest.raises(UserError, match=r"is not a network of this run's rre.train settings"):
        pipeline.evaluate(ctx, None)
    assert not (ctx.task_dir / "metrics.json").exists()
