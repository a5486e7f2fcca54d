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


def _setup_line(s: dict | None) -> str:
    if not s:
        return ""
    epochs = s["epochs"]
    if isinstance(epochs, dict):
        epochs = ", ".join(f"{n} ({k})" for k, n in epochs.items())
    return (f"Flow: {s['n_blocks']} MAF blocks of {' x '.join(map(str, s['hidden_units']))} ReLU, {epochs} "
            f"epochs, batches {s['batch_size']} (log, KL) and {s['batch_size_mmd']} (MMD, MDMM), MMD form "
            f"{s['mmd_form']} with sigma {s.get('mmd_sigma', 0.1):g} on standardized "
            f"{'log pT, eta, phi' if s.get('log_pt') else 'pT, eta, phi'}, MDMM epsilon "
            f"{1 + s['mdmm_epsilon_rel']:.4g} x data-vs-data (paper: 10 blocks of 128 x 128, 1000 epochs, batches "
            f"25,600 and 1,000, sigma 0.1, 6.5 M events).")


def _transformed_lines(m: dict) -> list[str]:
    """Post-processing of the transformed events and how many events it touched (fractions per model)."""
    t = m.get("transformed")
    if not t:
        return []
    cols = [("swapped_fraction", "photons relabelled (pT2 > pT1)"), ("phi_wrapped_fraction", "phi wrapped"),
            ("pt_capped_fraction", "pT capped"), ("outside_selection_fraction", "outside the selection (kept)")]
    cols = [(k, label) for k, label in cols if k in t]
    models = list(t["swapped_fraction"])
    head = ("Transformed events: photon 1 is relabelled as the higher-pT photon"
            + ("; phi is wrapped into [-pi, pi) and pT capped at the largest training pT" if t.get("physical_range")
               else "") + ". Fractions of events:")
    return [head, "", markdown_table(["model", *[label for _, label in cols]],
                                     [[k, *[t[c][k] for c, _ in cols]] for k in models])]


def _noise_line(m: dict) -> str:
    """How large a correlation difference is from the finite evaluation sample alone."""
    n = m["n_events"]
    if "corr_diff_noise" not in m:
        return f"Statistical precision of one correlation at {n} events: about {1 / np.sqrt(n):.3f}."
    noise = m["corr_diff_noise"]
    worst = max(noise, key=noise.get)
    return (f"Evaluation on {n} held-out events per sample. The data's correlations carry the bootstrap errors in "
            f"the '± 1 sigma' row; a model-minus-data difference of two independent samples of this size carries "
            f"about sqrt(2) times that, at most {noise[worst]:.4f} ({worst}), so differences below about "
            f"{2 * noise[worst]:.3f} are within 2 sigma of noise.")


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
        if k in paper.TABLE1:
            p = paper.TABLE1[k]
            pdiff = max(abs(p[i] - paper.TABLE1["data"][i]) for i in range(5)) if k != "data" else None
            rows.append([k, "paper", *p, pdiff])
    md = [f"Samples: **{m['source']}**"
          + (" (the documented simulated substitute: not ATLAS data, so our numbers compare in pattern, not "
             "value, with the paper's)." if m["source"] == "simulated" else "."),
          "", _setup_line(m.get("setup")), "", _cost_line(m.get("setup")),
          "", "Pearson correlations (paper Table 1; last column: largest |r - r_data| over the five pairs)", "",
          markdown_table(["sample", "source", *cols, "max |dr|"], rows),
          "Data-vs-X classifier AUC (0.5 = indistinguishable; the paper gives curves only, Fig. 3)", "",
          markdown_table(["sample", "AUC"], [[k, m["auc"][k]] for k in ["shuffled data", *order[1:]]]),
          "1-D Wasserstein distance to data, in units of the data's standard deviation", "",
          markdown_table(["sample", *COLUMNS], [[k, *[m["wasserstein"][k][c] for c in COLUMNS]] for k in order[1:]]),
          _noise_line(m), "", *_transformed_lines(m)]
    if "mdmm" in m:
        d = m["mdmm"]
        md += [f"MDMM: epsilon {d['epsilon']:.4g} against data-vs-data MMD {d['data_mmd']:.4g} "
               f"(paper: {paper.MDMM_EPSILON} vs {paper.DATA_VS_DATA_MMD}); final lambda {d['lambda_final']:.4g}, "
               f"L1 {d['l1_final']:.4g}, L2 {d['l2_final']:.4g}.", ""]
    md += ["Targets (issue 5): " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in m["targets"].items()),
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
