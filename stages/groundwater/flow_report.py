"""The amortized-inference part of the groundwater report: Table-1 rows, test-split calibration, cost, figures."""

from __future__ import annotations

from pathlib import Path

from phys_ml.stages.common.report import markdown_table

from . import paper

FIGURES = ("flow_fields_test1.png", "flow_fields_test2.png", "flow_calibration.png", "flow_r2.png",
           "flow_steps.png", "flow_heads_test1.png", "flow_heads_test2.png", "flow_training.png")

CHOICES = (
    "**Amortized inference (the paper's method).** A 1-D CNN summary network over the 13 wells x 25 steps and a "
    "conditional normalizing flow (zuko): 5 affine couplings (cINN) alternating with 5 rational-quadratic spline "
    "couplings (cNSF), affine first, trained jointly by maximum likelihood on the training split only. Choices the "
    "paper leaves open, ours: ln K is learned in the prior's Karhunen-Loeve whitened coordinates (so the untrained "
    "flow is the prior); heads are standardized per well and step with training-split statistics; fresh "
    "observation noise (sd 0.01 m) is drawn every time a pair is used; half of the pairs are truncated to a random "
    "20..25 observed steps and each well is dropped with a small probability, with a mask fed to the summary "
    "network, so that one trained model serves incomplete data; a conditional elementwise affine layer starts the "
    "flow; on the default profile the couplings act on the leading prior modes only (`coupling_dims`) and the "
    "other modes keep the prior (`rest: prior`), because couplings over more modes memorized the 4,800 training "
    "pairs (training loss falling while the validation loss rose); the paper profile couples all 706. "
    "Selection rule: `coupling_dims`, dropout and learning rate were compared by their validation-split loss in "
    "short runs, and the kept weights are those of the epoch with the lowest validation loss (fixed noise and "
    "truncation draws); no setting was chosen on the reference fields or the test split. Test-split data sets "
    "get fresh seeded noise.\n\n"
    "**Not like for like.** Relative errors of ln K shift with the unit of K and LPP with the prior variance; "
    "the paper states neither, so only our own rows compare like for like, and the prior-only row shows what a "
    "metric is worth with no data.\n\n")


def table1_rows(m: dict, name: str, table1_metrics) -> list[list]:
    """The paper's proposed row and ours in the layout of `pipeline.TABLE1_METRICS` (key, label, scale); the last
    two columns are the wall time per data set (here: drawing 2,000 samples) and model runs per data set."""
    theirs = paper.TABLE1["Proposed"][name]
    rows = [["paper: proposed (flow)"] + [None if k.endswith("_si") or k not in theirs else theirs[k] * scale
                                          for k, _, scale in table1_metrics]
            + [paper.TABLE2["proposed_inference_s"] / 60, None]]
    if f"flow_{name}_lpp" in m:
        rows.append(["ours: amortized flow"] + [m.get(f"flow_{name}_{k}", float("nan")) * scale
                                                for k, _, scale in table1_metrics]
                    + [m[f"flow_{name}_sample_s"] / 60, 0])
    return rows


def test_split_text(m: dict) -> str:
    if "flow_test_n_sets" not in m:
        return ""
    levels = sorted(int(k.removeprefix("flow_test_coverage")) for k in m if k.startswith("flow_test_coverage"))
    calib = markdown_table(["nominal level (%)"] + [str(lv) for lv in levels],
                           [["empirical coverage (%)"] + [100 * m[f"flow_test_coverage{lv}"] for lv in levels]])
    steps = sorted(int(k.removeprefix("flow_test_relative_error_steps")) for k in m
                   if k.startswith("flow_test_relative_error_steps"))
    rows = [["test split (mean)"] + [100 * m[f"flow_test_relative_error_steps{s}"] for s in steps]]
    for name in ("test1", "test2"):
        if f"flow_{name}_relative_error_steps{steps[0]}" in m:
            rows.append([name] + [100 * m[f"flow_{name}_relative_error_steps{s}"] for s in steps])
    by_steps = markdown_table(["rel. L2 error of ln K (%), observed steps"] + [str(s) for s in steps], rows)
    summary = markdown_table(
        ["over the test split", "ours", "paper"],
        [["data sets", m["flow_test_n_sets"], paper.N_SIMULATIONS - paper.N_TRAIN - paper.N_VALIDATION],
         ["mean LPP", m["flow_test_mean_lpp"], None],
         ["median R^2 of the posterior mean per parameter", m["flow_test_r2_median"], None],
         ["share of parameters with R^2 > 0.8 (%)", 100 * m["flow_test_r2_share_above_0.8"],
          f"{100 * paper.R2_ABOVE_08_SHARE:.0f} (of 15 shown)"]])
    return ("**Over the test split** (every test data set, one trained model): calibration of the central "
            "credible intervals, R^2 of the posterior means (paper Fig. 8) and errors with fewer observed steps "
            "(paper Fig. 14).\n\n" + summary + "\n" + calib + "\n" + by_steps + "\n")


def cost_rows(m: dict, flow_train: dict | None) -> list[list]:
    rows = []
    if flow_train:
        rows.append(["flow training wall time (h)", flow_train["train_wall_s"] / 3600, paper.TABLE2[
            "proposed_training_h"]])
        rows.append(["flow epochs run / best validation epoch", f"{flow_train['epochs_run']} / "
                     f"{flow_train['best_epoch']} ({flow_train['stop_reason']})", "4000 / –"])
    for name in ("test1", "test2"):
        if f"flow_{name}_sample_s" in m:
            rows.append([f"flow: 2,000 posterior samples, {name} (s)", m[f"flow_{name}_sample_s"],
                         paper.TABLE2["proposed_inference_s"]])
    return rows


def predictive_rows(m: dict) -> list[list]:
    rows = []
    for name in ("test1", "test2"):
        if f"flow_{name}_predictive_rmse" in m:
            rows.append([f"flow, {name}", m[f"flow_{name}_predictive_rmse"],
                         100 * m[f"flow_{name}_predictive_coverage95"], m[f"flow_{name}_predictive_failed"]])
    return rows


def figures(data_dir: Path) -> list[Path]:
    fig_dir = Path(data_dir) / "groundwater" / "figures"
    return [fig_dir / f for f in FIGURES if (fig_dir / f).is_file()]
