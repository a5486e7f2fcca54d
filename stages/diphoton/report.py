"""The diphoton task's report section, from metrics.json (no science here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phys_ml.stages.common.report import ReportSection, markdown_table, task_metrics

from . import paper
from .events import COLUMNS
from .plots import FIGURES
from .store import TASK

ORDER = ("data", "mc", "log", "kl", "mmd", "mdmm")


def _bandwidths(sigma) -> str:
    """'0.3', or '(0.1, 0.3, 1) (the mean of their kernels)' for a mixture."""
    if isinstance(sigma, list):
        return f"({', '.join(f'{v:g}' for v in sigma)}) (the mean of their kernels)"
    return f"{sigma:g}"


def _extra_columns(s: dict) -> str:
    """The columns the MMD kernel compares beside the flow's features (diphoton.train.mmd_extra)."""
    names = {"pt": "pT (GeV)", "log_m_gg": "log m_gg"}
    extra = [names[c] for c in s.get("mmd_extra", [])]
    return f" plus standardized {' and '.join(extra)} (beyond the paper's kernel)" if extra else ""


def _setup_line(s: dict | None) -> str:
    if not s:
        return ""
    epochs = s["epochs"]
    if isinstance(epochs, dict):
        epochs = ", ".join(f"{n} ({k})" for k, n in epochs.items())
    return (f"Flow: {s['n_blocks']} MAF blocks of {' x '.join(map(str, s['hidden_units']))} ReLU, at most {epochs} "
            f"epochs, batches {s['batch_size']} (log, KL) and {s['batch_size_mmd']} (MMD, MDMM), MMD form "
            f"{s['mmd_form']} with sigma {_bandwidths(s.get('mmd_sigma', 0.1))} on standardized "
            f"{'log pT, eta, phi' if s.get('log_pt') else 'pT, eta, phi'}{_extra_columns(s)}, MDMM epsilon "
            f"{1 + s['mdmm_epsilon_rel']:.4g} x data-vs-data (paper: 10 blocks of 128 x 128, 1000 epochs, batches "
            f"25,600 and 1,000, sigma 0.1, 6.5 M events).")


def _transformed_lines(m: dict) -> list[str]:
    """Post-processing of the transformed events and how many events it touched (fractions per model)."""
    t = m.get("transformed")
    if not t:
        return []
    cols = [("swapped_fraction", "photons relabelled (pT2 > pT1)"), ("phi_wrapped_fraction", "phi wrapped"),
            ("capped_fraction", "pT or eta capped"), ("outside_selection_fraction", "outside the selection (kept)")]
    cols = [(k, label) for k, label in cols if k in t]
    models = list(t["swapped_fraction"])
    head = ("Transformed events: photon 1 is relabelled as the higher-pT photon"
            + ("; phi is wrapped into [-pi, pi), pT and |eta| capped at the largest of the training events"
               if t.get("physical_range")
               else "") + ". Fractions of events:")
    md = [head, "", markdown_table(["model", *[label for _, label in cols]],
                                   [[k, *[t[c][k] for c, _ in cols]] for k in models])]
    if "corr_max_abs_diff_eta_uncapped" in t:
        free = t["corr_max_abs_diff_eta_uncapped"]
        md += ["The |eta| cap moves events that a flow sends just past the acceptance edge, whose large |eta1 - "
               "eta2| inflates m_gg: without it the largest |r - r_data| would be " + ", ".join(
                   f"{k} {free[k]:.3f} (with it {m['corr_max_abs_diff'][k]:.3f})" for k in models) + ".", ""]
    return md


def _convergence_lines(m: dict) -> list[str]:
    """The stopping rule, the same for every loss, and where each run stopped."""
    conv, s = m.get("convergence"), m.get("setup") or {}
    if not conv:
        return []
    rule = (f"Convergence rule (the same for the four losses): after each epoch a fixed set of "
            f"{s.get('val_events', '?'):,} validation MC events (fixed base noise) is transformed and scored against "
            f"as many validation data events, score = KL / KL_MC + MMD / MMD_MC + C / C_MC: the mean per-feature "
            f"1-D KL of KDEs (as the KL loss: the marginals), the unbiased MMD^2 with the MMD loss's kernel (the "
            f"joint density) and the mean |r - r_data| over all 21 pairs of the six features and m_gg (the "
            f"correlations, to which an MMD with wide kernels is nearly blind), each as a fraction of the untransformed "
            f"MC's, so the MC scores 3. When the score has not improved on its best by more than "
            f"{100 * s.get('min_improvement', 0):g} % for {s.get('patience', '?')} epochs, the RMSProp learning "
            f"rate drops {1 / s.get('lr_drop', 1):g}x (from {s.get('lr_start', '?'):g}); at the plateau where it "
            f"would fall below {s.get('lr_end', '?'):g} the run has converged and stops. The epoch with the lowest "
            f"score is the one evaluated; the test events below are never used for either. (The paper decays the "
            f"rate as a square root from 1e-3 to 1e-5 over a fixed 1000 epochs: a run whose length the rule sets "
            f"has no fixed end to decay towards, so the rate falls in steps at the plateaus instead.)")
    rows = [[k, c["max_epochs"], c["epochs"], c["stopped"], c["best_epoch"], c["score"], c["score_kl"],
             c["score_mmd"], c.get("score_corr"), (c.get("last") or {}).get("score"),
             (c.get("last") or {}).get("score_kl")] for k, c in conv.items()]
    return [rule, "", markdown_table(["model", "max epochs", "epochs run", "stopped by", "best epoch", "score",
                                      "KL / KL_MC", "MMD / MMD_MC", "C / C_MC", "last epoch: score",
                                      "last epoch: KL / KL_MC"], rows)]


def _transport_lines(m: dict) -> list[str]:
    """What moves the correlations: the marginal-only transport, the flows' noise-free part, rank correlations."""
    t = m.get("transport")
    if not t:
        return []
    cols = list(paper.TABLE1_COLUMNS)
    pairs = cols[:5]
    corr, rank, kl = m["correlation"], t["spearman"], t["kl_marginals"]

    def worst(row, ref):
        return max(abs(row[c] - ref[c]) for c in pairs)

    rows = [["data", "Pearson", *[corr["data"][c] for c in cols], None, kl.get("data (training split)")],
            ["data", "Spearman", *[rank["data"][c] for c in cols], None, None],
            ["mc", "Pearson", *[corr["mc"][c] for c in cols], worst(corr["mc"], corr["data"]), kl["mc"]],
            ["mc", "Spearman", *[rank["mc"][c] for c in cols], worst(rank["mc"], rank["data"]), None],
            ["marginal-only", "Pearson", *[t["marginal_transport"][c] for c in cols],
             worst(t["marginal_transport"], corr["data"]), kl["marginal"]],
            ["marginal-only", "Spearman", *[rank["marginal"][c] for c in cols],
             worst(rank["marginal"], rank["data"]), None]]
    for k in t["noise_free"]:
        rows += [[k, "Pearson", *[corr[k][c] for c in cols], worst(corr[k], corr["data"]), kl[k]],
                 [k, "Pearson, z = 0", *[t["noise_free"][k][c] for c in cols],
                  worst(t["noise_free"][k], corr["data"]), None],
                 [k, "Spearman", *[rank[k][c] for c in cols], worst(rank[k], rank["data"]), None]]
    md = ["What moves the correlations. 'marginal-only' is the test MC with each feature moved alone by its "
          "quantile map onto the training data's marginal: a transport at the KL loss's minimum that keeps the rank "
          "(Spearman) correlations of the MC's six features (up to the relabelling of the photons by pT; m_gg, "
          "computed from them, changes). 'z = 0': a flow's output without its base noise (its "
          "deterministic part). Last columns: largest |r - r_data| over the five pairs (Pearson against the data's "
          "Pearson, Spearman against the data's Spearman) and the KL loss's quantity, the mean per-feature 1-D KL "
          "to the test data ('data' row: a second data sample, the floor).", "",
          markdown_table(["sample", "correlation", *cols, "max abs(dr)", "mean 1-D KL"], rows)]
    if t.get("delta"):
        feats = list(next(iter(t["delta"].values()))["own_feature_share"])
        md += ["The flows' delta per feature (flow space: standardized log pT, eta, phi): 'own feature' is the share "
               "of the noise-free delta_j's variance that a function of x_c,j alone explains (1 for a per-feature "
               "map; the rest depends on the event's other features); 'base noise' is the share of var(delta_j) "
               "from the base noise (delta minus its z = 0 value).", "",
               markdown_table(["model", "share", *feats],
                              [[k, label, *[d[key][f] for f in feats]] for k, d in t["delta"].items()
                               for key, label in (("own_feature_share", "own feature"),
                                                  ("noise_share", "base noise"))])]
    if "kl" in t["noise_free"]:
        md += [_kl_explanation(m, worst), ""]
    return md


def _kl_explanation(m: dict, worst) -> str:
    """Why the KL row does (not) match the data's correlations, in numbers from metrics.json."""
    t, corr = m["transport"], m["correlation"]
    rank, kl, eta = t["spearman"], t["kl_marginals"], "eta1,eta2"
    pairs = list(paper.TABLE1_COLUMNS)[:5]
    worst_pair = max(pairs, key=lambda c: abs(corr["kl"][c] - corr["data"][c]))
    gap = rank["data"][eta] - rank["mc"][eta]
    moved = (rank["kl"][eta] - rank["mc"][eta]) / gap if gap else float("nan")
    text = (f"Why the KL row does not follow the data's correlations: every transport that gives the data's six "
            f"marginals is at the KL loss's minimum. The simplest, moving each feature alone by its quantile map, "
            f"reaches a mean 1-D KL of {kl['marginal']:.3g} before relabelling (a second data sample: "
            f"{kl['data (training split)']:.3g}; the MC: {kl['mc']:.3g}) and keeps the MC's eta1,eta2 rank "
            f"correlation ({rank['marginal'][eta]:.3f}; data {rank['data'][eta]:.3f}); its largest |r - r_data| is "
            f"{worst(t['marginal_transport'], corr['data']):.3f}. The KL flow reaches a mean 1-D KL of "
            f"{kl['kl']:.3g}, yet its largest |r - r_data| is {worst(corr['kl'], corr['data']):.3f} ({worst_pair}: "
            f"{corr['kl'][worst_pair]:.3f} against the data's {corr['data'][worst_pair]:.3f} and the MC's "
            f"{corr['mc'][worst_pair]:.3f}), {worst(t['noise_free']['kl'], corr['data']):.3f} without its base "
            f"noise, and its mean |r| of all other pairs is {corr['kl']['others']:.3f} (the paper's KL row: "
            f"{paper.TABLE1['kl'][5]:.3f}, where it too fails); its eta1,eta2 rank correlation moved "
            f"{100 * abs(moved):.0f} % of the MC-to-data gap {'towards' if moved > 0 else 'away from'} the data's.")
    delta = t.get("delta", {})
    if "kl" in delta:
        own, noise = delta["kl"]["own_feature_share"], delta["kl"]["noise_share"]
        text += (f" What moves them is the structure of its delta: a function of each feature alone explains only "
                 f"{min(own.values()):.2f} to {max(own.values()):.2f} of the variance of the noise-free delta_j")
        if "log" in delta:
            text += f" (log-loss flow: {min(delta['log']['own_feature_share'].values()):.2f} or more)"
        text += (f", and the base noise carries {min(noise.values()):.2f} to {max(noise.values()):.2f} of "
                 f"var(delta_j)")
        if "log" in delta:
            log_noise = delta["log"]["noise_share"].values()
            text += f" (log-loss flow: {min(log_noise):.2f} to {max(log_noise):.2f})"
        text += (": the KL flow meets the marginals by mixing each event's features into each delta_j, which the "
                 "loss neither asks for nor penalises, so where its correlations land is set by that mixing, an "
                 "accident of the optimisation, not by the data.")
    if "log" in t["noise_free"] and "log" in delta:
        noise = delta["log"]["noise_share"].values()
        text += (f" The log-loss flow, by contrast, is not data-like without its noise (largest |r - r_data| "
                 f"{worst(t['noise_free']['log'], corr['data']):.3f} at z = 0): with unpaired events its loss is "
                 f"lowest when x_c + delta is a fresh data event whatever x_c, so its noise carries "
                 f"{min(noise):.2f} to {max(noise):.2f} of var(delta_j) and the data's correlations come with it.")
    return text


def _noise_line(m: dict) -> str:
    """How large a correlation difference is from the finite evaluation sample alone."""
    n = m["n_events"]
    if "corr_diff_noise" not in m:
        return f"Statistical precision of one correlation at {n} events: about {1 / np.sqrt(n):.3f}."
    noise = m["corr_diff_noise"]
    worst = max(noise, key=noise.get)
    return (f"Evaluation on {n} test events per sample (never trained on, nor used to stop or pick a "
            f"checkpoint). The data's correlations carry the bootstrap errors in the '± 1 sigma' row; a "
            f"model-minus-data difference of two independent samples of this size carries about sqrt(2) times that "
            f"('2 sigma noise' row: twice that), at most {noise[worst]:.4f} ({worst}) at 1 sigma, so differences "
            f"below about {2 * noise[worst]:.3f} are within 2 sigma of noise.")


def report_section(data_dir: Path) -> ReportSection | None:
    task_dir = Path(data_dir) / TASK
    m = task_metrics(data_dir, TASK)
    if m is None:
        return None
    cols = list(paper.TABLE1_COLUMNS)
    rows = []
    order = [k for k in ORDER if k in m["correlation"]]
    for k in order:
        ours = m["correlation"][k]
        rows.append([k, "ours", *[ours[c] for c in cols], m["corr_max_abs_diff"].get(k)])
        if k == "data" and "corr_stderr_data" in m:
            rows.append(["data", "± 1 sigma (bootstrap)", *[m["corr_stderr_data"][c] for c in cols], None])
            noise2 = {c: 2 * v for c, v in m["corr_diff_noise"].items()}
            rows.append(["model - data", "2 sigma noise", *[noise2.get(c) for c in cols], max(noise2.values())])
        if k in paper.TABLE1:
            p = paper.TABLE1[k]
            pdiff = max(abs(p[i] - paper.TABLE1["data"][i]) for i in range(5)) if k != "data" else None
            rows.append([k, "paper", *p, pdiff])
    md = [f"Samples: **{m['source']}**"
          + (" (the documented simulated substitute: not ATLAS data, so our numbers compare in pattern, not "
             "value, with the paper's)." if m["source"] == "simulated" else "."),
          "", _setup_line(m.get("setup")), "", _cost_line(m.get("setup")), "", *_convergence_lines(m),
          "", "Pearson correlations (paper Table 1; last column: largest |r - r_data| over the five pairs)", "",
          markdown_table(["sample", "source", *cols, "max abs(dr)"], rows),
          "Data-vs-X classifier AUC (0.5 = indistinguishable; the paper gives curves only, Fig. 3)", "",
          markdown_table(["sample", "AUC"], [[k, m["auc"][k]] for k in ["shuffled data", *order[1:]]]),
          "1-D Wasserstein distance to data, in units of the data's standard deviation", "",
          markdown_table(["sample", *COLUMNS], [[k, *[m["wasserstein"][k][c] for c in COLUMNS]] for k in order[1:]]),
          _noise_line(m), "", *_transport_lines(m), *_transformed_lines(m)]
    if "mdmm" in m:
        d = m["mdmm"]
        md += [f"MDMM: epsilon {d['epsilon']:.4g} against data-vs-data MMD {d['data_mmd']:.4g} "
               f"(paper: {paper.MDMM_EPSILON} vs {paper.DATA_VS_DATA_MMD}); at the evaluated epoch lambda {d['lambda_final']:.4g}, "
               f"L1 {d['l1_final']:.4g}, L2 {d['l2_final']:.4g}.", ""]
    md += ["Targets (issues 5 and 24): " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in m["targets"].items()),
           ""]
    figs = [task_dir / "figures" / f for f in FIGURES if (task_dir / "figures" / f).is_file()]
    return ReportSection("Higgs diphoton conditional normalizing flow", "\n".join(md), figs)


def _cost_line(s: dict | None) -> str:
    """What the training cost, as counts (wall times are not pipeline outputs)."""
    cost = (s or {}).get("cost")
    if not cost:
        return ""
    parts = [f"{k} {c['epochs']} epochs × {c['steps_per_epoch']} steps of {c['batch']:,} events "
             f"({c['epochs'] * c['steps_per_epoch']:,} gradient steps)" for k, c in cost.items()]
    return ("Training cost: " + "; ".join(parts) + ". Wall times are in `data/timings/diphoton-train.json` (not a "
            "pipeline output); `benchmarks/diphoton_bench.py` measures speed.")
