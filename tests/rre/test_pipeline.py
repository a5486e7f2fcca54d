"""The rre pipeline on a reduced smoke configuration: artifacts, determinism, metrics, report, bad params."""

import copy

import pytest

from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.rre import pipeline


def small(params):
    p = copy.deepcopy(params)
    p["rre"]["generate"]["cases"] = ["patch"]
    p["rre"]["generate"]["grid"] = {"nx": 6, "ny": 6, "nz": 10, "lx": 25.0, "ly": 25.0, "lz": 5.0}
    p["rre"]["train"]["cases"] = ["patch"]
    p["rre"]["train"]["runs"] = [
        {"optimizer": {"name": "adam", "lr": 0.01}, "batch": "full", "iterations": 5},
        {"optimizer": {"name": "gd", "lr": 0.01}, "batch": "mini", "iterations": 5},
        {"optimizer": {"name": "adam", "lr": 0.01}, "batch": "full", "iterations": 5, "residual_weight": 0.25},
        {"optimizer": {"name": "adam", "lr": 0.01}, "batch": "full", "iterations": 5, "residual_weight": 0.0},
    ]
    p["rre"]["train"]["selection"] = {"weights": [0.0, 0.1], "iterations": 3, "collocation": 100}
    p["rre"]["train"]["studies"] = {"iterations": 3, "sparse": [{"locations": 3, "layers": 2}], "soil": {"iterations": 3}}
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
    pipeline.train(a, None)
    pipeline.evaluate(a, None)
    metrics = (a.task_dir / "metrics.json").read_text()
    assert '"patch.adam-full.re_psi"' in metrics and '"patch.baseline.re_psi"' in metrics
    assert '"patch.adam-full-w0.25.re_psi"' in metrics  # a run with its own residual weight
    for key in ("study-sparse-3x2-pdl", "study-sparse-3x2-data", "study-sparse-3x2-interpolation",
                "study-forecast-pdl", "study-forecast-interpolation"):
        assert f'"patch.{key}.re_psi"' in metrics
    assert '"patch.study-soil.alpha_rel_error"' in metrics and '"patch.select.table1.chosen"' in metrics
    section = pipeline.report_section(a.data_dir)
    assert "sensor interpolation" in section.markdown and len(section.figures) == 6
    assert "| adam | full | 0.25 |" in section.markdown and "adam data-only | full | 0 |" in section.markdown
    assert "Selection of w" in section.markdown and "Unknown soil" in section.markdown
    assert pipeline.report_section(tmp_path / "none") is None


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
    with pytest.raises(UserError, match="layers"):
        pipeline.generate(StageContext(task="rre", params=params, data_dir=tmp_path), None)


def test_compile_without_a_cxx_compiler_is_a_clear_error(smoke_params, tmp_path, monkeypatch):
    from torch._inductor import cpp_builder

    def no_compiler():
        raise RuntimeError("No working C++ compiler found")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    params = copy.deepcopy(smoke_params)
    params["rre"]["train"]["compile"] = True
    with pytest.raises(UserError, match="rre.train.compile is true but torch.compile found no working C\\+\\+ compiler"):
        pipeline.train(StageContext(task="rre", params=params, data_dir=tmp_path), None)
