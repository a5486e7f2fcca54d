"""The report's tables hold the numbers of metrics.json (formatted by common.report.fmt), row by row."""

import json

import pytest

from phys_ml.stages.common.report import fmt
from phys_ml.stages.particles import paper, report


def tables(markdown: str) -> list[list[dict[str, str]]]:
    """Every Markdown table of ``markdown`` as a list of rows {header: cell}."""
    out, lines = [], markdown.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            headers = [c.strip() for c in lines[i].strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("| "):
                rows.append(dict(zip(headers, (c.strip() for c in lines[i].strip("|").split("|")))))
                i += 1
            out.append(rows)
        else:
            i += 1
    return out


@pytest.fixture(scope="module")
def section_and_metrics(smoke_run):
    metrics = json.loads((smoke_run.task_dir / "metrics.json").read_text())
    return tables(report.report_section(smoke_run.data_dir).markdown), metrics


@pytest.mark.slow
def test_task2_table_is_the_metrics(section_and_metrics):
    (main, studies, *_), metrics = section_and_metrics
    m = metrics["task2"]
    labels = {"constant velocity (ours)": "baseline", "MLP (ours)": "mlp", "graph net (ours)": "gnn"}
    ours = [r for r in main if r["model"] in labels]
    assert len(ours) == 3 * len(m["train_sizes"])
    for row in ours:
        values = m[f"n{row['train sims']}"][labels[row["model"]]]
        for t in m["horizons"]:
            assert row[f"RMSE t={t:g}"] == fmt(values[f"rmse_t{t:g}"])
            assert row[f"R² t={t:g}"] == fmt(values[f"r2_t{t:g}"])
    for row in main:
        if row["model"] == "MLP (paper)":
            assert row["RMSE t=0.5"] == fmt(paper.TASK2[int(row["train sims"])]["model"]["rmse"][0])
    assert len(studies) == sum(len(v) for v in m["studies"].values())
    for row in studies:
        values = m["studies"][row["study"].replace(" ", "_")][row["setting"]]
        assert (row["best val MSE"], row["final val MSE"]) == (fmt(values["best_val_mse"]),
                                                               fmt(values["final_val_mse"]))


@pytest.mark.slow
def test_task31_tables_are_the_metrics(section_and_metrics):
    (_, _, main, compare, _), metrics = section_and_metrics
    m = metrics["task31"]
    expected = {f"LSTM (ours, {m['lstm']['optimizer']})": (m["lstm"], fmt(m["lstm"]["best_val_mse"])),
                "least squares on the force law (ours)": (m["least_squares"], fmt(None)),
                "predict the training mean (ours)": (m["train_mean"], fmt(None))}
    rows = {r["model"]: r for r in main}
    for label, (values, best_val) in expected.items():
        assert (rows[label]["test MSE"], rows[label]["test MAE"], rows[label]["best val MSE"]) == (
            fmt(values["mse"]), fmt(values["mae"]), best_val)
    assert rows["LSTM (paper, SGD)"]["test MSE"] == fmt(paper.TASK31_TEST_MSE)
    ours = [r for r in compare if "(paper" not in r["optimizer"]]
    assert [r["optimizer"] for r in ours] == list(m["compare"])
    for row in ours:
        v = m["compare"][row["optimizer"]]
        assert [row["best val MSE"], row["worst val MSE"], row["test MSE"]] == [
            fmt(v["best_val_mse"]), fmt(v["worst_val_mse"]), fmt(v["test_mse"])]


@pytest.mark.slow
def test_task32_table_is_the_metrics(section_and_metrics):
    all_tables, metrics = section_and_metrics
    m = metrics["task32"]
    rows = {r["model"]: r for r in all_tables[-1]}
    assert [k for k in rows if k.endswith(" (ours)")] == [f"{k} (ours)" for k in m["models"]]
    for name, v in m["models"].items():
        assert rows[f"{name} (ours)"]["test MSE"] == fmt(v["mse"])
        assert rows[f"{name} (ours)"]["best val MSE"] == fmt(v.get("best_val_mse"))
    assert rows["GRU (paper)"]["test MSE"] == fmt(paper.TASK32_GRU_TEST_MSE)


def test_a_missing_subtask_is_marked_not_run(tmp_path):
    section = report.build_section({}, tmp_path)
    assert section.markdown.count("Not run.") == 3 and section.figures == []
