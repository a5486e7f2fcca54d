"""The thermo pipeline on the smoke profile: artifacts, determinism, report, divergence, params validation,
schema checks, CLI."""

from __future__ import annotations

import copy
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from rich.console import Console

from phys_ml.stages.common.artifacts import read_json
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.report import fmt
from phys_ml.stages.thermo import pipeline, report, store

PHYS_ML = str(Path(sys.executable).with_name("phys-ml"))


def write_params(params: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(json.loads(json.dumps(params))))  # plain dicts (load_params gives a Params)
    return path


def run_all(params: dict, data_dir: Path, console: Console | None = None) -> Path:
    console = console or Console(stderr=True, quiet=True)
    ctx = StageContext(task="thermo", params=params, data_dir=data_dir, console=console)
    for stage in (pipeline.generate, pipeline.train, pipeline.evaluate):
        stage(ctx, None)
    return ctx.task_dir


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    from phys_ml.stages.common.params import deep_merge, load_params, load_yaml

    root = Path(__file__).resolve().parents[2]
    params = deep_merge(load_params(root / "params.yaml"), load_yaml(root / "profiles" / "smoke.yaml"))
    return params, run_all(params, tmp_path_factory.mktemp("data"))


def test_smoke_pipeline_writes_everything(smoke_run):
    params, task_dir = smoke_run
    for name in ("spirals.parquet", "curves.parquet", "metrics.json", "figures/curves.png",
                 "figures/boundaries.png", "figures/thermostat.png"):
        assert (task_dir / name).is_file(), name
    assert not (task_dir / "timing.json").exists()  # wall times stay out of the DVC outputs
    timing = read_json(task_dir.parent / "timings" / "thermo-train.json")
    assert set(timing["wall_s"]) == set(params["thermo"]["train"]["optimizers"])
    labels = list(params["thermo"]["train"]["optimizers"])
    assert sorted(p.stem for p in (task_dir / "models").glob("*.pt")) == sorted(labels)
    curves, meta = store.read_curves(task_dir)
    assert list(curves) == labels and meta["stage"] == "train"
    epochs = params["thermo"]["train"]["epochs"]
    for c in curves.values():
        assert c["epochs"][-1] == epochs and c["test_acc"].shape[1] == params["thermo"]["train"]["runs"]
    metrics = read_json(task_dir / "metrics.json")
    assert f"test_acc_e{epochs}" in metrics["adlala"] and metrics["epochs"] == epochs
    assert metrics["steps_per_epoch"] == 20  # 500 points in batches of 25
    assert "wall" not in json.dumps(metrics)
    assert metrics["adlala"]["xi_first_late"] > 0 and "kin_first_late" not in metrics["adam"]


def test_same_params_same_bytes(smoke_run, tmp_path):
    params, task_dir = smoke_run
    again = run_all(params, tmp_path)
    for name in ("spirals.parquet", "curves.parquet", "metrics.json", "models/adlala.pt", "figures/curves.png"):
        assert (again / name).read_bytes() == (task_dir / name).read_bytes(), name


def tables(markdown: str) -> list[list[list[str]]]:
    """The Markdown tables of a report section: each a list of rows (header first), each a list of cells."""
    out, current = [], None
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            current = current if current is not None else []
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif not line.startswith("|---"):
            if current:
                out.append(current)
            current = None
    return out + ([current] if current else [])


def parse_pm(text: str) -> tuple[float, float]:
    mean, sd = re.fullmatch(r"(-?[\d.]+) ± ([\d.]+)", text).groups()
    return float(mean), float(sd)


def test_report_tables_hold_the_metrics(smoke_run, tmp_path):
    params, task_dir = smoke_run
    section = report.report_section(task_dir.parent)
    metrics = read_json(task_dir / "metrics.json")
    labels, last = list(params["thermo"]["train"]["optimizers"]), metrics["epochs"]
    main, comparison, thermostat = tables(section.markdown)
    header = main[0]
    epochs = [int(h.split()[1]) for h in header[1:-1]]
    assert epochs == [5, 10] and header[-1] == f"test loss, epoch {last}"
    rows = {row[0]: row[1:] for row in main[1:]}
    assert sorted(list(rows)[: len(labels)]) == sorted(labels)  # metrics.json keeps its keys sorted
    for label in labels:
        block = metrics[label]
        for e, text in zip(epochs, rows[label]):
            mean, sd = parse_pm(text)
            assert mean == pytest.approx(100 * block[f"test_acc_e{e}"], abs=0.051)
            assert sd == pytest.approx(100 * block[f"test_acc_e{e}_sd"], abs=0.051)
        assert parse_pm(rows[label][-1]) == pytest.approx(
            (block[f"test_loss_e{last}"], block[f"test_loss_e{last}_sd"]), abs=0.00051)
    assert rows["paper, adlala (one run)"][:2] == ["–", "–"]  # the paper has no epoch 5 or 10
    ours = {row[0]: row[1] for row in comparison[1:]}
    assert parse_pm(ours["AdLaLa test accuracy (%)"])[0] == pytest.approx(
        100 * metrics["adlala"][f"test_acc_e{last}"], abs=0.051)
    gap = 100 * (metrics["adlala"][f"test_acc_e{last}"] - metrics["adam"][f"test_acc_e{last}"])
    assert parse_pm(ours["AdLaLa − Adam (points, ± standard error)"])[0] == pytest.approx(gap, abs=0.051)
    for row in thermostat[1:]:
        block = metrics[row[0]]
        assert row[1:] == [fmt(block[k], 3) if k in block else "–"
                           for k in ("kin_first_late", "kin_rest_late", "xi_first_late")]
    assert f"{last} epochs of 20 minibatch steps, {last * 20:,} gradient evaluations" in section.markdown
    assert "data/timings/thermo-train.json" in section.markdown and " s in all" not in section.markdown
    assert len(section.figures) == 3 and "Diverged" not in section.markdown
    assert report.report_section(tmp_path) is None


def test_forced_divergence_is_marked_in_metrics_and_report(smoke_run, tmp_path):
    params = copy.deepcopy(smoke_run[0])
    params["thermo"]["train"]["optimizers"] = {"adam": {"name": "adam", "lr": 0.005},
                                               "sgd": {"name": "sgd", "lr": 1.0e6}}
    out = io.StringIO()
    task_dir = run_all(params, tmp_path, Console(file=out, width=200))
    warnings = [line for line in out.getvalue().splitlines() if line.startswith("warning")]
    assert warnings == ["warning: thermo train sgd: 2 of 2 runs diverged (first at epoch 5); kept, their values "
                        "are NaN from then on and the report marks them diverged"]
    metrics = read_json(task_dir / "metrics.json")
    assert metrics["sgd"]["diverged"] == 2 and metrics["sgd"]["diverged_e10"] == 2
    assert metrics["sgd"]["test_acc_e10"] is None and metrics["adam"]["diverged"] == 0
    main = tables(report.report_section(tmp_path).markdown)[0]
    rows = {row[0]: row[1:] for row in main[1:]}
    assert rows["sgd"] == ["diverged", "diverged", "diverged"]
    assert "diverged" not in " ".join(rows["adam"])
    assert "**Diverged runs**: sgd 2 of 2" in report.report_section(tmp_path).markdown


def test_partly_diverged_cell_counts_the_runs():
    block = {"test_acc_e10": 0.6, "test_acc_e10_sd": 0.01, "diverged_e10": 1, "test_acc_e5": 0.55,
             "test_acc_e5_sd": 0.02}
    assert report.cell(block, "test_acc", 10, 3, 100) == "60.0 ± 1.0 (1 of 3 diverged)"
    assert report.cell(block, "test_acc", 5, 3, 100) == "55.0 ± 2.0"
    assert report.cell({"test_acc_e10": None, "diverged_e10": 3}, "test_acc", 10, 3, 100) == "diverged"


@pytest.mark.parametrize("patch, message", [
    ({"train": {"epochs": 0}}, "thermo.train.epochs must be >= 1, got 0"),
    ({"train": {"optimizers": {"adlala": {"name": "adlala", "h": 0}}}}, "thermo.train.optimizers.adlala.h must be > 0"),
    ({"train": {"optimizers": {"x": {"name": "nesterov"}}}}, "thermo.train.optimizers.x.name must be one of"),
    ({"train": {"runs": 2.5}}, "thermo.train.runs"),
    ({"generate": {"n_train": 501}}, "thermo.generate.n_train"),
    ({"generate": {"noise": -1}}, "thermo.generate.noise must be >= 0"),
    ({"evaluate": {"table_epochs": [0]}}, "thermo.evaluate.table_epochs"),
    ({"train": {"lr": 0.1}}, "thermo.train.lr is not a known key"),
])
def test_bad_params_are_named(smoke_run, tmp_path, patch, message):
    params = copy.deepcopy(smoke_run[0])
    for stage, values in patch.items():
        if stage == "train" and "optimizers" in values:
            params["thermo"]["train"]["optimizers"] = values["optimizers"]
        else:
            params["thermo"][stage].update(values)
    ctx = StageContext(task="thermo", params=params, data_dir=tmp_path, console=Console(quiet=True))
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        getattr(pipeline, next(iter(patch)))(ctx, None)
    assert not any(tmp_path.rglob("*.pt"))


def test_cli_bad_param_exit_2(smoke_run, tmp_path):
    params = copy.deepcopy(smoke_run[0])
    params["thermo"]["train"]["batch_size"] = 0
    path = write_params(params, tmp_path / "params.yaml")
    result = subprocess.run([PHYS_ML, "train", "thermo", "--params", str(path), "--data-dir", str(tmp_path / "d")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: thermo.train.batch_size must be >= 1, got 0"


@pytest.mark.parametrize("artifact, stage", [("spirals.parquet", "train"), ("curves.parquet", "evaluate")])
def test_wrong_schema_parquet_exits_2(smoke_run, tmp_path, artifact, stage):
    params, task_dir = smoke_run
    data = tmp_path / "d"
    (data / "thermo").mkdir(parents=True)
    for name in ("spirals.parquet", "curves.parquet"):
        (data / "thermo" / name).write_bytes((task_dir / name).read_bytes())
    pq.write_table(pa.table({"x1": [0.0], "y": [1.0]}), data / "thermo" / artifact)  # valid, wrong columns
    path = write_params(params, tmp_path / "params.yaml")
    result = subprocess.run([PHYS_ML, stage, "thermo", "--params", str(path), "--data-dir", str(data)],
                            capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert artifact in result.stderr and "lacks the column(s)" in result.stderr
