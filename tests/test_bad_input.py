"""Bad input is exit 2 with one line naming it, nothing written (issue 21): Parquet inputs with wrong list
lengths, labels or values, foreign or truncated model files, output paths that cannot be written, ambiguous
observation files, the report's HTML, and a failed evaluate that must not leave new outputs."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from rich.console import Console

from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.params import deep_merge, load_params, load_yaml

ROOT = Path(__file__).resolve().parents[1]
PHYS_ML = str(Path(sys.executable).with_name("phys-ml"))


def run_cli(*args, cwd):
    return subprocess.run([PHYS_ML, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


def one_line(result, code: int = 2) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unexpected" not in lines[0], result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[dict, Path]:
    params = deep_merge(load_params(ROOT / "params.yaml"), load_yaml(ROOT / "profiles" / "smoke.yaml"))
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(params))))
    return params, path


# ---------------------------------------------------------------- groundwater inputs
def _simulations(task_dir: Path, lnk_width: int = 706, split=("train", "val", "test"), varying: bool = False):
    n = 6
    rng = np.random.default_rng(0)
    if varying:
        lnk = pa.array([rng.normal(size=706 - (i % 2)) for i in range(n)])
    else:
        lnk = pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * lnk_width)), lnk_width)
    heads = pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * 325)), 325)
    labels = [split[i % len(split)] for i in range(n)]
    task_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"sim_id": pa.array(range(n), pa.int32()), "split": labels, "lnk": lnk,
                             "heads": heads}), task_dir / "simulations.parquet")


@pytest.mark.parametrize("kind, words", [
    ("short", "column lnk holds lists of 705 values, expected 706"),
    ("varying", "column lnk holds lists of varying length"),
    ("labels", "column split holds 'training', expected one of train, val, test"),
])
def test_simulations_with_wrong_lists_or_labels_exit_2(smoke, tmp_path, kind, words):
    task_dir = tmp_path / "data" / "groundwater"
    _simulations(task_dir, lnk_width=705 if kind == "short" else 706, varying=kind == "varying",
                 split=("training", "val", "test") if kind == "labels" else ("train", "val", "test"))
    line = one_line(run_cli("train", "groundwater", "flow", "-p", smoke[1], "--data-dir", tmp_path / "data",
                            cwd=tmp_path))
    assert str(task_dir / "simulations.parquet") in line and words in line, line
    assert sorted(p.name for p in task_dir.iterdir()) == ["simulations.parquet"]


def _obs(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "obs.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, words", [
    ("period,h01,H01\n1,30.0,31.0\n", "columns 'h01' and 'H01' are the same column"),
    ("period,h01,1\n1,30.0,31.0\n", "columns 'h01' and '1' both name well h01"),
    ("period,h01,r03c16\n1,30.0,31.0\n", "both name well"),
])
def test_observations_naming_a_well_twice_exit_2(tmp_path, text, words):
    obs = _obs(tmp_path, text)
    line = one_line(run_cli("groundwater", "infer", obs, "--out", tmp_path / "post.parquet", cwd=tmp_path))
    assert words in line and str(obs) in line
    assert not list(tmp_path.glob("*.parquet"))


def test_boolean_heads_are_named(tmp_path):
    obs = tmp_path / "obs.parquet"
    pq.write_table(pa.table({"period": [1, 2], "h01": [True, False]}), obs)
    line = one_line(run_cli("groundwater", "infer", obs, "--out", tmp_path / "post.parquet", cwd=tmp_path))
    assert "column 'h01' is not numeric (it holds true/false values)" in line


@pytest.mark.parametrize("out, words", [
    ("obs.parquet", "would overwrite the observations"),   # --out is the input file
    ("obs", "would overwrite the observations"),           # its summary file would be
    ("folder.parquet", "is a folder"),
    ("afile/post.parquet", "afile is a file, not a folder"),
    ("model.parquet", "would overwrite --model"),
])
def test_infer_refuses_outputs_that_overwrite_inputs_or_cannot_be_written(tmp_path, out, words):
    obs = tmp_path / "obs.parquet"
    pq.write_table(pa.table({"period": [1], "h01": [30.0]}), obs)
    shutil.copy(obs, tmp_path / "obs-summary.parquet")
    (tmp_path / "folder.parquet").mkdir()
    (tmp_path / "afile").write_text("x")
    model = tmp_path / "model.parquet"
    model.write_bytes(b"not a model")
    target = obs if out == "obs.parquet" else tmp_path / (out + ".parquet" if out == "obs" else out)
    if out == "obs":  # obs.parquet -> obs-summary.parquet: the input of this case is the summary's name
        obs, target = tmp_path / "obs-summary.parquet", tmp_path / "obs.parquet"
    before = obs.read_bytes()
    line = one_line(run_cli("groundwater", "infer", obs, "--out", target, "--model", model, cwd=tmp_path))
    assert words in line, line
    assert obs.read_bytes() == before


def _torch_file(path: Path, truncate: bool) -> Path:
    buffer = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(3)}, "sizes": {}}, buffer)
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2] if truncate else data)
    return path


@pytest.mark.parametrize("kind, words", [
    ("truncated", "is not a readable torch file"),
    ("text", "is not a readable torch file"),
    ("foreign", "is not a groundwater flow model"),
    ("folder", "is a folder, not a file"),
])
def test_a_model_that_is_not_a_flow_is_exit_2(tmp_path, kind, words):
    obs = _obs(tmp_path, "period,h01\n1,30.0\n")
    model = tmp_path / "flow.pt"
    if kind == "text":
        model.write_text("period,h01\n")
    elif kind == "folder":
        model.mkdir()
    else:
        _torch_file(model, truncate=kind == "truncated")
    line = one_line(run_cli("groundwater", "infer", obs, "--out", tmp_path / "post.parquet", "--model", model,
                            cwd=tmp_path))
    assert str(model) in line and words in line, line
    assert not list(tmp_path.glob("post*"))


# ---------------------------------------------------------------- thermo: params, inputs, and a failed evaluate
@pytest.fixture(scope="module")
def thermo_run(smoke, tmp_path_factory) -> Path:
    from phys_ml.stages.thermo import pipeline

    ctx = StageContext(task="thermo", params=smoke[0], data_dir=tmp_path_factory.mktemp("thermo") / "data",
                       console=Console(stderr=True, quiet=True))
    pipeline.generate(ctx, None)
    pipeline.train(ctx, None)
    return ctx.data_dir


def _copy(data_dir: Path, tmp_path: Path) -> Path:
    shutil.copytree(data_dir, tmp_path / "data")
    return tmp_path / "data"


def test_a_failed_evaluate_leaves_no_new_outputs(smoke, thermo_run, tmp_path):
    data = _copy(thermo_run, tmp_path)
    model = next((data / "thermo" / "models").glob("*.pt"))
    model.write_bytes(model.read_bytes()[:100])
    line = one_line(run_cli("evaluate", "thermo", "-p", smoke[1], "--data-dir", data, cwd=tmp_path))
    assert str(model) in line
    assert not (data / "thermo" / "metrics.json").exists() and not (data / "thermo" / "figures").exists()


def test_table_epochs_beyond_training_are_named(smoke, thermo_run, tmp_path):
    data = _copy(thermo_run, tmp_path)
    params = json.loads(json.dumps(smoke[0]))
    params["thermo"]["evaluate"]["table_epochs"] = [5, 10, 20]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    line = one_line(run_cli("evaluate", "thermo", "-p", path, "--data-dir", data, cwd=tmp_path))
    assert "thermo.evaluate.table_epochs" in line and "[20]" in line
    assert not (data / "thermo" / "metrics.json").exists()


@pytest.mark.parametrize("kind, words", [
    ("empty", "has no train points"),
    ("nan", "column x1 / x2 holds"),
    ("label", "column label holds 2, expected one of 0, 1"),
    ("split", "column split holds 'validation'"),
])
def test_bad_spirals_are_exit_2_before_training(smoke, thermo_run, tmp_path, kind, words):
    data = tmp_path / "data"
    (data / "thermo").mkdir(parents=True)
    table = pq.read_table(thermo_run / "thermo" / "spirals.parquet")
    if kind == "empty":
        table = table.slice(0, 0)
    elif kind == "nan":
        table = table.set_column(0, "x1", pa.array(np.full(table.num_rows, np.nan, np.float32)))
    elif kind == "label":
        table = table.set_column(2, "label", pa.array(np.full(table.num_rows, 2, np.int8)))
    else:
        table = table.set_column(3, "split", pa.array(["validation"] * table.num_rows))
    pq.write_table(table, data / "thermo" / "spirals.parquet")
    line = one_line(run_cli("train", "thermo", "-p", smoke[1], "--data-dir", data, cwd=tmp_path))
    assert words in line, line
    assert sorted(p.name for p in (data / "thermo").iterdir()) == ["spirals.parquet"]


# ---------------------------------------------------------------- the report's HTML
def test_report_html_escapes_params_text_and_inlines_only_pipeline_figures(smoke, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not for the report")
    params = json.loads(json.dumps(smoke[0]))
    params["report"]["title"] = (f'x <img src="{secret}"> <script>alert(1)</script> ![s]({secret}) '
                                 "[l](javascript:alert(1))")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    result = run_cli("report", "-p", path, "--data-dir", tmp_path / "data", "--out", tmp_path / "rep",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "rep" / "report.html").read_text()
    assert base64.b64encode(secret.read_bytes()).decode() not in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "javascript:" not in html.split("<body>")[1].replace("(javascript:alert(1))", "")
    assert "<img" not in html


# ---------------------------------------------------------------- particles inputs (the same class elsewhere)
@pytest.mark.parametrize("kind, words", [("width", "is not a particles task2 data set"),
                                         ("split", "column split holds 'validation'")])
def test_particles_data_with_wrong_list_sizes_or_labels_exit_2(smoke, tmp_path, kind, words):
    from phys_ml.stages.common import artifacts

    n, rng = 4, np.random.default_rng(0)
    wide = 9 if kind == "width" else 10  # 5 particles x (x, y) = 10
    lists = {c: pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * w)), w)
             for c, w in (("pos0", wide), ("vel0", 10), ("charges", 5), ("pos_h1", 10))}
    split = ["validation" if kind == "split" else "train"] * n
    path = tmp_path / "data" / "particles" / "task2.parquet"
    artifacts.write_parquet(pa.table({"split": split, **lists}), path, task="particles", stage="generate", seed=0,
                            params=smoke[0]["particles"]["generate"]["task2"], extra={"horizons": [0.5]})
    line = one_line(run_cli("train", "particles", "task2", "-p", smoke[1], "--data-dir", tmp_path / "data",
                            cwd=tmp_path))
    assert str(path) in line and words in line, line
