"""rre stages: generate (solver, sensors, collocation), train (P-DL per optimizer), evaluate (errors, figures).
Artifacts: see store.py."""

from __future__ import annotations

import multiprocessing
import shutil

import numpy as np
import pyarrow as pa
import torch

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.config import parse_config, section
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import Interrupted
from phys_ml.stages.common.figures import save_png
from phys_ml.stages.common.progress import print_summary, track
from phys_ml.stages.common.runtime import resolve_device
from phys_ml.stages.common.timings import Stopwatch, record_timing

from . import case_training, plots, store
from .cases import CaseSpec, long_table, run_case, top_flux
from .config import EvaluateCfg, GenerateCfg, TrainCfg
from .evaluation import (errors_by_half, field_errors, headline, mark_kept_forward, network_residual, predict,
                         relative_l2, sensor_interpolation, soil_errors, solution_residual, solver_stats, study_summary)
from .fitting import forward_reference, network_of, new_net, settings
from .sampling import boundary_points, collocation_rows, noisy, sensor_rows
from .soil import VanGenuchten, theta
from .solver import Grid, Stepping
from .train import SoilParams, converged, iterations_to_converge, require_cxx

TASK = store.TASK


def _spec(cfg: GenerateCfg) -> CaseSpec:
    g = cfg.grid
    return CaseSpec(grid=Grid(g.nx, g.ny, g.nz, g.lx, g.ly, g.lz), soil=VanGenuchten(**cfg.soil.model_dump()),
                    psi0=cfg.psi0, evaporation_cm_per_h=cfg.evaporation_cm_per_h, t_end=cfg.t_end,
                    n_times=cfg.n_times, patch_x=tuple(cfg.patch.x), patch_y=tuple(cfg.patch.y),
                    patch_evaporation_cm_per_h=cfg.patch.evaporation_cm_per_h)


def generate(ctx: StageContext, subtask: str | None = None) -> None:
    cfg = parse_config(GenerateCfg, ctx.params, "rre.generate")
    spec = _spec(cfg)
    stepping = Stepping.tight(cfg.dt_max, cfg.tol) if cfg.stepping == "tight" else Stepping.mrst()
    compare = cfg.compare_mrst and cfg.stepping == "tight"
    extra = {"soil": spec.soil.as_dict(), "units": "cm, s; z is depth below the top face",
             "grid": cfg.grid.model_dump(), "t_end": cfg.t_end, "psi0": cfg.psi0}
    stats: dict = {"stepping": cfg.stepping, "mrst_compared": compare, "cases": {}}
    watch = Stopwatch()
    for k, case in enumerate(track(cfg.cases, "rre generate")):
        with watch(f"{case}.solver"):
            sol = run_case(spec, case, stepping)
        tab = long_table(spec, sol)
        stats["cases"][case] = solver_stats(spec, sol, tab)
        if compare:
            with watch(f"{case}.mrst_like"):
                loose = run_case(spec, case, Stepping.mrst())
            stats["cases"][case]["mrst_like"] = {
                "steps": loose.steps, "picard_iterations": loose.picard_iterations,
                "re_psi": relative_l2(loose.psi, sol.psi),
                "re_theta": relative_l2(theta(loose.psi, spec.soil), theta(sol.psi, spec.soil))}
        # sensors and collocation points: one generator per case, seeded from the stage seed
        rng = np.random.default_rng([cfg.seed, k])
        rows_m = sensor_rows((spec.n_times, *spec.grid.shape), cfg.sensors.locations, list(cfg.sensors.layers), rng)
        psi_obs = noisy(tab["psi"][rows_m], cfg.sensors.noise_sd, rng)
        rows_f = collocation_rows(tab["psi"].size, cfg.collocation, rng)
        g = spec.grid
        bnd = boundary_points(cfg.boundary_points, (g.lx, g.ly, g.lz), spec.t_end, top_flux(spec, case), rng)
        tables = {"solution": tab,  # the truth stays in the solution table only
                  "sensors": {**{c: tab[c][rows_m] for c in store.COORDS}, "row": rows_m, "psi_obs": psi_obs},
                  "collocation": {**{c: tab[c][rows_f] for c in store.COORDS}, "row": rows_f}, "boundary": bnd}
        for name, columns in tables.items():
            artifacts.write_parquet(pa.table(columns), store.generated(ctx.task_dir, case, name), task=TASK,
                                    stage="generate", seed=cfg.seed, params=section(ctx.params, "rre.generate"),
                                    extra={**extra, "case": case,
                                           "top_flux_mean": float(top_flux(spec, case).mean())})
    artifacts.write_json(ctx.task_dir / "solver.json", stats)
    record_timing(ctx.data_dir, TASK, "generate", {"seconds": watch.seconds})
    print_summary(ctx.console, "rre generate",
                  {f"{c}.mass_balance_rel_error": s["mass_balance_rel_error"] for c, s in stats["cases"].items()})


def train(ctx: StageContext, subtask: str | None = None) -> None:
    cfg = parse_config(TrainCfg, ctx.params, "rre.train")
    device = resolve_device(cfg.device)
    if cfg.compile and device.type == "cpu":
        require_cxx()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # the models and records are written to a staging folder that replaces models/ only when all is written: an
    # interrupted or failed run leaves the previous run's models and records, together
    out_dir, staging = store.models_dir(ctx.task_dir), store.models_dir(ctx.task_dir, staging=True)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        runs, selection, history, timings = _train_cases(ctx, cfg, device)
        params = section(ctx.params, "rre.train")
        for (path, schema), rows in zip(store.train_paths(ctx.task_dir, staging=True).values(),
                                        (runs, selection, history)):
            store.write_table(rows, schema, path, stage="train", seed=cfg.seed, params=params)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(f"interrupted; {out_dir} is unchanged (the new models were not kept): rerun "
                              "`phys-ml train rre` to train again") from None
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    record_timing(ctx.data_dir, TASK, "train", timings)
    print_summary(ctx.console, "rre train", {f"{r['case']}.{r['setting']}.{r['network']}.w": r["w"]
                                             for r in selection if r["chosen"]})


def _train_cases(ctx: StageContext, cfg: TrainCfg, device) -> tuple[list, list, list, dict]:
    """Every case's networks, records and timings. The cases share nothing (own seeds, own run numbering), so on
    the CPU they train side by side in worker processes; a case's forward check is a job of its own where it can
    be (a fixed study network), and the processes take the jobs as they free up, so one case's longer share does
    not leave a core idle. The records and model bytes are the same either way (tests/rre/test_pipeline.py)."""
    n_proc = min(cfg.processes, len(cfg.cases)) if device.type == "cpu" else 1
    if n_proc > 1:
        split = case_training.forward_apart(cfg)
        names = [(case, part) for case in cfg.cases for part in (("main", "forward") if split else ("all",))]
        with multiprocessing.get_context("spawn").Pool(n_proc, initializer=case_training.ignore_sigint) as pool:
            jobs = [(ctx.task, ctx.params, ctx.data_dir, case, part) for case, part in names]
            done = dict(zip(names, pool.starmap(case_training.fit_case_in_worker, jobs, chunksize=1)))
        parts = [case_training.join_parts(done[(case, "main")], done[(case, "forward")]) if split
                 else done[(case, "all")] for case in cfg.cases]
    else:
        parts = [case_training.fit_case(ctx, cfg, case) for case in cfg.cases]
    runs, selection, history, timings = [], [], [], {}
    for r, s, h, t in parts:
        runs, selection, history = runs + r, selection + s, history + h
        timings.update(t)
    return runs, selection, history, timings


def evaluate(ctx: StageContext, subtask: str | None = None) -> None:
    ecfg = parse_config(EvaluateCfg, ctx.params, "rre.evaluate")
    tcfg = parse_config(TrainCfg, ctx.params, "rre.train")
    t = store.read_all(store.train_paths(ctx.task_dir))
    results, soil_rows, metrics, studies = [], [], {}, {}
    fig_dir = ctx.task_dir / "figures"
    for case in dict.fromkeys(r["case"] for r in t["runs"]):
        inputs = store.read_inputs(ctx.task_dir, case)
        coords, psi, th = store.read_solution(ctx.task_dir, case)
        soil, meta, sxyzt, obs = inputs.soil, inputs.meta, inputs.sensors, inputs.psi_obs
        g, r_scale = meta["grid"], (soil.theta_s - soil.theta_r) / inputs.t_end
        metrics[f"{case}.solver_l_rre_fd"], metrics[f"{case}.solver_l_rre_norm"] = solution_residual(
            coords, psi, g, soil, inputs.t_end)
        every = np.ones(obs.size, dtype=bool)
        sets = {**settings(tcfg, sxyzt), "soil": (every, None), "forward": (~every, None)}
        where, preds, out = {}, {}, {"horizon": {}, "soil": None}
        for name, (mask, _) in sets.items():
            t_split = float(sxyzt[mask, 3].max()) if name == "forecast" else None
            where[name] = coords[:, 3] > t_split if t_split is not None else np.ones(coords.shape[0], dtype=bool)
            common = dict(sensors=int(mask.sum()), probes=int(np.unique(sxyzt[mask, :3], axis=0).shape[0]),
                          t_split=t_split)
            if name not in ("soil", "forward"):
                base = sensor_interpolation(coords, sxyzt[mask], obs[mask])
                preds[(name, "interpolation")] = base
                results.append(dict(case=case, setting=name, kind="interpolation", run=-1, override=False,
                                    diverged=False, **common, **field_errors(base, psi, th, soil, where[name])))
            for r in (r for r in t["runs"] if r["case"] == case and r["setting"] == name):
                hist = [h for h in t["history"] if h["case"] == case and h["run"] == r["run"]]
                its, loss = [h["iteration"] for h in hist], [h["loss"] for h in hist]
                pred, grid_rre = None, (None, None)
                if not r["diverged"]:
                    state = store.load_model(ctx.task_dir, case, r["model"])
                    net = new_net(network_of(tcfg, r["network"]), meta,
                                  obs[mask] if mask.any() else forward_reference(r["output_range"], inputs))
                    with artifacts.reading(store.model_path(ctx.task_dir, case, r["model"]),
                                           "a network of this run's rre.train settings"):
                        net.load_state_dict(state["net"] if name == "soil" else state)
                        if name == "soil":
                            learned = SoilParams(soil)
                            learned.load_state_dict(state["soil"])
                    pred = preds[(name, r["kind"], r["run"])] = predict(net, coords)
                    own_soil = learned.soil() if name == "soil" else soil
                    grid_rre = network_residual(net, coords, own_soil, r_scale)
                results.append({**r, **common, **field_errors(pred, psi, th, soil, where[name]),
                                "final_loss": loss[-1] if loss else None,
                                "final_l_data": hist[-1]["loss_data"] if hist else None,
                                "final_l_rre": hist[-1]["loss_rre"] if hist else None,
                                "l_rre_grid": grid_rre[0], "l_rre_norm": grid_rre[1],
                                "iterations_to_converge": None if r["diverged"] else iterations_to_converge(its, loss),
                                "converged": (not r["diverged"]) and converged(its, loss),
                                **(errors_by_half(pred, psi, coords[:, 3], inputs.t_end) if name == "forward"
                                   else {"re_psi_early": None, "re_psi_late": None})})
                if name == "soil":
                    values = learned.values() if not r["diverged"] else None
                    ok = values is not None and all(np.isfinite(v) for v in values.values())
                    soil_rows += soil_errors(case, values if ok else None, tcfg.studies.soil.init, soil, r["init"])
                    if ok and r["init"] == 0:
                        out["soil"] = {"learned": VanGenuchten(theta_s=soil.theta_s, theta_r=soil.theta_r, **values),
                                       "true": soil, "psi_range": (float(psi.min()), float(psi.max()))}
            if name == "forecast":  # the first initialization's networks
                ts = np.unique(coords[where[name], 3])
                first = {r["run"] for r in t["runs"] if r["case"] == case and r["init"] == 0}
                kinds = {k[1]: p for k, p in preds.items() if k[0] == "forecast" and (len(k) == 2 or k[2] in first)}
                out["horizon"] = {"t": ts, "t_split": t_split, **{
                    kind: [relative_l2(p[coords[:, 3] == s], psi[coords[:, 3] == s]) for s in ts]
                    for kind, p in kinds.items()}}
        studies[case] = out
        case_runs = [r for r in t["runs"] if r["case"] == case and r["setting"] == "table1"]
        hist = [h for h in t["history"] if h["case"] == case]
        full = {plots.run_label(r): preds[("table1", "run", r["run"])] for r in case_runs
                if r["batch"] == "full" and not r["diverged"]}
        for name, fig in (("loss", plots.loss_figure(case, case_runs, hist)),
                          ("wrc_hcf", plots.wrc_hcf_figure(psi, th, soil, full)),
                          ("theta_map", plots.theta_map_figure(th, full, soil, g, ecfg.map_time))):
            save_png(fig, fig_dir / f"{case}_{name}.png")
    for name, fig in (("sensors", plots.study_sensors_figure(results, tcfg)),
                      ("forecast", plots.study_forecast_figure(studies)), ("soil", plots.study_soil_figure(studies))):
        save_png(fig, fig_dir / f"study_{name}.png")
    params = section(ctx.params, "rre.evaluate")
    results = mark_kept_forward(results)
    rows = {"runs": results, "selection": t["selection"], "soil": soil_rows, "studies": study_summary(results)}
    for name, (path, schema) in store.result_paths(ctx.task_dir).items():
        store.write_table(rows[name], schema, path, stage="evaluate", seed=ecfg.seed, params=params)
    metrics.update(headline(results, rows["studies"]))
    artifacts.write_json(ctx.task_dir / "metrics.json", metrics)
    print_summary(ctx.console, "rre evaluate", {k: v for k, v in metrics.items() if k.endswith("re_psi")})
