"""The groundwater report: every number in its tables is the number in metrics.json / flow_train.json."""

from __future__ import annotations

import numpy as np

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.report import fmt
from phys_ml.stages.groundwater import paper, report
from phys_ml.stages.groundwater.store import REFERENCES


def table_rows(markdown: str) -> dict[str, list[str]]:
    """First cell -> the other cells, of every Markdown table row in ``markdown`` (header rows included)."""
    rows: dict[str, list[str]] = {}
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows.setdefault(cells[0], cells[1:])
    return rows


def check_report_tables(markdown: str, m: dict, flow_train: dict | None) -> None:
    """Assert that Table 1, the cost table and the predictive table show exactly the artifacts' numbers."""
    tables = markdown.split("**Table 1, test #")[1:]
    assert len(tables) == len(REFERENCES)
    for name, text in zip(REFERENCES, tables):
        rows = table_rows(text.split("**Table 2")[0])
        for label, prefix, runs in [("ours: prior only", f"prior_{name}", 0),
                                    ("ours: amortized flow", f"flow_{name}", 0)] + [
                (f"ours: IES, localization {s}", f"ies_{s}_{name}", m[f"ies_{s}_{name}_n_runs"])
                for s in report.settings_run(m)]:
            expected = [fmt(m[f"{prefix}_{k}"] * scale) for k, _, scale in report.TABLE1_METRICS]
            assert rows[label] == expected + ["–", fmt(runs)], label
        pest = paper.TABLE1["PEST-IES"][name]
        assert rows["paper: PEST-IES"][4] == fmt(pest["lpp"]) and rows["paper: PEST-IES"][6] == "2.5 h"
    cost = table_rows(markdown.split("**Table 2, cost**")[1].split("**Over the test split**")[0])
    assert cost["MODFLOW runs of the training data, ok"][0] == fmt(m["generate_n_ok"])
    assert cost["MODFLOW runs of the training data, failed (non-convergence)"][0] == fmt(m["generate_n_failed"])
    if flow_train:
        assert cost["flow training: epochs run"][0] == fmt(flow_train["epochs_run"])
        assert cost["flow training: gradient steps"][0] == fmt(flow_train["gradient_steps"])
        assert cost["flow training: wall time"] == ["–", "4.5 h"]
    for s in report.settings_run(m):
        for name in REFERENCES:
            assert cost[f"smoother, localization {s}, {name}: MODFLOW runs"][0] == fmt(m[f"ies_{s}_{name}_n_runs"])
            assert cost[f"smoother {s}, {name}"][0] == fmt(m[f"ies_{s}_{name}_heads_rmse"])
    for name in REFERENCES:
        row = cost[f"flow, {name}"]
        assert row == [fmt(m[f"flow_{name}_predictive_rmse"]), fmt(100 * m[f"flow_{name}_predictive_coverage95"]),
                       fmt(m[f"flow_{name}_predictive_failed"])]
    held = table_rows(markdown.split("**Over the test split**")[1])
    assert held["data sets"][0] == fmt(m["flow_test_n_sets"]) and held["mean LPP"][0] == fmt(m["flow_test_mean_lpp"])
    assert not any("wall_s" in k or "_sample_s" in k or "per_s" in k for k in m)  # no wall time in the artifacts
    check_comparison_tables(markdown, m)


def check_comparison_tables(markdown: str, m: dict) -> None:
    """The comparison the section leads with, and the Table-1 rows of the linear analysis and the refinement."""
    if f"cmp_prior_{REFERENCES[0]}_lpp" not in m:
        return
    cmp = table_rows(markdown.split("**Every method on the same data sets**")[1].split("**Table 1")[0])
    for key, label in report.CMP_METHODS:
        if f"cmp_{key}_{REFERENCES[0]}_lpp" not in m:
            continue
        row = cmp[label]
        assert row[0] == " / ".join(fmt(m[f"cmp_{key}_{r}_lpp"]) for r in REFERENCES), label
        assert row[1] == fmt(m.get(f"cmp_{key}_subset_lpp")), label
        assert row[3] == fmt(100 * m[f"cmp_{key}_subset_coverage95"]), label
        assert row[8].split(" / ")[:2] == [fmt(m[f"cmp_{key}_{r}_n_runs"]) for r in REFERENCES], label
    tables = markdown.split("**Table 1, test #")[1:]
    for name, text in zip(REFERENCES, tables):
        rows = table_rows(text.split("**Table 2")[0])
        for label, key in (("ours: linear analysis (Gauss-Newton + Laplace)", "cmp_glm"),
                           ("ours: flow + refinement", "cmp_refine")):
            if f"{key}_{name}_lpp" in m:
                assert rows[label][4] == fmt(m[f"{key}_{name}_lpp"]), label
                assert rows[label][-1] == fmt(m[f"{key}_{name}_n_runs"]), label


def _fake_metrics(rng: np.random.Generator) -> tuple[dict, dict]:
    m: dict = {"generate_n_ok": 29, "generate_n_failed": 1}
    keys = [k for k, _, _ in report.TABLE1_METRICS]
    for name in REFERENCES:
        m.update({f"{p}_{name}_{k}": float(rng.uniform(0.01, 0.99)) for p in ("prior", "flow") for k in keys})
        for s in ("none", "autoadaloc"):
            m.update({f"ies_{s}_{name}_{k}": float(rng.uniform(0.01, 0.99)) for k in keys})
            m.update({f"ies_{s}_{name}_n_runs": int(rng.integers(10, 500)),
                      f"ies_{s}_{name}_heads_rmse": float(rng.uniform(0, 1))})
        m.update({f"flow_{name}_n_samples": 50, f"flow_{name}_predictive_rmse": float(rng.uniform(0, 1)),
                  f"flow_{name}_predictive_coverage95": float(rng.uniform(0, 1)), f"flow_{name}_predictive_failed": 0,
                  f"flow_{name}_relative_error_steps20": 0.3, f"flow_{name}_relative_error_steps25": 0.2})
    m.update({"flow_test_n_sets": 5, "flow_test_mean_lpp": -812.123456, "flow_test_r2_median": 0.4,
              "flow_test_r2_share_above_0.8": 0.1, "flow_test_r2_share_above_0.5": 0.3, "flow_test_coverage50": 0.45,
              "flow_test_coverage90": 0.87, "flow_test_relative_error_steps20": 0.31,
              "flow_test_relative_error_steps25": 0.29})
    for key in ("prior", "flow", "glm", "refine"):
        for where in (*REFERENCES, "subset"):
            m.update({f"cmp_{key}_{where}_{k}": float(rng.uniform(0.01, 0.99)) for k in
                      ("lpp", "relative_error", "coverage95", "draws_predictive_mean_rmse")})
            m[f"cmp_{key}_{where}_n_runs"] = int(rng.integers(0, 400))
    m.update({"cmp_prior_subset_n_sets": 10, "cmp_refine_n_sets": 12, "cmp_refine_n_fallbacks": 2,
              "cmp_refine_max_runs": 390, "cmp_glm_n_sets": 12, "cmp_glm_explained_median_all": 0.55,
              "cmp_glm_explained_above_0.8_all": 0.03})
    return m, {"epochs_run": 7, "best_epoch": 5, "gradient_steps": 14, "stop_reason": "reached 7 epochs"}


def test_report_tables_hold_the_metrics_numbers(tmp_path):
    m, flow_train = _fake_metrics(np.random.default_rng(0))
    artifacts.write_json(tmp_path / "groundwater" / "metrics.json", m)
    artifacts.write_json(tmp_path / "groundwater" / "flow_train.json", flow_train)
    section = report.report_section(tmp_path)
    check_report_tables(section.markdown, m, flow_train)
    assert "data/timings/" in section.markdown and "benchmarks/groundwater_runner_bench.py" in section.markdown


def test_report_section_is_none_before_a_run(tmp_path):
    assert report.report_section(tmp_path) is None
