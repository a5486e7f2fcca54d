"""The rre section of the report, read from the records (results/*.parquet), solver.json and metrics.json."""

from __future__ import annotations

from pathlib import Path

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.report import ReportSection, fmt, markdown_table, ratio

from . import paper, store

DIVERGED = "diverged"
PROTOCOL = (
    "**Protocol (no choice reads the truth).** The residual weight w in L = L_D + w L_RRE (both terms scaled to "
    "order one: psi by half the sensor range, the RRE residual by (theta_s - theta_r) / t_end, the boundary flux "
    "residual by (theta_s - theta_r) lz / t_end) is chosen by the train stage for every setting: one full-batch "
    "Adam network per candidate w is trained on the setting's sensors minus a held-out block, and the w with the "
    "lowest RMS misfit on the held-out block wins (ties to the larger w). The block is one sensor layer of the "
    "setting (the middle of an odd number, the deeper of two: it scores what the network gives away from the "
    "sensor depths, where the physics has to fill in) or "
    "the latest 20 % of the training window (forecast: it scores extrapolation in time). The train stage never "
    "opens the solution table (a test runs it with that file deleted). Learning rates are the values committed "
    "before this protocol; how they were first picked is not recorded, and the protocol does not select them. "
    "Iterations are the paper's count for full batch (3,000; mini-batch 3,000 of the paper's 10,000) and a "
    "convergence rule marks each row: 'converged' means the best training loss improved by less than 10 % over "
    "the last quarter of the run (training loss only). Every physics run first fits the data alone for half its "
    "iterations (`rre.train.warmup`), then trains L_D + w L_RRE. L_RRE includes the boundary conditions "
    "the solver used (the known evaporation flux through the top face, no flow through the bottom and sides): "
    "the paper's residual alone is blind to the forcing.\n"
)
WHY = (
    "Why the physics term helps little where it does not pay (read the L_RRE columns): the solver's own "
    "solution meets eq. 6 to L_RRE of order 1e-5 on its grid, but the 5 x 10 network trained with the term "
    "ends orders of magnitude above that. Within this budget the network does not meet the physics; the "
    "residual then acts as a penalty that competes with the data, the held-out scores mostly rise with w "
    "from 0.001 up (selection table), and the protocol keeps w small or at 0. At a small w the term acts as "
    "a smoothness prior where the data leave gaps; where the field is smooth in depth and horizontally "
    "uniform (evaporation), depth interpolation is already within about a per cent. The held-out block is "
    "also only a proxy: where the errors are lateral (patch, 5 locations) it can prefer a w that raises "
    "the error.\n"
)
EVERY = (
    "Every network in a row has the same optimizer, iteration budget, initial weights and sensors; "
                  "'data-only' is the same network with w = 0. Sparse settings keep the given number of the "
                  "generated sensor locations (a seeded choice) and layers (evenly spaced, ends kept); the forecast "
                  "trains on the first half of the record and is scored on the later half, where interpolation "
                  "holds the last readings (persistence).\n"
)
SOIL_NOTE = (
    "theta_s and theta_r are known; alpha, n and K_s start from `rre.train.studies.soil.init` and are "
                  "learned from all the sensors through the physics term (after a data-only warm-up of the network), "
                  "with w the best nonzero candidate of the Table 1 selection. Figure `study_soil.png`: the learned "
                  "curves against the solver's.\n"
)
SOIL_LIMITS = (
    "The soil enters only through the residual, which the network does not meet (L_RRE above), so the "
                  "parameters absorb the network's derivative errors; and K_s is K at psi = 0, outside the range the "
                  "data cover (shaded in the figure), so alpha and K_s trade off along the conductivity curve (the "
                  "learned K is closest to the solver's in the dry part of that range). On the solver's own derivatives (finite "
                  "differences, no network; tests/rre/test_soil_learning.py) the same fit recovers alpha and n within "
                  "a few per cent.\n"
)


def _order(r: dict) -> tuple:
    """The paper's order: mini-batch then full batch; GD, RMSprop, Adam, then any other optimizer."""
    known = ["gd", "rmsprop", "adam"]
    opt = r["optimizer"]
    return (r["override"], r["batch"] != "mini", known.index(opt) if opt in known else len(known), opt,
            r["residual_weight"])


def _error(r: dict, key: str):
    return DIVERGED if r["diverged"] else r[key]


def table1_rows(runs: list[dict], case: str) -> list[list]:
    rows = []
    for r in sorted((r for r in runs if r["case"] == case and r["setting"] == "table1" and r["kind"] == "run"),
                    key=_order):
        pp = paper.TABLE1.get((r["optimizer"], r["batch"]), (None, None)) \
            if case == "evaporation" and not r["override"] else (None, None)
        label = r["optimizer"] + (" data-only" if r["override"] and r["residual_weight"] == 0 else "")
        ok = not r["diverged"]
        rows.append([label, r["batch"], r["residual_weight"], _error(r, "re_psi"), pp[0],
                     ratio(r["re_psi"], pp[0]) if ok else None, _error(r, "re_theta"), pp[1],
                     ratio(r["re_theta"], pp[1]) if ok else None, r["final_l_data"], r["final_l_rre"],
                     r["iterations_run"], DIVERGED if r["diverged"] else ("yes" if r["converged"] else "no"),
                     r["iterations_to_converge"]])
    base = next(r for r in runs if r["case"] == case and r["setting"] == "table1" and r["kind"] == "interpolation")
    rows.append(["sensor interpolation", "-", None, base["re_psi"], None, None, base["re_theta"], None, None, None,
                 None, None, None, None])
    return rows


TABLE1_HEADERS = ["optimizer", "batch", "w", "re_psi", "paper", "ratio", "re_theta", "paper", "ratio", "L_D", "L_RRE",
                  "iterations", "converged", "to 10 % of final"]
STUDY_HEADERS = ["case", "setting", "probes", "errors at", "w (protocol)", "re_psi P-DL", "re_psi data-only",
                 "re_psi interpolation", "gain (best other / P-DL)", "re_theta P-DL", "re_theta data-only",
                 "re_theta interp.", "L_RRE P-DL", "L_RRE data-only", "converged"]


def _solver_line(case: str, solver: dict) -> str:
    s = solver["cases"][case]
    m = s.get("mrst_like")
    if m is not None:
        mrst = (f"MRST-like loose stepping ({m['steps']} steps, {m['picard_iterations']} Picard iterations) differs by "
                f"re_psi {fmt(m['re_psi'], 3)}, re_theta {fmt(m['re_theta'], 3)}")
    elif solver["stepping"] == "mrst":
        mrst = "MRST-like comparison: – (the solution itself uses the MRST-like stepping, rre.generate.stepping: mrst)"
    else:
        mrst = "MRST-like comparison: – (not run: rre.generate.compare_mrst is false)"
    return (f"Solver ({case}): {s['steps']} steps, {s['picard_iterations']} Picard iterations, water lost "
            f"{fmt(s['water_lost_cm'])} cm vs integrated top flux {fmt(s['flux_out_cm'])} cm (relative mass-balance "
            f"error {fmt(s['mass_balance_rel_error'], 2)}); {mrst}.\n")


def study_rows(runs: list[dict], cases: list[str]) -> list[list]:
    rows = []
    for case in cases:
        names = dict.fromkeys(r["setting"] for r in runs if r["case"] == case and r["kind"] == "pdl")
        for name in sorted(names, key=lambda n: (n == "forecast", n)):
            k = {r["kind"]: r for r in runs if r["case"] == case and r["setting"] == name}
            pdl, data, interp = (k[x] for x in ("pdl", "data", "interpolation"))
            vals = [pdl["re_psi"], data["re_psi"], interp["re_psi"]]
            gain = min(vals[1:]) / vals[0] if None not in vals and vals[0] > 0 else None
            where = f"t > {pdl['t_split']:.0f} s" if pdl["t_split"] is not None else "all"
            rows.append([case, name, pdl["probes"], where, pdl["residual_weight"], _error(pdl, "re_psi"),
                         _error(data, "re_psi"), interp["re_psi"], gain, _error(pdl, "re_theta"),
                         _error(data, "re_theta"), interp["re_theta"], pdl["final_l_rre"], data["final_l_rre"],
                         "yes" if pdl["converged"] and data["converged"] else "no"])
    return rows


def _beats_line(st: list[list]) -> str:
    """Counts, from the study rows, of the settings where P-DL's re_psi is below each baseline's."""
    def below(col: int) -> list[str]:
        return [f"{r[0]} {r[1]}" for r in st if all(isinstance(r[c], float) for c in (5, col)) and r[5] < r[col]]
    data, interp = below(6), below(7)
    return (f"P-DL's re_psi is below the data-only network's in {len(data)} of {len(st)} settings"
            + (f" ({', '.join(data)})" if data else "") + f" and below interpolation's in {len(interp)}"
            + (f" ({', '.join(interp)})" if interp else "") + ".\n")


def report_section(data_dir: Path) -> ReportSection | None:
    task_dir = Path(data_dir) / store.TASK
    if not store.result_paths(task_dir)["runs"][0].is_file():
        return None
    res = store.read_all(store.result_paths(task_dir))
    solver = artifacts.read_json(task_dir / "solver.json")
    metrics = artifacts.read_json(task_dir / "metrics.json")
    runs = res["runs"]
    cases = list(dict.fromkeys(r["case"] for r in runs))
    md = [PROTOCOL + "\n"]
    for case in cases:
        md.append(f"### {case}: relative errors over all space-time instances (paper Table 1)\n")
        md.append(markdown_table(TABLE1_HEADERS, table1_rows(runs, case)))
        md.append("L_D and L_RRE are the final scaled loss terms (L_RRE computed for the w = 0 network too); a "
                  "diverged run stops where the shared divergence rule fired (its iterations column) and has no "
                  f"errors. The solver's own solution has L_RRE = {fmt(metrics.get(f'{case}.solver_l_rre_fd'), 3)} by "
                  "central differences on its grid (boundary term left out): the floor a network that met the "
                  "physics would reach.\n")
        md.append(_solver_line(case, solver))
    sel = [[r["case"], r["setting"], ", ".join(f"{x['w']:g}: {fmt(x['heldout_rms'], 3)}" for x in res["selection"]
                                               if (x["case"], x["setting"]) == (r["case"], r["setting"])), r["w"]]
           for r in sorted(res["selection"], key=lambda r: (cases.index(r["case"]), r["setting"])) if r["chosen"]]
    if sel:
        md.append("### Selection of w: held-out RMS misfit (cm) per candidate w\n")
        md.append(markdown_table(["case", "setting", "held-out RMS by w", "chosen w"], sel))
    st = study_rows(runs, cases)
    if st:
        md.append("### Studies: sparse sensors and forecast (re_psi, re_theta over the stated times)\n")
        md.append(markdown_table(STUDY_HEADERS, st))
        wins = [f"{r[0]} {r[1]}" for r in st if r[8] is not None and r[8] >= 2]
        md.append(f"Target (P-DL at least 2x better than both the data-only network and interpolation in re_psi): met "
                  f"in {len(wins)} of {len(st)} settings" + (f" ({', '.join(wins)})" if wins else "") + ".\n")
        md.append(_beats_line(st) + "\n")
        md.append(WHY + "\n")
        md.append(EVERY + "\n")
    soil = [[r["case"], r["parameter"], r["init"], r["learned"], r["true"], r["rel_error"]] for r in res["soil"]]
    if soil:
        md.append("### Unknown soil: van Genuchten alpha, n, K_s learned jointly with the network\n")
        md.append(markdown_table(["case", "parameter", "start", "learned", "solver", "relative error"], soil))
        md.append(SOIL_NOTE + "\n")
        within = [f"{r[0]} {r[1]}" for r in soil if r[5] is not None and r[5] <= 0.1]
        md.append(f"Within 10 % of the solver's value: {', '.join(within) if within else 'none'} (of {len(soil)}). "
                  + SOIL_LIMITS + "\n")
    md.append(
        f"Paper (GPU): {paper.MS_PER_ITERATION['full']:.0f} ms per full-batch and "
        f"{paper.MS_PER_ITERATION['mini']:.0f} ms per mini-batch Adam iteration, convergence in about 3,000 (full) and "
        "10,000 (mini-batch) iterations. Our costs are the counts above (iterations per run, solver steps and Picard "
        "iterations); wall times are recorded in `data/timings/rre-*.json` (not tracked: they change between "
        "identical runs) and `benchmarks/rre_bench.py` measures speed. The patch case is our truly 3-D variant "
        "(evaporation through part of the top face); the paper has no numbers for it.\n")
    fig_dir = task_dir / "figures"
    figs = [fig_dir / f"{c}_{f}.png" for c in cases for f in ("loss", "wrc_hcf", "theta_map")]
    figs += [fig_dir / f"study_{f}.png" for f in ("sensors", "forecast", "soil")]
    return ReportSection(title="Richards-equation P-DL (rre)", markdown="\n".join(md),
                         figures=[f for f in figs if f.is_file()])
