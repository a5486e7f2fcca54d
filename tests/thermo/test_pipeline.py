"""The thermo pipeline on the smoke profile: artifacts, determinism, report, params validation, CLI."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.thermo import pipeline

PHYS_ML = str(Path(sys.executable).with_name("phys-ml"))


def run_all(params: dict, data_dir: Path) -> Path:
    ctx = StageContext(task="thermo", params=params, data_dir=data_dir, console=Console(stderr=True, quiet=True))
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
    for name in ("spirals.parquet", "curves.parquet", "../timings/thermo-train.json", "metrics.json", "figures/curves.png",
                 "figures/boundaries.png", "figures/thermostat.png"):
        assert (task_dir / name).is_file(), name
    labels = list(params["thermo"]["train"]["optimizers"])
    assert sorted(p.stem for p in (task_dir / "models").glob("*.pt")) == sorted(labels)
    curves, meta = pipeline.read_curves(task_dir)
    assert list(curves) == labels and meta["stage"] == "train"
    epochs = params["thermo"]["train"]["epochs"]
    for c in curves.values():
        assert c["epochs"][-1] == epochs and c["test_acc"].shape[1] == params["thermo"]["train"]["runs"]
    from phys_ml.stages.common.artifacts import read_json

    metrics = read_json(task_dir / "metrics.json")
    assert f"test_acc_e{epochs}" in metrics["adlala"] and metrics["epochs"] == epochs
    assert metrics["adlala"]["xi_first_late"] > 0 and "kin_first_late" not in metrics["adam"]


def test_same_params_same_bytes(smoke_run, tmp_path):
    params, task_dir = smoke_run
    again = run_all(params, tmp_path)
    for name in ("spirals.parquet", "curves.parquet", "metrics.json", "models/adlala.pt", "figures/curves.png"):
        assert (again / name).read_bytes() == (task_dir / name).read_bytes(), name


def test_report_section(smoke_run, tmp_path):
    _, task_dir = smoke_run
    section = pipeline.report_section(task_dir.parent)
    assert section is not None and "paper, adlala (one run)" in section.markdown
    assert "AdLaLa − Adam" in section.markdown and len(section.figures) == 3
    assert "Thermostat state" in section.markdown
    assert pipeline.report_section(tmp_path) is None


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
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    result = subprocess.run([PHYS_ML, "train", "thermo", "--params", str(path), "--data-dir", str(tmp_path / "d")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: thermo.train.batch_size must be >= 1, got 0"
