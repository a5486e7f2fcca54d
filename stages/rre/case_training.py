"""rre train, one case at a time: the w protocol, the Table 1 runs, the studies and the soil run of one case
(`fit_case`), in this process or in a spawned worker (`fit_case_in_worker`). Saves the kept networks."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import torch

from phys_ml.stages.common.config import parse_config
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.runtime import resolve_device

from . import protocol, store
from .config import TrainCfg
from .fitting import CaseFit, describe, heldout_rms, network_of, residual_weight, settings, weight_rule
from .soil import VanGenuchten
from .train import SoilParams


class Recorder:
    """Fits a network through ``CaseFit``, saves the kept ones (into the staging folder of the train stage) and
    collects the train records and histories."""

    def __init__(self, ctx: StageContext, cfg: TrainCfg) -> None:
        self.ctx, self.cfg = ctx, cfg
        self.runs, self.history, self.timings = [], [], {}

    def __call__(self, c: CaseFit, case: str, setting: str, kind: str, mask, optimizer, batch: str,
                 iterations: int, weight: float, seed: int, rule="fixed", override=False, save=None,
                 network: str = "paper", init: int = 0, output_range: str | None = None, model_name=None, **fit):
        run = len([r for r in self.runs if r["case"] == case])
        label = (f"rre {case} {setting} {kind} {optimizer.name}-{batch}" + (f" w={weight:g}" if override else "")
                 + ("" if network == "paper" else f" {network}") + (f" init {init}" if init else "")
                 + (f" range {output_range}" if output_range else ""))
        net, res = c.fit(mask, optimizer, iterations, batch, weight, seed, label, init=init,
                         network=None if network == "paper" else network_of(self.cfg, network),
                         output_range=output_range or "psi0", **fit)
        if res.diverged:
            self.ctx.console.print(f"warning: {label} diverged ({res.divergence}); kept as a diverged run")
        model = None if res.diverged else model_name or f"{setting}-{kind}-{run:02d}-{optimizer.name}-{batch}.pt"
        if model is not None:
            store.save_model(self.ctx.task_dir, case, model, (save or (lambda n: n.state_dict()))(net), staging=True)
        ls = res.line_search or {}
        self.runs.append(dict(case=case, run=run, setting=setting, kind=kind, optimizer=optimizer.name, batch=batch,
                              lr=optimizer.kwargs().get("lr"), weight_rule=str(rule), override=override,
                              residual_weight=float(weight), seed=seed, iterations=iterations,
                              iterations_run=res.iterations, diverged=res.diverged, divergence=res.divergence,
                              model=model, network=network, architecture=describe(network_of(self.cfg, network)),
                              init=init, lbfgs_iterations=ls.get("iterations"),
                              lbfgs_evaluations=ls.get("evaluations"), lbfgs_moved=ls.get("moved"),
                              stalled=res.stalled, output_range=output_range))
        self.history += [dict(case=case, run=run, iteration=i, loss=a, loss_data=b, loss_rre=d)
                         for i, a, b, d in zip(res.logged_at, res.loss, res.loss_data, res.loss_rre)]
        self.timings[label] = {"seconds": round(res.seconds, 2), "ms_per_iteration": round(res.ms_per_iteration, 3)}
        return net, res


def fit_case(ctx: StageContext, cfg: TrainCfg, case: str, part: str = "all") -> tuple[list, list, list, dict]:
    """Networks of one case: ``part`` "main" (the protocol, which chooses the study network and w, Table 1, the
    studies over seeds and the soil runs), "forward" (the physics-only forward check of a study network the params
    fix: one candidate, `forward_apart`) or "all" (both, the forward check last). Returns the run records (run
    numbers from 0), selection rows, histories and timings (plain data, so a worker process can send them back);
    `join_parts` numbers a forward part's runs after its main part's, as "all" does."""
    device = resolve_device(cfg.device)
    fit, selection, sel, st = Recorder(ctx, cfg), [], cfg.selection, cfg.studies
    c = CaseFit(cfg, store.read_inputs(ctx.task_dir, case), device)
    if part == "forward":
        forward_check(fit, c, cfg, case, "study-0")
        return fit.runs, selection, fit.history, fit.timings
    sets = settings(cfg, c.xyzt)
    n_sel = min(sel.collocation, c.colloc.shape[0])
    run_lengths = {}  # (setting, network, w) -> iterations its selection run took

    def scores_of(name: str, network: str) -> dict[float, float]:
        """Held-out misfit per candidate w of one network in one setting (no truth is loaded in this stage).
        A study network's selection runs train as the study runs they choose for (the studies' optimizer, until
        L-BFGS stalls, at most their budget); the paper's network keeps the short selection runs."""
        mask, held = sets[name]
        optimizer, iterations = ((sel.optimizer, sel.iterations) if network == "paper" else
                                 (st.optimizer, st.iterations))
        scores = {}
        for j, w in enumerate(sel.weights):
            label = f"rre {case} select {name} {network} w={w:g}"
            net_cfg = None if network == "paper" else network_of(cfg, network)
            net, res = c.fit(mask & ~held, optimizer, iterations, "full", w, cfg.seed + 7 * j, label,
                             n_colloc=n_sel, network=net_cfg)
            if res.diverged:
                ctx.console.print(f"warning: {label} diverged ({res.divergence}); scored as infinite")
            scores[w] = float("inf") if res.diverged else heldout_rms(net, c.xyzt[held], c.obs[held])
            run_lengths[(name, network, w)] = res.iterations
        return scores

    # 1. the protocol: on all sensors (table1) the paper's network and every candidate study network, each
    # with every w; the study network (and its w) with the lowest held-out misfit is used for everything else
    scores = {net: scores_of("table1", net) for net in ["paper"] + [f"study-{k}" for k in range(len(cfg.networks))]}
    study, _ = protocol.choose_network({net: s for net, s in scores.items() if net != "paper"})
    chosen = {("table1", net): protocol.choose(s) for net, s in scores.items()}
    for name in sets:
        if name != "table1":
            scores[(name, study)] = scores_of(name, study)
            chosen[(name, study)] = protocol.choose(scores[(name, study)])
    for key, s in scores.items():
        name, net = key if isinstance(key, tuple) else ("table1", key)
        selection += [dict(case=case, setting=name, network=net, w=w, heldout_rms=v if np.isfinite(v) else None,
                           chosen=w == chosen[(name, net)], study=net == study,
                           iterations=run_lengths[(name, net, w)]) for w, v in s.items()]
    # 2. Table 1 runs on all sensors
    all_ = sets["table1"][0]
    table_data = {}
    for k, run in enumerate(cfg.runs):
        net = study if run.network == "study" else "paper"
        if net not in table_data:
            table_data[net] = c.data(all_, network=None if net == "paper" else network_of(cfg, net))
        w = residual_weight(cfg, run, table_data[net], chosen[("table1", net)])
        fit(c, case, "table1", "run", all_, run.optimizer, run.batch, run.iterations, w, cfg.seed + 1000 * (k + 1),
            rule=weight_rule(cfg, run), override=run.residual_weight is not None, data=table_data[net], network=net)
    # 3. studies: P-DL (w chosen by the protocol for that setting) vs data-only (w = 0), same network, budget
    # and initialization, over st.seeds initializations
    for name, (mask, _) in sets.items():
        for init in range(st.seeds) if name != "table1" else ():
            for kind, w in (("pdl", chosen[(name, study)]), ("data", 0.0)):
                fit(c, case, name, kind, mask, st.optimizer, "full", st.iterations, w, cfg.seed + 17 + init,
                    rule="selected" if kind == "pdl" else "fixed", network=study, init=init)
    # unknown soil: alpha, n, K_s learned with the study network from all sensors; w is its best nonzero
    # candidate of the Table 1 selection (the physics term is the only thing that sees the soil, so w = 0 is
    # excluded)
    if st.soil.enabled:
        nonzero = {w: s for w, s in scores[study].items() if w > 0}
        w = protocol.choose(nonzero) if nonzero else max(sel.weights)
        init_soil = VanGenuchten(alpha=st.soil.init.alpha, n=st.soil.init.n, theta_s=c.soil.theta_s,
                                 theta_r=c.soil.theta_r, k_s=st.soil.init.k_s)
        for init in range(st.seeds):
            soil = SoilParams(init_soil).to(device)
            fit(c, case, "soil", "soil", all_, st.soil.optimizer, "full", st.soil.iterations, w, cfg.seed + 23 + init,
                rule="selected", soil=soil, data=table_data.get(study), warmup=st.soil.warmup, network=study,
                init=init, save=lambda net, soil=soil: {"net": net.state_dict(), "soil": soil.state_dict()})
    if part == "all":
        forward_check(fit, c, cfg, case, study)
    return fit.runs, selection, fit.history, fit.timings


def forward_check(fit: Recorder, c: CaseFit, cfg: TrainCfg, case: str, study: str) -> None:
    """The physics-only forward check: the study network on L_RRE alone (equation, boundary fluxes, initial
    condition), no sensors; one network per candidate output range and initialization, all on the same physics
    points (the evaluation keeps the lowest final L_RRE). Model files are named by candidate, not run number."""
    if not cfg.forward.enabled:
        return
    none = np.zeros(c.obs.size, dtype=bool)
    for init in range(cfg.forward.inits):
        for output_range in cfg.forward.output_range:
            fit(c, case, "forward", "physics", none, cfg.forward.optimizer, "full", cfg.forward.iterations, 1.0,
                cfg.seed + 31, warmup=0, network=study, output_range=output_range, init=init,
                model_name=f"forward-physics-init{init}-{output_range}.pt")


def forward_apart(cfg: TrainCfg) -> bool:
    """Whether the forward check can train as its own job beside the case's other networks: only when the params
    fix the study network (one candidate), so it need not wait for the protocol's choice."""
    return cfg.forward.enabled and len(cfg.networks) == 1


def join_parts(main: tuple, forward: tuple) -> tuple[list, list, list, dict]:
    """One case's records from its main and forward parts, the forward runs numbered after the main ones (as
    ``fit_case(part="all")`` numbers them)."""
    runs, selection, history, timings = main
    f_runs, _, f_history, f_timings = forward
    shift = len(runs)
    return (runs + [{**r, "run": r["run"] + shift} for r in f_runs], selection,
            history + [{**h, "run": h["run"] + shift} for h in f_history], {**timings, **f_timings})


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool


def fit_case_in_worker(task: str, params: dict, data_dir: Path, case: str, part: str = "all"
                       ) -> tuple[list, list, list, dict]:
    """``fit_case`` in a spawned worker process, with its own torch threads and compile cache."""
    cfg = parse_config(TrainCfg, params, "rre.train")
    torch.set_num_threads(cfg.threads or 1)
    return fit_case(StageContext(task=task, params=params, data_dir=data_dir), cfg, case, part)
