"""The groundwater section of `phys-ml report`: our metrics beside the paper's numbers (reads only JSON).

Reads data/groundwater/metrics.json (evaluate) and flow_train.json (train flow). Table 1 compares accuracy on the
two reference fields; the cost table states our costs as counts that a rerun reproduces (MODFLOW runs, epochs,
gradient steps, samples drawn), beside the paper's wall times. Our wall times are in data/timings/ (no DVC stage
declares them) and `benchmarks/groundwater_runner_bench.py` / `groundwater_flow_bench.py` measure speed.
"""

from __future__ import annotations

from pathlib import Path

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.report import ReportSection, fmt, markdown_table, task_metrics

from . import paper
from .store import REFERENCES, TASK

LOCALIZATIONS = ("none", "autoadaloc", "distance")
SMOOTHER_FIGURES = ("ies_history.png",)
FLOW_FIGURES = ("flow_fields_test1.png", "flow_fields_test2.png", "flow_calibration.png", "flow_r2.png",
                "flow_steps.png", "flow_heads_test1.png", "flow_heads_test2.png", "flow_training.png")
TABLE1_METRICS = (("average_relative_error", "avg. rel. error, K in m/d (%)", 100.0),
                  ("average_relative_error_si", "avg. rel. error, K in m/s (%)", 100.0),
                  ("relative_error", "rel. L2 error, K in m/d (%)", 100.0),
                  ("relative_error_si", "rel. L2 error, K in m/s (%)", 100.0),
                  ("lpp", "LPP", 1.0),
                  ("coverage95", "95 % coverage (%)", 100.0))
TABLE1_HEADERS = (["method"] + [label for _, label, _ in TABLE1_METRICS]
                  + ["paper: wall time per data set", "ours: MODFLOW runs per data set"])

INTRO = (
    "Freyberg one-layer model in MODFLOW 6 (706 active cells, 13 wells x 25 periods), Gaussian-process prior on "
    "ln K, iterative ensemble smoother (GLM form of pestpp-ies) on two reference fields drawn from the prior, "
    "once per localization setting (none; autoadaloc: pestpp-ies automatic adaptive localization, a local "
    "upgrade per parameter with its significantly correlated observations; distance: a Gaspari-Cohn taper "
    "from each well to each cell on the cross-covariance). "
    "Posterior statistics over the smoother's ensemble without its base realization; the prior-only row is "
    "2,000 prior draws. The paper's prior parameters and units are not stated: relative errors of ln K depend "
    "on the unit of K (a shift of ln K), so they are shown for K in m/d (our parameterisation) and in m/s; LPP "
    "and coverage do not depend on it.\n\n")

COSTS = (
    "**Cost.** Ours is stated as counts, which a rerun with the same params reproduces exactly (MODFLOW runs, "
    "epochs, gradient steps, samples drawn); the paper's costs are its wall times and are shown as the paper's. "
    "Our wall times are recorded in `data/timings/` (groundwater-generate, -ies, -train-flow and -evaluate; no "
    "DVC stage declares them), and speed is measured by `benchmarks/groundwater_runner_bench.py` (MODFLOW "
    "simulations per second, local and dask runners) and `benchmarks/groundwater_flow_bench.py` (training steps "
    "per second, seconds to draw 2,000 posterior samples).\n\n")


CHOICES = (
    "**Amortized inference (the paper's method).** A 1-D CNN summary network over the 13 wells x 25 steps and a "
    "conditional normalizing flow (zuko): 5 affine couplings (cINN) alternating with 5 rational-quadratic spline "
    "couplings (cNSF), affine first, trained jointly by maximum likelihood on the training split only. Choices the "
    "paper leaves open, ours: ln K is learned in the prior's Karhunen-Loeve whitened coordinates (so the untrained "
    "flow is the prior); heads are standardized per well and step with training-split statistics; fresh "
    "observation noise (sd 0.01 m) is drawn every time a pair is used; half of the pairs are truncated to a random "
    "20..25 observed steps and each well is dropped with a small probability, with a mask fed to the summary "
    "network, so that one trained model serves incomplete data; beside the CNN summary the flow is given a linear "
    "summary (`linear_modes`): the posterior mean of the model linearized at the prior mean (its Jacobian computed "
    "once, offline) in the leading prior modes, which carries the score J0^T R^-1 (d - G(mu)); a conditional "
    "elementwise affine layer starts the flow; on the default profile the couplings act on the leading prior "
    "modes only (`coupling_dims`), because couplings over more modes memorized the paper's 4,800 training pairs "
    "(training loss falling while the validation loss rose); the next `rest_modes` modes get a linear-Gaussian "
    "conditional (`rest: linear`): its mean linear in the linearized posterior mean over the leading "
    "coupling_dims + rest_modes modes and, with `rest_given: heads_and_coupled`, in the coupled modes (at "
    "sampling, the flow's draw of them), its covariance fixed, both fitted in closed form by maximum likelihood on "
    "the training split after the flow (q(z) = q_flow(coupled | heads) q_rest(rest | heads[, coupled]): the "
    "factors have separate parameters, so this is q's joint maximum likelihood); the remaining modes keep the "
    "prior; the paper profile couples all 706. Why: the modes after the coupled ones still hold some of what the "
    "heads say, and a closed-form linear-Gaussian fit learns it from the training pairs without memorizing them "
    "(the table below: its gain in validation NLL over the flow alone). More training data than the paper's: on "
    "the default profile `generate.extra_train` further prior simulations (the same prior draw continued) join "
    "the training split, while the validation and test splits stay the paper's; a flow that learns a "
    "32-dimensional nonlinear conditional from simulated pairs is limited by their number, and the validation "
    "NLL (flow_train.json) is the yardstick; the paper profile keeps the paper's 4,800. "
    "Selection rule: `coupling_dims`, dropout and learning rate were compared by their validation-split loss in "
    "development runs, the rest's modes and what it is given by train-flow itself (every candidate fitted, the "
    "lowest validation NLL kept, the table below), and the kept weights are those of the epoch with the lowest "
    "validation loss (fixed noise and truncation draws); no setting was chosen on the reference fields or the "
    "test split. Test-split data sets get fresh seeded noise.\n\n"
    "**Not like for like.** Relative errors of ln K shift with the unit of K and LPP with the prior variance; "
    "the paper states neither, so only our own rows compare like for like, and the prior-only row shows what a "
    "metric is worth with no data.\n\n")


def settings_run(m: dict) -> list[str]:
    return [s for s in LOCALIZATIONS if f"ies_{s}_{REFERENCES[0]}_lpp" in m]


def _metric_cells(m: dict, prefix: str) -> list:
    return [None if m.get(f"{prefix}_{k}") is None else m[f"{prefix}_{k}"] * scale for k, _, scale in TABLE1_METRICS]


def _paper_cells(published: dict) -> list:
    """The paper's Table-1 numbers in our columns (it has no m/s variant and no coverage)."""
    return [None if k.endswith("_si") or k not in published else published[k] * scale
            for k, _, scale in TABLE1_METRICS]


def table1_rows(m: dict, name: str) -> list[list]:
    """Table-1 rows of one reference field: the paper's two methods, then ours."""
    rows = [["paper: PEST-IES"] + _paper_cells(paper.TABLE1["PEST-IES"][name])
            + [f"{paper.TABLE2['pest_ies_inference_h']:g} h", None],
            ["paper: proposed (flow)"] + _paper_cells(paper.TABLE1["Proposed"][name])
            + [f"{paper.TABLE2['proposed_inference_s']:g} s", None]]
    if f"prior_{name}_lpp" in m:
        rows.append(["ours: prior only"] + _metric_cells(m, f"prior_{name}") + [None, 0])
    for setting in settings_run(m):
        key = f"ies_{setting}_{name}"
        rows.append([f"ours: IES, localization {setting}"] + _metric_cells(m, key) + [None, m[f"{key}_n_runs"]])
    if f"flow_{name}_lpp" in m:
        rows.append(["ours: amortized flow"] + _metric_cells(m, f"flow_{name}") + [None, 0])
    for key, label in (("cmp_glm", "ours: linear analysis (Gauss-Newton + Laplace)"),
                       ("cmp_refine", "ours: flow + refinement")):
        if f"{key}_{name}_lpp" in m:
            rows.append([label] + _metric_cells(m, f"{key}_{name}") + [None, m[f"{key}_{name}_n_runs"]])
    return rows


def cost_rows(m: dict, flow_train: dict | None) -> list[list]:
    """[cost, ours (a count), paper (its wall time)]."""
    rows = [["MODFLOW runs of the training data, ok", m["generate_n_ok"], f"{paper.N_SIMULATIONS} runs"],
            ["MODFLOW runs of the training data, failed (non-convergence)", m["generate_n_failed"], None]]
    if flow_train:
        rows += [["flow training: epochs run", flow_train["epochs_run"], "4000 epochs"],
                 ["flow training: best validation epoch", flow_train["best_epoch"], None],
                 ["flow training: gradient steps", flow_train["gradient_steps"], None],
                 ["flow training: wall time", None, f"{paper.TABLE2['proposed_training_h']:g} h"]]
    for name in REFERENCES:
        if f"flow_{name}_n_samples" in m:
            rows.append([f"flow inference, {name}: posterior samples (one batched network pass, no MODFLOW run)",
                         m[f"flow_{name}_n_samples"], None])
    rows.append(["flow inference: wall time per data set", None, f"{paper.TABLE2['proposed_inference_s']:g} s"])
    for s in settings_run(m):
        for name in REFERENCES:
            rows.append([f"smoother, localization {s}, {name}: MODFLOW runs", m[f"ies_{s}_{name}_n_runs"], None])
    rows.append(["smoother: wall time per data set", None, f"{paper.TABLE2['pest_ies_inference_h']:g} h"])
    return rows


def heldout_text(m: dict) -> str:
    if "flow_test_n_sets" not in m:
        return ""
    levels = sorted(int(k.removeprefix("flow_test_coverage")) for k in m if k.startswith("flow_test_coverage"))
    calib = markdown_table(["nominal level (%)"] + [str(lv) for lv in levels],
                           [["empirical coverage (%)"] + [100 * m[f"flow_test_coverage{lv}"] for lv in levels]])
    steps = sorted(int(k.removeprefix("flow_test_relative_error_steps")) for k in m
                   if k.startswith("flow_test_relative_error_steps"))
    rows = [["test split (mean)"] + [100 * m[f"flow_test_relative_error_steps{s}"] for s in steps]]
    for name in REFERENCES:
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


def predictive_rows(m: dict) -> list[list]:
    rows = []
    for name in REFERENCES:
        if f"flow_{name}_predictive_rmse" in m:
            rows.append([f"flow, {name}", m[f"flow_{name}_predictive_rmse"],
                         100 * m[f"flow_{name}_predictive_coverage95"], m[f"flow_{name}_predictive_failed"]])
    return rows


def figures(data_dir: Path, m: dict) -> list[Path]:
    fig_dir = Path(data_dir) / TASK / "figures"
    names = list(FLOW_FIGURES) + list(SMOOTHER_FIGURES) + [
        f"{kind}_{s}_{r}.png" for s in settings_run(m) for kind in ("fields", "heads") for r in REFERENCES]
    return [fig_dir / f for f in names if (fig_dir / f).is_file()]


def report_section(data_dir: Path) -> ReportSection | None:
    """The groundwater section, or None before `phys-ml evaluate groundwater` has run."""
    m = task_metrics(data_dir, TASK)
    if m is None:
        return None
    flow_train_path = Path(data_dir) / TASK / "flow_train.json"
    flow_train = artifacts.read_json(flow_train_path) if flow_train_path.is_file() else None
    tables = "".join(f"**Table 1, test #{r + 1} ({name})**\n\n" + markdown_table(TABLE1_HEADERS, table1_rows(m, name))
                     + "\n" for r, name in enumerate(REFERENCES))
    cost = "**Table 2, cost**\n\n" + markdown_table(["cost", "ours (count)", "paper"], cost_rows(m, flow_train))
    predictive = markdown_table(
        ["posterior predictive heads (noise-free truth)", "RMSE of the mean (m)", "95 % band coverage (%)",
         "failed runs"],
        predictive_rows(m) + [[f"smoother {s}, {r}", m[f"ies_{s}_{r}_heads_rmse"], None, None]
                              for s in settings_run(m) for r in REFERENCES])
    text = comparison_text(m) + INTRO + CHOICES + rest_selection_text(flow_train) + tables + COSTS + cost + "\n" + predictive + "\n" + heldout_text(m)
    return ReportSection("Groundwater: amortized inference of 706 ln K (Freyberg, MODFLOW 6) beside the ensemble "
                         "smoother", text, figures(data_dir, m))


# ---------------------------------------------------------------- the comparison the section leads with
CMP_METHODS = (("prior", "prior only"), ("flow", "amortized flow (paper's method)"),
               ("glm", "linear analysis: Gauss-Newton MAP + Laplace"), ("refine", "flow + refinement (ours)"))
CMP_HEADERS = ["method", "LPP test1 / test2", "LPP, test subset", "95 % coverage (%) test1 / test2",
               "95 % coverage (%), test subset", "rel. L2 of ln K (%) test1 / test2", "rel. L2 (%), test subset",
               "predictive mean heads vs observed, RMSE (m) test1 / test2", "same, test subset (m)",
               "MODFLOW runs per data set test1 / test2 / subset mean"]


def _pair(m: dict, key: str, metric: str, scale: float = 1.0, digits: int = 4) -> str:
    vals = [m.get(f"{key}_{r}_{metric}") for r in REFERENCES]
    return " / ".join(fmt(None if v is None else v * scale, digits) for v in vals)


def _sub(m: dict, key: str, metric: str, scale: float = 1.0):
    v = m.get(f"{key}_subset_{metric}")
    return None if v is None else v * scale


def comparison_rows(m: dict) -> list[list]:
    rows = []
    for key, label in CMP_METHODS:
        k = f"cmp_{key}"
        if f"{k}_{REFERENCES[0]}_lpp" not in m:
            continue
        runs = _pair(m, k, "n_runs") + f" / {fmt(_sub(m, k, 'n_runs'))}"
        rows.append([label, _pair(m, k, "lpp"), _sub(m, k, "lpp"), _pair(m, k, "coverage95", 100, 3),
                     _sub(m, k, "coverage95", 100), _pair(m, k, "relative_error", 100, 3),
                     _sub(m, k, "relative_error", 100), _pair(m, k, "draws_predictive_mean_rmse", 1, 3),
                     _sub(m, k, "draws_predictive_mean_rmse"), runs])
        if key == "flow":  # the smoother ran on the references only
            for s in settings_run(m):
                i = f"ies_{s}"
                rows.append([f"smoother (IES, localization {s}); references only", _pair(m, i, "lpp"), None,
                             _pair(m, i, "coverage95", 100, 3), None, _pair(m, i, "relative_error", 100, 3), None,
                             _pair(m, i, "heads_rmse_obs", 1, 3), None, _pair(m, i, "n_runs") + " / –"])
    return rows


def rest_selection_text(flow_train: dict | None) -> str:
    """The linear rest's candidates (train-flow fits each after the flow) and their validation NLL."""
    table = (flow_train or {}).get("rest_selection") or []
    if not table:
        return ""
    base = flow_train["flow_val_nll_prior_rest"]
    rows = [[r["rest_modes"], "–" if r["rest_modes"] == 0 else r["rest_given"].replace("_", " "), r["val_nll"],
             base - r["val_nll"], "yes" if r["kept"] else ""] for r in table]
    return ("**The linear rest, chosen on the validation split** (train-flow fits every candidate after the "
            "flow's training; validation NLL in nats per data set, the same fixed noise and truncation draws as "
            "the flow's early stopping; 0 modes: the flow alone, the prior on every other mode)\n\n"
            + markdown_table(["rest modes", "given", "validation NLL", "gain over the flow alone", "kept"], rows)
            + "\n")


def global_information_rows(m: dict) -> list[list]:
    """What the heads can say about ln K in general (one Jacobian at the prior mean) and what the flow learned."""
    rows = []
    if "prior_mean_info_gain" in m:
        rows.append(["linear analysis at the prior mean: information gain, all modes (nats)",
                     m["prior_mean_info_gain"]])
        for k in (32, 64):
            if f"prior_mean_info_gain_{k}" in m:
                rows.append([f"  ... in the leading {k} prior modes (nats)", m[f"prior_mean_info_gain_{k}"]])
    if "flow_info_captured" in m:
        rows.append(["flow (couplings and rest): validation NLL of the prior minus the flow's (nats, "
                     "validation split)",
                     m["flow_info_captured"]])
    return rows


def information_rows(m: dict) -> list[list]:
    rows = []
    g = "cmp_glm"
    for metric, label, scale in (("laplace_info_gain", "linear analysis at the MAP: information gain (nats)", 1),
                                 ("laplace_effective_dim", "effective dimension sum e / (1 + e)", 1),
                                 ("laplace_explained_median", "median per-cell explained variance (R^2 ceiling)", 1),
                                 ("laplace_explained_above_0.8", "cells with explained variance > 0.8 (%)", 100),
                                 ("draws_pareto_k", "Pareto-k of the Laplace draws' importance weights (missing: "
                                  "infinite; subset: % of sets above 0.7)", 1),
                                 ("laplace_map_heads_rmse", "RMSE of the MAP's heads vs observed (m)", 1)):
        sub = (_sub(m, g, f"{metric}_above_0.7", 100) if metric.endswith("pareto_k") else _sub(m, g, metric, scale))
        vals = [m.get(f"{g}_{r}_{metric}") for r in REFERENCES]
        if sub is not None or any(v is not None for v in vals):
            rows.append([label] + [None if v is None else v * scale for v in vals] + [sub])
    if f"cmp_refine_{REFERENCES[0]}_laplace_map_heads_rmse" in m:
        rows.append(["flow + refinement: RMSE of its MAP's heads vs observed, where kept (m)"]
                    + [m.get(f"cmp_refine_{r}_laplace_map_heads_rmse") for r in REFERENCES]
                    + [_sub(m, "cmp_refine", "laplace_map_heads_rmse")])
    return rows


def refinement_text(m: dict) -> str:
    """How the refined posterior is made, and what its RML updates did to the fit of its draws."""
    phi = [(m.get(f"cmp_refine_{r}_laplace_draws_phi_median"), m.get(f"cmp_refine_{r}_draws_phi_median"))
           for r in REFERENCES]
    n = m.get(f"cmp_refine_{REFERENCES[0]}_n_samples")
    if n is None or any(a is None or b is None for a, b in phi):  # no RML members on the references
        return ("The posterior predictive mean heads of the Gaussian approximations (linear analysis, refinement) "
                "miss the observed heads by several noise sds even where their MAP fits them at the noise level: "
                "draws spread over directions in which the heads are nonlinear in ln K (an importance-sampling "
                "Pareto-k far above 0.7 says the same); the MAP's own fit is in the next table.")
    same = " / ".join(fmt(m.get(f"cmp_refine_{r}_flow_lpp_same_n"), 4) for r in REFERENCES)
    return ("Where kept, the refined posterior is an ensemble of its "
            f"{n:.0f} checked members (randomized maximum likelihood: each member draws its own prior sample and "
            "noise, starts at the matching draw of the Laplace posterior at the MAP and takes "
            "`glm.refine_rml_iterations` Gauss-Newton updates with the MAP's Jacobian towards the minimizer of its "
            "own perturbed objective, each kept only if that objective falls; the data enter once). Its Table-1 "
            "metrics are of these members, as the smoother's are of its ensemble; a Gaussian fitted per cell to "
            f"so few draws costs LPP by itself (the flow's LPP from its first {n:.0f} draws: {same} on test1 / "
            "test2, against its 2,000-draw values in the table). The Laplace draws the members start from miss "
            "the observed heads by several noise sds even where the MAP fits them at the noise level (median phi "
            + " / ".join(fmt(a, 4) for a, _ in phi) + " on test1 / test2, for 325 observed values): they spread "
            "over directions in which the heads are nonlinear in ln K (an importance-sampling Pareto-k far above "
            "0.7 says the same). The updates bring the members to a median phi of "
            + " / ".join(fmt(b, 4) for _, b in phi) + "; the MAP's own fit is in the next table.")


def comparison_text(m: dict) -> str:
    """The comparison the section leads with: every method on the same data sets, what each costs, how well
    each fits the heads it conditions on, how much information the heads hold, and the paper's R^2 claim."""
    rows = comparison_rows(m)
    if not rows:
        return ""
    n_sub = m.get("cmp_prior_subset_n_sets", 0)
    text = (f"**Every method on the same data sets**: the two reference fields and a fixed subset of {n_sub} "
            "test-split data sets (the first ones of the split, fresh seeded noise; subset columns are means over "
            "them). LPP, coverage and the relative error are of ln K against the true field; the predictive "
            "column is the RMSE of the mean heads of posterior draws run through MODFLOW against the observed "
            "(noisy, sd 0.01 m) heads, so about 0.01 m is a fit at the noise level (smoother: its posterior "
            "ensemble). MODFLOW runs count every run a method makes for one data set, including its checked draws. "
            "The smoother costs about 1,200 runs per data set and per setting, too many for the test subset in the "
            "default pipeline's budget: it is shown on the references only.\n\n"
            + markdown_table(CMP_HEADERS, rows) + "\n")
    if "cmp_refine_n_sets" in m:
        text += (f"Flow + refinement fell back to the flow's draws on {m['cmp_refine_n_fallbacks']} of "
                 f"{m['cmp_refine_n_sets']} data sets: the refined posterior is kept only where its MAP fits the "
                 "heads (RMS misfit within `glm.refine_max_misfit` noise sds) and its ELBO, estimated from the "
                 "checked draws, is above the flow's; at most "
                 f"{m['cmp_refine_max_runs']} MODFLOW runs for one data set. " + refinement_text(m) + "\n\n")
    if "prior_mean_info_gain_64" in m:
        text += ("**What the reduced basis loses.** The linear analysis and the refinement search the MAP in the "
                 "leading prior modes only (64 in the default profile: 65 MODFLOW runs per Jacobian instead of 707) "
                 "and hold the others at the prior; `glm.extend` then adds the information the heads carry on the "
                 "other modes in the linear limit, through the Jacobian at the prior mean, with one checked "
                 "Gauss-Newton step. At the prior mean the leading 64 modes hold "
                 f"{m['prior_mean_info_gain_64']:.1f} of the {m['prior_mean_info_gain']:.1f} nats the heads carry "
                 f"(the leading 32: {m['prior_mean_info_gain_32']:.1f}), but the trailing modes still move the heads "
                 "by many noise sds: a MAP restricted to the leading modes has to absorb their effect, and from the "
                 "prior mean it reaches a different, worse optimum than the full analysis (the paper profile runs "
                 "it over all 706 modes, about 4,000 runs per data set).\n\n")
    info, general = information_rows(m), global_information_rows(m)
    if info or general:
        text += "**How much the heads say, and what the paper's R^2 claim implies.**\n\n"
    if general:
        text += markdown_table(["over all data sets", "value"], general) + "\n"
    if info:
        text += markdown_table(["per data set", "test1", "test2", "test subset (mean)"], info) + "\n"
    if "cmp_glm_explained_median_all" in m:
        text += (f"The per-cell explained variance of the linear analysis (1 - posterior / prior variance) bounds the "
                 "R^2 any posterior mean can reach over many data sets, in the linear limit. Over the "
                 f"{m['cmp_glm_n_sets']} data sets its median is {m['cmp_glm_explained_median_all']:.2f} and only "
                 f"{100 * m['cmp_glm_explained_above_0.8_all']:.1f} % of the cells exceed 0.8, while the paper reports "
                 "R^2 > 0.8 for 13 of the 15 cells it shows (87 %). Under our prior (variance 1, exponential "
                 "covariance with a 1 km correlation length; the paper states neither) that claim is out of reach "
                 "for any method; the paper's prior must have been smoother or its data more informative.\n\n")
    return text
