"""Evaluation of the prior, the smoother and the amortized posterior (no file I/O: arrays in, metrics and
figures out; the `evaluate` stage reads the artifacts and writes metrics.json and the figures).

- Table-1 metrics (`metrics.summarize`) of 2,000 prior draws, of each smoother ensemble (base realization left
  out) and of the flow's samples on both reference fields; the relative errors also with K in m/s, as a guide
  (they are not shift-invariant in ln K).
- The flow: errors with fewer observed steps from the same model, posterior-predictive heads (MODFLOW runs of
  posterior draws through the same runner as everything else), and over the test split the R^2 of the posterior
  means per parameter (paper Fig. 8), mean LPP and the calibration curve (empirical vs nominal coverage).
Counts that state the cost (samples drawn, model runs) are metrics; wall times are not (see `timings`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

import json
from dataclasses import asdict

from phys_ml.stages.common.timings import Stopwatch

from . import plots
from .config import FlowConfig
from .flow import posterior_samples
from .metrics import coverage_curve, covered, log_predictive_probability, r2_per_parameter, summarize
from .store import HEADS_SHAPE, N_TIMES

LN_DAY_S = math.log(86400.0)  # ln K (m/s) = ln K (m/d) - ln 86400
N_PRIOR_DRAWS = 2000
Predictive = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # lnk (n, 706) -> heads (n, 325), ok (n,)


def table1_metrics(samples: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    m = summarize(samples, truth)
    m_si = summarize(samples - LN_DAY_S, truth - LN_DAY_S)
    m.update({f"{k}_si": m_si[k] for k in ("average_relative_error", "relative_error")})
    return m


def prior_metrics(prior, seed: int, refs: dict) -> dict[str, float]:
    """The "prior only" rows: Table-1 metrics of 2,000 prior draws (what the smoother must beat)."""
    draws = prior.sample(N_PRIOR_DRAWS, np.random.default_rng([seed, 3]))
    return {f"prior_{name}_{k}": v for name, ref in refs.items() for k, v in table1_metrics(draws, ref["lnk"]).items()}


def smoother_metrics(setting: str, name: str, lnk: np.ndarray, heads: np.ndarray, is_base: np.ndarray,
                     meta: dict, ref: dict) -> tuple[dict, dict]:
    """Metrics ``ies_<setting>_<ref>_*`` of one posterior ensemble and its two figures."""
    post, sim = lnk[~is_base], heads[~is_base]
    truth, key = ref["lnk"], f"ies_{setting}_{name}"
    m = {f"{key}_{k}": v for k, v in table1_metrics(post, truth).items()}
    m.update({f"{key}_n_real": int(len(post)), f"{key}_n_runs": meta["n_runs"],
              f"{key}_final_mean_phi": meta["history"][-1]["mean_phi_actual"],
              f"{key}_lnk_sd_mean": float(post.std(0, ddof=1).mean()),
              f"{key}_heads_rmse": float(np.sqrt(np.mean((sim.mean(0) - ref["heads_clean"]) ** 2))),
              f"{key}_heads_rmse_obs": float(np.sqrt(np.mean((sim.mean(0) - ref["heads_obs"]) ** 2)))})
    figs = {f"fields_{setting}_{name}.png": plots.field_panels(
                truth, post.mean(0), post.std(0, ddof=1), covered(post, truth),
                f"{name}: IES posterior, localization {setting}"),
            f"heads_{setting}_{name}.png": plots.head_bands(
                sim, ref["heads_clean"], ref["heads_obs"], f"{name}: IES posterior predictive heads, "
                f"localization {setting}")}
    return m, figs


def _truncate(mask: np.ndarray, steps: int) -> np.ndarray:
    out = mask.copy()
    out[:, steps:] = False
    return out


def flow_reference_metrics(model, cfg: FlowConfig, r: int, name: str, ref: dict, ies_heads: np.ndarray | None,
                           predictive: Predictive, watch: Stopwatch) -> tuple[dict, dict]:
    """Metrics ``flow_<ref>_*`` of the flow on reference field number ``r`` and its figures; ``ies_heads`` (the
    smoother's posterior heads, or None) are drawn beside the flow's predictive heads. ``watch`` times the
    drawing of the ``n_samples`` samples (after a warm-up) as ``flow_<ref>_sample_s``."""
    ev = cfg.evaluate
    truth, obs = ref["lnk"], ref["heads_obs"].reshape(HEADS_SHAPE)
    full = np.ones(HEADS_SHAPE, dtype=bool)
    posterior_samples(model, obs, full, 10, seed=0)  # warm-up, so the timing is of sampling alone
    with watch(f"flow_{name}_sample_s"):
        samples = posterior_samples(model, obs, full, ev.n_samples, seed=cfg.seed + r)
    m = {f"flow_{name}_{k}": v for k, v in table1_metrics(samples, truth).items()}
    m[f"flow_{name}_n_samples"] = ev.n_samples
    for steps in ev.steps:
        draws = posterior_samples(model, obs, _truncate(full, steps), ev.n_samples_test, seed=cfg.seed + 100)
        m[f"flow_{name}_relative_error_steps{steps}"] = summarize(draws, truth)["relative_error"]
    figs = {f"flow_fields_{name}.png": plots.field_panels_flow(truth, samples, f"{name}: amortized posterior (flow)")}
    if ev.n_predictive:
        pred, ok = predictive(samples[: ev.n_predictive])
        clean = ref["heads_clean"]
        m[f"flow_{name}_predictive_failed"] = int((~ok).sum())
        m[f"flow_{name}_predictive_rmse"] = float(np.sqrt(np.mean((pred[ok].mean(0) - clean) ** 2)))
        lo, hi = np.percentile(pred[ok], [2.5, 97.5], axis=0)
        m[f"flow_{name}_predictive_coverage95"] = float(np.mean((clean >= lo) & (clean <= hi)))
        figs[f"flow_heads_{name}.png"] = plots.head_bands_compare(
            pred[ok], ies_heads, clean, ref["heads_obs"], f"{name}: posterior predictive heads, flow vs smoother")
    return m, figs


def heldout_metrics(model, cfg: FlowConfig, lnk: np.ndarray, heads: np.ndarray,
                       noise_sd: float) -> tuple[dict, dict]:
    """Posterior of every test-split data set (fresh seeded noise): R^2, LPP, calibration, errors vs steps."""
    ev = cfg.evaluate
    rng = np.random.default_rng([cfg.seed, 8])
    levels = np.asarray(ev.levels)
    full = np.ones(HEADS_SHAPE, dtype=bool)
    means, lpps, curves = [], [], []
    errors: dict[int, list[float]] = {s: [] for s in ev.steps}
    for k, (truth, clean) in enumerate(zip(lnk, heads)):
        obs = clean + noise_sd * rng.standard_normal(clean.shape)
        draws = posterior_samples(model, obs, full, ev.n_samples_test, seed=cfg.seed + 1000 + k)
        mean, sd = draws.mean(0), draws.std(0, ddof=1)
        means.append(mean)
        lpps.append(log_predictive_probability(mean, sd, truth))
        curves.append(coverage_curve(draws, truth, levels))
        for steps in ev.steps:
            if steps == N_TIMES:
                errors[steps].append(summarize(draws, truth)["relative_error"])
                continue
            short = posterior_samples(model, obs, _truncate(full, steps), ev.n_samples_test, seed=cfg.seed + 2000 + k)
            errors[steps].append(summarize(short, truth)["relative_error"])
    r2 = r2_per_parameter(np.array(means), lnk)
    curve = np.mean(curves, axis=0)
    out: dict[str, float | int] = {"flow_test_n_sets": len(lnk), "flow_test_mean_lpp": float(np.mean(lpps)),
                                   "flow_test_r2_median": float(np.median(r2)),
                                   "flow_test_r2_share_above_0.8": float(np.mean(r2 > 0.8)),
                                   "flow_test_r2_share_above_0.5": float(np.mean(r2 > 0.5))}
    out.update({f"flow_test_coverage{round(100 * lv)}": float(c) for lv, c in zip(levels, curve)})
    out.update({f"flow_test_relative_error_steps{s}": float(np.mean(v)) for s, v in errors.items()})
    figs = {"flow_calibration.png": plots.calibration(levels, np.array(curves)), "flow_r2.png": plots.r2_map(r2),
            "flow_steps.png": plots.errors_vs_steps({s: np.array(v) for s, v in errors.items()})}
    return out, figs


# ---------------------------------------------------------------- rows of the linear analysis and the refinement
def _draw_fields(prefix: str, check) -> dict:
    return {} if check is None else {f"{prefix}_{k}": v for k, v in asdict(check).items()}


def _laplace_fields(prefix: str, lap, prior, obs: np.ndarray) -> dict:
    ev = lap.explained_variance(prior)
    return {f"{prefix}_iterations": sum(h.accepted for h in lap.history[1:]), f"{prefix}_search_runs": lap.n_runs,
            f"{prefix}_stop_reason": lap.stop_reason, f"{prefix}_objective": lap.objective, f"{prefix}_phi": lap.phi,
            f"{prefix}_map_heads_rmse": float(np.sqrt(np.mean((lap.sim_map - obs) ** 2))),
            f"{prefix}_info_gain": lap.info_gain(), f"{prefix}_effective_dim": lap.effective_dim(),
            f"{prefix}_explained_median": float(np.median(ev)),
            f"{prefix}_explained_above_0.8": float(np.mean(ev > 0.8)),
            f"{prefix}_explained_variance": ev.tolist(),
            f"{prefix}_history": json.dumps([asdict(h) for h in lap.history])}


def laplace_row(dataset: dict, lap, prior, samples: np.ndarray, check, n_draws: int) -> dict:
    """One data set of the linear analysis: Table-1 metrics of its Laplace draws, the search, the information
    it finds and the MODFLOW runs of its draws (predictive fit, ELBO, Pareto-k)."""
    row = {"name": dataset["name"], "n_runs": lap.n_runs + n_draws}
    row.update(table1_metrics(samples, dataset["lnk"]))
    row.update(_laplace_fields("laplace", lap, prior, dataset["heads_obs"]))
    row.update(_draw_fields("draws", check))
    return row


def refine_row(dataset: dict, res, prior, flow_samples: np.ndarray, samples: np.ndarray, n_draws: int) -> dict:
    """One data set of flow + refinement: the chosen posterior's Table-1 metrics (the refined one, or the flow's
    after a fallback), the flow's own metrics beside (``flow_*``), the search and both draw checks."""
    row = {"name": dataset["name"], "n_runs": res.n_runs, "accepted": res.accepted, "reason": res.reason}
    row.update(table1_metrics(samples, dataset["lnk"]))
    row.update({f"flow_{k}": v for k, v in table1_metrics(flow_samples, dataset["lnk"]).items()})
    row.update(_draw_fields("flow_draws", res.flow_check))
    row.update(_draw_fields("draws", res.kept_check))
    row.update(_draw_fields("laplace_draws", res.refined_check))
    row["n_samples"] = len(samples)
    # the flow's LPP from as many draws as the refined posterior has: what the sample size alone costs
    row["flow_lpp_same_n"] = table1_metrics(flow_samples[: len(samples)], dataset["lnk"])["lpp"]
    row["rml_accepted"] = json.dumps(None if res.ensemble is None else res.ensemble.accepted)
    if res.laplace is not None:
        row.update(_laplace_fields("laplace", res.laplace, prior, dataset["heads_obs"]))
    return row


def row_line(row: dict) -> str:
    """A log line of one data set's row."""
    return ((f"{row['reason']}; " if "reason" in row else "")
            + f"LPP {row['lpp']:.1f}, rel. L2 {100 * row['relative_error']:.1f} %, coverage "
            f"{100 * row['coverage95']:.0f} %, predictive heads RMSE "
            f"{row.get('draws_predictive_mean_rmse', math.nan):.4f} m, "
            f"{row['n_runs']} runs")


# ---------------------------------------------------------------- every method on the comparison data sets
CMP_METRICS = ("lpp", "relative_error", "average_relative_error", "coverage95", "relative_error_si",
               "average_relative_error_si", "draws_predictive_mean_rmse", "n_runs")
GLM_EXTRA = ("laplace_info_gain", "laplace_effective_dim", "laplace_explained_median", "laplace_explained_above_0.8",
             "laplace_map_heads_rmse", "laplace_phi", "laplace_iterations", "draws_pareto_k", "draws_elbo",
             "draws_phi_median")
REFINE_EXTRA = ("accepted", "laplace_map_heads_rmse", "laplace_phi", "laplace_iterations", "draws_elbo",
                "flow_draws_elbo", "flow_draws_pareto_k", "laplace_draws_pareto_k", "draws_phi_median",
                "flow_draws_phi_median", "laplace_draws_phi_median", "n_samples", "flow_lpp_same_n")


def _finite(v) -> bool:
    return v is not None and (isinstance(v, (bool, str)) or math.isfinite(float(v)))


def _summaries(key: str, rows: list[dict], fields: tuple[str, ...], references: tuple[str, ...]) -> dict:
    """Per reference ``<key>_<ref>_<field>``, and over the test-split sets the mean ``<key>_subset_<field>``
    (Pareto-k: the share of sets above 0.7 instead, as it may be infinite)."""
    out: dict = {}
    test = [r for r in rows if r["name"] not in references]
    for r in rows:
        if r["name"] in references:
            out.update({f"{key}_{r['name']}_{f}": r[f] for f in fields if _finite(r.get(f))})
    for f in fields:
        if f.endswith("pareto_k"):
            vals = [float(r[f]) for r in test if r.get(f) is not None and not math.isnan(float(r[f]))]
            if vals:
                out[f"{key}_subset_{f}_above_0.7"] = float(np.mean(np.array(vals) > 0.7))
            continue
        vals = [float(r[f]) for r in test if _finite(r.get(f))]
        if vals:
            out[f"{key}_subset_{f}"] = float(np.mean(vals))
    if test:
        out[f"{key}_subset_n_sets"] = len(test)
    return out


def comparison_metrics(map_rows: list[dict] | None, refine_rows: list[dict] | None, prior, seed: int,
                       sets: list[dict], references: tuple[str, ...]) -> dict:
    """``cmp_<method>_<reference>_<metric>`` and ``cmp_<method>_subset_<metric>`` (the mean over the test-split
    data sets of the comparison) for the prior, the flow, the linear analysis and flow + refinement."""
    out: dict = {}
    draws = prior.sample(N_PRIOR_DRAWS, np.random.default_rng([seed, 3]))
    prior_rows = [{"name": s["name"], "n_runs": 0, **table1_metrics(draws, s["lnk"])} for s in sets]
    out.update(_summaries("cmp_prior", prior_rows, CMP_METRICS, references))
    if map_rows:
        out.update(_summaries("cmp_glm", map_rows, CMP_METRICS + GLM_EXTRA, references))
        ev = np.array([r["laplace_explained_variance"] for r in map_rows])
        out.update({"cmp_glm_explained_median_all": float(np.median(ev)),
                    "cmp_glm_explained_above_0.8_all": float(np.mean(ev > 0.8)),
                    "cmp_glm_n_sets": len(map_rows)})
    if refine_rows:
        flow = [{"name": r["name"], "n_runs": 0, "draws_predictive_mean_rmse": r["flow_draws_predictive_mean_rmse"],
                 **{k: r[f"flow_{k}"] for k in CMP_METRICS[:6]}}
                for r in refine_rows]
        out.update(_summaries("cmp_flow", flow, CMP_METRICS, references))
        kept = [r if r["accepted"] else {**r, "laplace_map_heads_rmse": None} for r in refine_rows]  # its MAP's fit
        out.update(_summaries("cmp_refine", kept, CMP_METRICS + REFINE_EXTRA, references))  # where it was kept
        out.update({"cmp_refine_n_sets": len(refine_rows),
                    "cmp_refine_n_fallbacks": int(sum(not r["accepted"] for r in refine_rows)),
                    "cmp_refine_max_runs": int(max(r["n_runs"] for r in refine_rows))})
    return out


def information_metrics(jac0: np.ndarray, noise_sd: float, z_val: np.ndarray, best_val_nll: float | None) -> dict:
    """What the heads can say at the prior mean (the Jacobian there, linear limit) and what the flow learned:
    its validation NLL below the prior's (``flow_info_captured``, nats)."""
    h = (jac0 / noise_sd).T @ (jac0 / noise_sd)
    eig = np.clip(np.linalg.eigvalsh(h), 0, None)
    diag = np.diag(h)
    out = {"prior_mean_info_gain": float(0.5 * np.log1p(eig).sum()),
           "prior_mean_effective_dim": float(np.sum(eig / (1 + eig))),
           "prior_mean_jacobian_modes": int(jac0.shape[1])}
    for k in (32, 64):
        if jac0.shape[1] > k:
            out[f"prior_mean_trace_share_{k}"] = float(diag[:k].sum() / diag.sum())
            sub = np.clip(np.linalg.eigvalsh(h[:k, :k]), 0, None)
            out[f"prior_mean_info_gain_{k}"] = float(0.5 * np.log1p(sub).sum())
    prior_nll = float(np.mean(0.5 * (z_val**2).sum(1)) + 0.5 * z_val.shape[1] * math.log(2 * math.pi))
    out["prior_val_nll"] = prior_nll
    if best_val_nll is not None:
        out["flow_info_captured"] = prior_nll - best_val_nll
    return out
