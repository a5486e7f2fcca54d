"""The rre section of the report, read from the records (results/*.parquet), solver.json and metrics.json."""

from __future__ import annotations

from pathlib import Path

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.report import ReportSection, fmt, markdown_table, ratio

from . import paper, store
from .evaluation import mean_sd

DIVERGED = "diverged"
PROTOCOL = (
    "**Protocol (no choice reads the truth).** The residual weight w in L = L_D + w L_RRE (both terms scaled to "
    "order one: psi by half the sensor range, the RRE residual by (theta_s - theta_r) / t_end, the boundary flux "
    "residual by (theta_s - theta_r) lz / t_end; L_RRE holds eq. 6, the boundary fluxes the solver used (the "
    "known evaporation through the top face, no flow through the bottom and sides) and the initial condition "
    "psi(x, 0) = psi0 at t = 0 points, scaled like L_D; for the study networks also the box's water balance, and "
    "the residual weighted in time, see the forward check) is chosen by the train stage for every setting: one "
    "full-batch network per candidate w is trained on the setting's sensors minus a held-out block, and the w "
    "with the lowest RMS misfit on the held-out block wins (ties to the larger w). A study network's selection "
    "runs train as the study runs they choose for (`rre.train.studies.optimizer`: Adam, then L-BFGS until it "
    "stalls, at most `rre.train.studies.iterations`; the iterations each took are in the selection table): a "
    "selection from short runs scores networks that have not yet met the physics and favours w = 0. The paper's "
    "network keeps short full-batch Adam selection runs (`rre.train.selection`). The block is one sensor layer "
    "of the setting (the middle of an odd number, the deeper of two: it scores what the network gives away from "
    "the sensor depths, where the physics has to fill in) or the latest 20 % of the training window (forecast: it "
    "scores extrapolation in time). The study network (width, depth, output transform, time input: "
    "`rre.train.networks`) is chosen by the same rule on all sensors, over every candidate network and w; the "
    "paper's 5 x 10 network keeps its own w for the paper's Table-1 rows. The train stage never opens the "
    "solution table (a test runs it with that file deleted). Learning rates are the values committed before this "
    "protocol; the protocol does not select them. Iterations are the paper's count for full batch (3,000; "
    "mini-batch 3,000 of the paper's 10,000) and a convergence rule marks each row: 'converged' means the best "
    "training loss improved by less than 10 % over the last quarter of the run (training loss only). Every "
    "physics run first fits the data alone for half its iterations (`rre.train.warmup`), then trains "
    "L_D + w L_RRE. A study network with a log-time input (log(1 + t / t_c)) takes its collocation and "
    "boundary points evenly in that feature over the continuous box (the paper's network keeps the generated grid "
    "instances, which start at the first output time, 108 s): from psi0 = -1 cm everywhere the soil drains to near "
    "hydrostatic equilibrium within the first second (the bottom saturates), a transient that only points at "
    "early times can constrain.\n"
)
EVERY = (
    "Every pair in a row has the same network (the study network), optimizer, iteration budget, initialization "
    "and sensors; 'data-only' is the same network with w = 0. Each run trains until its L-BFGS stalls (10 steps in "
    "a row that leave the weights where they were: converged on its own loss), at most the budget "
    "(rre.train.studies.iterations; the physics runs fit the data alone for the first half, at most "
    "rre.train.warmup). Values are mean +- sd over the network "
    "initializations (seeds); 'P-DL - data-only' is the paired difference per seed, and P-DL counts as better "
    "only where that difference is negative and larger than its sd. Sparse settings keep the given number of "
    "the generated sensor locations (a seeded choice) and layers (evenly spaced, ends kept); the forecast trains "
    "on the first half of the record and is scored on the later half, where interpolation holds the last "
    "readings (persistence).\n"
)
SOIL_NOTE = (
    "theta_s and theta_r are known; alpha, n and K_s start from `rre.train.studies.soil.init` and are learned from "
    "all the sensors through the physics term (after a data-only warm-up of the network) with the study network, "
    "w its best nonzero candidate of the Table 1 selection, once per network initialization (mean +- sd over "
    "them). Figure `study_soil.png`: the first initialization's learned curves against the solver's.\n"
)
SOIL_LIMITS = (
    "The soil enters only through the residual, so the parameters absorb what the network's derivatives miss (its "
    "normalized L_RRE above); and K_s is K at psi = 0, outside most of the range the data cover (shaded in the "
    "figure), so alpha and K_s trade off along the conductivity curve. On the solver's own derivatives (finite "
    "differences, no network; tests/rre/test_soil_learning.py) the same fit recovers alpha and n within a few "
    "per cent.\n"
)


def soil_training_line(runs: list[dict]) -> str:
    """How long the soil runs trained: each runs until L-BFGS stalls (converged: its steps no longer move the
    weights or the soil), at most its budget."""
    soil = [r for r in runs if r["setting"] == "soil"]
    if not soil:
        return ""
    per_case = "; ".join(
        f"{case}: " + " / ".join(f"{r['iterations_run']}" + ("" if r["stalled"] else " (budget)")
                                 for r in soil if r["case"] == case)
        for case in dict.fromkeys(r["case"] for r in soil))
    return (f"\nEach soil run trains until L-BFGS stalls (10 steps in a row that move neither the weights nor the "
            f"soil: converged on its own loss), at most {soil[0]['iterations']} iterations; iterations run per "
            f"initialization: {per_case}.\n")


def _order(r: dict) -> tuple:
    """The paper's order: the paper's network, mini-batch then full batch; GD, RMSprop, Adam, then any other
    optimizer; then the study network's rows."""
    known = ["gd", "rmsprop", "adam"]
    opt = r["optimizer"]
    return (r["network"] != "paper", r["override"], r["batch"] != "mini",
            known.index(opt) if opt in known else len(known), opt, r["residual_weight"])


def _error(r: dict, key: str):
    return DIVERGED if r["diverged"] else r[key]


def _lbfgs(r: dict) -> str | None:
    if r["lbfgs_iterations"] is None:
        return None
    return (f"{r['lbfgs_iterations']} / {r['lbfgs_evaluations']} / {r['lbfgs_moved']}"
            + (" (stalled)" if r.get("stalled") else ""))


def run_label(r: dict) -> str:
    return r["optimizer"] + (" data-only" if r["override"] and r["residual_weight"] == 0 else "")


def table1_rows(runs: list[dict], case: str) -> list[list]:
    rows = []
    for r in sorted((r for r in runs if r["case"] == case and r["setting"] == "table1" and r["kind"] == "run"),
                    key=_order):
        paper_row = case == "evaporation" and not r["override"] and r["network"] == "paper"
        pp = paper.TABLE1.get((r["optimizer"], r["batch"]), (None, None)) if paper_row else (None, None)
        ok = not r["diverged"]
        rows.append([run_label(r), r["architecture"], r["batch"], r["residual_weight"], _error(r, "re_psi"), pp[0],
                     ratio(r["re_psi"], pp[0]) if ok else None, _error(r, "re_theta"), pp[1],
                     ratio(r["re_theta"], pp[1]) if ok else None, r["final_l_data"], r["final_l_rre"],
                     r["l_rre_norm"], r["iterations_run"], _lbfgs(r),
                     DIVERGED if r["diverged"] else ("yes" if r["converged"] else "no"), r["iterations_to_converge"]])
    base = next(r for r in runs if r["case"] == case and r["setting"] == "table1" and r["kind"] == "interpolation")
    rows.append(["sensor interpolation", "-", "-", None, base["re_psi"], None, None, base["re_theta"], None, None,
                 None, None, None, None, None, None, None])
    return rows


TABLE1_HEADERS = ["optimizer", "network", "batch", "w", "re_psi", "paper", "ratio", "re_theta", "paper", "ratio", "L_D",
                  "L_RRE", "L_RRE norm.", "iterations", "L-BFGS it. / eval. / moved", "converged", "to 10 % of final"]
FORWARD_HEADERS = ["case", "network", "output range", "init", "kept", "optimizer", "iterations", "L-BFGS it. / eval. / moved",
                   "re_psi", "target", "re_psi t <= t_end/2", "re_psi t > t_end/2", "re_theta", "L_RRE (train)", "L_RRE norm.", "solver's L_RRE norm.", "ratio"]
STUDY_HEADERS = ["case", "setting", "probes", "errors at", "w (protocol)", "seeds", "re_psi P-DL", "re_psi data-only",
                 "re_psi interpolation", "P-DL - data-only (paired)", "P-DL better", "gain (best other / P-DL)",
                 "2x target", "re_theta P-DL", "re_theta data-only", "re_theta interp.", "L_RRE norm. P-DL",
                 "L_RRE norm. data-only"]
FORWARD_TARGET = {"evaporation": 0.01, "patch": 0.02}  # issue 22: re_psi of the physics-only forward check
FORWARD_NOTE = (
    "What makes this benchmark hard for a PINN, and what the physics term holds because of it. From psi0 = -1 cm "
    "everywhere the column drains to hydrostatic equilibrium within about a second (the bottom saturates), then "
    "dries slowly and almost uniformly while the profile stays near hydrostatic, because diffusion (K / C of 2 to "
    "30 cm^2/s over 5 cm) is hundreds of times faster than the drying. Trained on eq. 6, the boundary fluxes and "
    "the initial condition alone, a network can settle in a spurious state: psi frozen near the hydrostatic one, "
    "the evaporation balanced by water drawn in through the no-flow faces, a residual spread thin over the box, "
    "and the loss dominated by the early transient, whose terms are far larger than those of the drying. Two "
    "terms address this: the box's water balance (rre.train.physics.mass_balance: the mean water content at 16 "
    "times equals the initial one minus what the known top flux removed) and the residual at time t weighted "
    "((t + t_c) / (t_end + t_c))^0.5 (rre.train.physics.time_weight; t_c the network's log_time). On a draining "
    "test column the physics-only network follows the solver (re_psi below 0.3) with both and not without them "
    "(tests/rre/test_forward.py). The output scaling decides the patch case (evaporation through 30 % of the top "
    "face, lateral flow). Scaled around psi0 alone, the network stays in the state the column drains to first (the "
    "hydrostatic profile with a saturated bottom): there the capacity C, and with it the storage term and the "
    "water balance's gradient, nearly vanish (for n = 2, C grows about linearly with |psi| near saturation: about "
    "10 times smaller at -1 cm than at -30 cm), and L-BFGS stalls near re_psi 1 (the table, patch, psi0). Scaled "
    "to span also the head of uniform drying by the known top flux (fitting.mass_balance_head: from the flux, the "
    "depth and the retention curve, no solver), the network can leave that state (the table, patch, "
    "mass_balance); on evaporation the same scaling stalls at a higher loss than psi0's (the table), so neither "
    "scaling suits both cases: the check trains one network per candidate and keeps the lower final L_RRE, "
    "which reads no solver. Where the kept network ends depends on the draw of physics points and on rounding "
    "(the pipeline compiles the loss: the same terms, float32 sums in another order, another path to another end "
    "point): a network that meets the training points meets the equation between them only as well as the "
    "points cover the box and the times, and on patch the flux through the top face jumps from the patch's "
    "evaporation to none at the patch's edge, a step a smooth network cannot meet pointwise.")


def pm(mean, sd) -> str:
    """'mean +- sd' (4 significant digits), or a dash."""
    return "–" if mean is None else f"{fmt(mean)} +- {fmt(sd, 2)}"


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


def study_rows(studies: list[dict]) -> list[list]:
    rows = []
    for st in sorted(studies, key=lambda r: (r["case"], r["setting"] == "forecast", r["setting"])):
        where = f"t > {st['t_split']:.0f} s" if st["t_split"] is not None else "all"
        rows.append([st["case"], st["setting"], st["probes"], where, st["w"], st["seeds"],
                     pm(st["pdl_mean"], st["pdl_sd"]), pm(st["data_mean"], st["data_sd"]), st["interpolation"],
                     pm(st["diff_mean"], st["diff_sd"]), "yes" if st["pdl_better"] else "no", st["gain"],
                     "met" if st["target"] else "no", st["pdl_theta"], st["data_theta"], st["interpolation_theta"],
                     st["pdl_l_rre_norm"], st["data_l_rre_norm"]])
    return rows


def best_nonzero(selection: list[dict], case: str, network: str) -> float | None:
    """The lowest held-out misfit of a w > 0 in a case's table1 selection of one network."""
    v = [x["heldout_rms"] for x in selection if (x["case"], x["setting"], x["network"]) == (case, "table1", network)
         and x["w"] > 0 and x["heldout_rms"] is not None]
    return min(v) if v else None


def best_line(runs: list[dict], selection: list[dict], case: str) -> str:
    """The best Table-1 row with the physics term (w > 0) against the paper's Adam full batch and the data-only
    rows (w = 0)."""
    t1 = [r for r in runs if r["case"] == case and r["setting"] == "table1" and r["kind"] == "run"
          and r["re_psi"] is not None]
    pdl = [r for r in t1 if r["residual_weight"] > 0]
    data = [r for r in t1 if r["residual_weight"] == 0]
    if not pdl:
        chosen = [x for x in selection if (x["case"], x["setting"]) == (case, "table1") and x["chosen"]]
        held = [f"{x['network']}: {fmt(x['heldout_rms'], 3)} cm at w = 0 vs "
                f"{fmt(best_nonzero(selection, case, x['network']), 3)} cm at its best w > 0" for x in chosen]
        return (f"No Table-1 row of {case} trained with the physics term: on all sensors the protocol chose w = 0 for "
                f"every network (held-out RMS misfit {'; '.join(held)}): with dense sensors the physics term, "
                "which the networks do not meet (L_RRE norm. above), costs more than it gives.\n")
    best = min(pdl, key=lambda r: r["re_psi"])
    line = (f"Best row with the physics term (w > 0): {run_label(best)} {best['batch']} batch on the "
            f"{best['architecture']} network, re_psi {fmt(best['re_psi'])}")
    if case == "evaporation":
        line += f" (paper, Adam full batch: {paper.TABLE1[('adam', 'full')][0]})"
    if data:
        ref = min(data, key=lambda r: r["re_psi"])
        line += (f"; best data-only row (w = 0): {run_label(ref)} {ref['batch']} batch on the {ref['architecture']} "
                 f"network, {fmt(ref['re_psi'])}")
    return line + ".\n"


def forward_rows(runs: list[dict], metrics: dict) -> list[list]:
    rows = []
    for r in (r for r in runs if r["setting"] == "forward"):
        solver = metrics.get(f"{r['case']}.solver_l_rre_norm")
        target = FORWARD_TARGET.get(r["case"])
        met = None if r["re_psi"] is None or target is None else ("met" if r["re_psi"] <= target else "missed")
        rows.append([r["case"], r["architecture"], r["output_range"], r["init"], "yes" if r["kept"] else "no",
                     r["optimizer"],
                     r["iterations_run"], _lbfgs(r), _error(r, "re_psi"),
                     f"<= {target:g}: {met}" if met and r["kept"] else None, _error(r, "re_psi_early"),
                     _error(r, "re_psi_late"), _error(r, "re_theta"), r["final_l_rre"],
                     r["l_rre_norm"], solver, ratio(r["l_rre_norm"], solver)])
    return rows


def why_lines(runs: list[dict], studies: list[dict], metrics: dict) -> str:
    """Where the physics does not pay, why, in numbers read from the records: how far the study networks are
    from the equation (normalized L_RRE against the solver's own), and where their errors sit."""
    lines = []
    for case in dict.fromkeys(r["case"] for r in runs):
        solver = metrics.get(f"{case}.solver_l_rre_norm")
        ok = [r for r in runs if r["case"] == case and r["l_rre_norm"] is not None]
        pdl = [r["l_rre_norm"] for r in ok if r["kind"] == "pdl"]
        data = [r["l_rre_norm"] for r in ok if r["kind"] == "data"]
        if not pdl or not solver:
            continue
        lines.append(f"{case}: the study networks trained with the physics term end at a normalized L_RRE of "
                     f"{fmt(min(pdl), 3)} to {fmt(max(pdl), 3)} on the solver's grid ({fmt(min(pdl) / solver, 3)} to "
                     f"{fmt(max(pdl) / solver, 3)} times the solver's own {fmt(solver, 3)}; within 10x: "
                     f"{sum(v <= 10 * solver for v in pdl)} of {len(pdl)}); the data-only networks at "
                     f"{fmt(min(data), 3) if data else '–'} to {fmt(max(data), 3) if data else '–'}.")
    for st in studies:
        if st["target"] or st["pdl_mean"] is None:
            continue
        interp_better = st["interpolation"] is not None and st["interpolation"] < (st["data_mean"] or 1e300)
        other = "interpolation" if interp_better else "the data-only network"
        lines.append(f"{st['case']} {st['setting']}: P-DL {pm(st['pdl_mean'], st['pdl_sd'])} vs data-only "
                     f"{pm(st['data_mean'], st['data_sd'])} and interpolation {fmt(st['interpolation'])}; the better "
                     f"of the two others is {other}, {fmt(st['gain'], 3)}x P-DL's error (paired difference "
                     f"{pm(st['diff_mean'], st['diff_sd'])}).")
    return "\n".join(f"- {line}" for line in lines) + "\n"


SOIL_TARGET = {"alpha": 0.10, "n": 0.10, "k_s": 0.25}  # issue 22, evaporation


def soil_rows(rows: list[dict]) -> list[list]:
    """Per case and parameter: the learned value and its relative error, mean +- sd over the initializations."""
    out = []
    for case, name in dict.fromkeys((r["case"], r["parameter"]) for r in rows):
        rs = [r for r in rows if (r["case"], r["parameter"]) == (case, name)]
        learned, errors = (mean_sd([r[k] for r in rs]) for k in ("learned", "rel_error"))
        met = None if errors[0] is None else ("met" if errors[0] <= SOIL_TARGET[name] else "missed")
        out.append([case, name, rs[0]["init"], pm(*learned), rs[0]["true"], pm(*errors),
                    f"<= {SOIL_TARGET[name]:g}: {met}" if case == "evaporation" and met else None])
    return out


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
        md.append("L_D and L_RRE are the final scaled loss terms (L_RRE computed for the w = 0 network too); "
                  "'L_RRE norm.' is mean(r^2) / mean(S^2 + T^2) of the network's exact derivatives at every grid "
                  "instance, with r = S - T, S = C psi_t the storage and T the transport term of eq. 6 (0: the "
                  "equation holds; 1: its residual is as large as its terms). L-BFGS rows (beyond the paper's): "
                  "torch's L-BFGS with the strong-Wolfe line search, full batch; 'it. / eval. / moved' counts its "
                  "iterations, loss evaluations and the steps that changed the weights (fewer moves than iterations: "
                  "L-BFGS stopped early; '(stalled)': after 10 steps in a row that left the weights where they were, "
                  "each of which repeats the last exactly, the run stopped there). A diverged run stops where the "
                  "shared divergence rule fired (its "
                  "iterations column) and has no errors. The solver's own solution has L_RRE = "
                  f"{fmt(metrics.get(f'{case}.solver_l_rre_fd'), 3)} and L_RRE norm. = "
                  f"{fmt(metrics.get(f'{case}.solver_l_rre_norm'), 3)} by central differences on its grid (interior "
                  "cells and times, boundary term left out): the floor a network that met the physics would reach.\n")
        md.append(_solver_line(case, solver))
        md.append(best_line(runs, res["selection"], case))
    fw = forward_rows(runs, metrics)
    if fw:
        md.append("### Physics-only forward check: the study network trained on L_RRE alone (no sensors)\n")
        md.append(markdown_table(FORWARD_HEADERS, fw))
        md.append("The network sees only what the solver is given: eq. 6, the boundary fluxes, the initial "
                  "condition and the water balance they imply; re_psi and re_theta are against the solver over "
                  "every grid instance. This is the standard validation of a PINN: a network and optimizer that "
                  "cannot solve the forward problem cannot be expected to help an inverse one. 'L_RRE norm.' near 1 "
                  "means the network's residual is as large as the terms of the equation: it has not found the "
                  "solution. One network is trained per candidate output scaling (rre.train.forward.output_range: "
                  "psi0 alone, or psi0 and the head of uniform drying by the known top flux, "
                  "fitting.mass_balance_head; solver-free) and network initialization ('init', "
                  "rre.train.forward.inits: restarts, all on the same physics points); the one with the lowest "
                  "final L_RRE, its own training loss, is kept ('kept'), and the target is judged on it. The two re_psi columns split the error "
                  "between the first and the second half of the output times: where in time it sits (the physics "
                  "points are spread evenly in the network's time feature, log time for the study network, so the "
                  "later half holds few of them).\n")
        md.append(FORWARD_NOTE + "\n")
    chosen = [r for r in res["selection"] if r["chosen"]]

    def candidates(r: dict) -> list[dict]:
        return [x for x in res["selection"] if (x["case"], x["setting"], x["network"]) ==
                (r["case"], r["setting"], r["network"])]

    sel = [[r["case"], r["setting"], r["network"] + (" (study)" if r["study"] else ""),
            ", ".join(f"{x['w']:g}: {fmt(x['heldout_rms'], 3)}" for x in candidates(r)), r["w"],
            ", ".join(f"{x['w']:g}: {x['iterations']}" for x in candidates(r))]
           for r in sorted(chosen, key=lambda r: (cases.index(r["case"]), r["setting"], r["network"]))]
    if sel:
        md.append("### Selection of the study network and w: held-out RMS misfit (cm) per candidate\n")
        md.append(markdown_table(["case", "setting", "network", "held-out RMS by w", "chosen w",
                                  "iterations by w"], sel))
    st = study_rows(res["studies"])
    if st:
        md.append("### Studies: sparse sensors and forecast (re_psi, re_theta over the stated times)\n")
        md.append(markdown_table(STUDY_HEADERS, st))
        wins = [f"{r['case']} {r['setting']}" for r in res["studies"] if r["target"]]
        better = [f"{r['case']} {r['setting']}" for r in res["studies"] if r["pdl_better"]]
        md.append(f"Target (P-DL at least 2x better than both the data-only network and interpolation in mean "
                  f"re_psi, and its paired difference to data-only beyond its sd): met in {len(wins)} of {len(st)} "
                  "settings" + (f" ({', '.join(wins)})" if wins else "") + f". P-DL better than data-only (paired, "
                  f"beyond the sd) in {len(better)} of {len(st)}" + (f" ({', '.join(better)})" if better else "")
                  + ".\n")
        md.append(EVERY + "\n")
        md.append("Where the physics does not pay, in numbers:\n\n" + why_lines(runs, res["studies"], metrics) + "\n")
    soil = soil_rows(res["soil"])
    if soil:
        md.append("### Unknown soil: van Genuchten alpha, n, K_s learned jointly with the network\n")
        md.append(markdown_table(["case", "parameter", "start", "learned", "solver", "relative error", "target"], soil))
        md.append(SOIL_NOTE + soil_training_line(runs) + "\n" + SOIL_LIMITS + "\n")
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
