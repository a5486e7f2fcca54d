"""The thermo task's report section: tables from metrics.json beside the paper's numbers, and the figures."""

from __future__ import annotations

from pathlib import Path

from phys_ml.stages.common.report import ReportSection, markdown_table, task_metrics

from . import paper
from .store import TASK

FIGURES = ("curves", "boundaries", "thermostat")


def pm(block: dict, key: str, scale: float = 1.0, digits: int = 1) -> str:
    """'mean ± sd' of ``block[key]`` (over the runs that had not diverged), '–' when absent."""
    if block.get(key) is None:
        return "–"
    return f"{scale * block[key]:.{digits}f} ± {scale * block[key + '_sd']:.{digits}f}"


def cell(block: dict, name: str, epoch: int, runs: int, scale: float = 1.0, digits: int = 1) -> str:
    """One table cell at ``epoch``: 'diverged' when every run had diverged by then, else the mean ± sd of the
    other runs, with '(k of n diverged)' when some had."""
    key, k = f"{name}_e{epoch}", int(block.get(f"diverged_e{epoch}", 0))
    if k and block.get(key) is None:
        return "diverged"
    return pm(block, key, scale, digits) + (f" ({k} of {runs} diverged)" if k else "")


def _comparison(metrics: dict, last: int, runs: int) -> list[str]:
    """Adam against AdLaLa at the last epoch, beside the paper's ten-run averages, and the target's verdict."""
    key = f"test_acc_e{last}"
    if not all(metrics.get(k, {}).get(key) is not None for k in ("adam", "adlala")):
        return []
    ours = {k: 100 * metrics[k][key] for k in ("adam", "adlala")}
    sds = [100 * metrics[k][f"{key}_sd"] for k in ("adam", "adlala")]
    gap = ours["adlala"] - ours["adam"]
    gap_se = (sum(sd * sd for sd in sds) / max(runs or 1, 1)) ** 0.5  # standard error of the difference
    paper_acc, paper_loss = paper.TEN_RUN_ACCURACY_4000, paper.TEN_RUN_TEST_LOSS_4000
    rows = [
        ["Adam test accuracy (%)", cell(metrics["adam"], "test_acc", last, runs, 100), f"≈ {paper_acc['adam']}"],
        ["AdLaLa test accuracy (%)", cell(metrics["adlala"], "test_acc", last, runs, 100),
         f"≈ {paper_acc['adlala']}"],
        ["AdLaLa − Adam (points, ± standard error)", f"{gap:.1f} ± {gap_se:.1f}",
         f"≈ {paper_acc['adlala'] - paper_acc['adam']}"],
        ["Adam test loss", cell(metrics["adam"], "test_loss", last, runs, 1, 3),
         "{:.3f} ± {:.3f}".format(*paper_loss["adam"])],
        ["AdLaLa test loss", cell(metrics["adlala"], "test_loss", last, runs, 1, 3),
         "{:.3f} ± {:.3f}".format(*paper_loss["adlala"])],
    ]
    verdict = "meets" if gap >= 10 else "misses"
    return [f"\nAt epoch {last} (paper: ten-run averages at epoch 4,000):\n",
            markdown_table(["quantity", "ours", "paper"], rows),
            f"\nTarget (AdLaLa at least 10 points above Adam at 4,000 epochs): {verdict} "
            f"({gap:.1f} ± {gap_se:.1f} points{'' if last == 4000 else f', at epoch {last}'}).\n"]


def _thermostat(metrics: dict, labels: list[str]) -> list[str]:
    rows = [[label, *(f"{metrics[label][k]:.3g}" if k in metrics[label] else "–"
                      for k in ("kin_first_late", "kin_rest_late", "xi_first_late"))]
            for label in labels if "kin_first_late" in metrics[label]]
    if not rows:
        return []
    return ["\nThermostat state, averaged over the second half of training and over runs. Kinetic temperature "
            "= mean p², read after the kick B_h, so it includes the minibatch gradient's h² |∇L|² on top of "
            "the target tau (1e-4 at the default settings). Without gradient noise AdLaLa's ξ would settle "
            "at sigma_A² / (2 tau1) (0.5 at the defaults); a larger ξ is the thermostat removing the heat "
            "of the minibatch noise:\n",
            markdown_table(["optimizer", "first layer mean p²", "other layers mean p²", "first layer ξ"], rows)]


def _cost(metrics: dict, runs: int, last: int) -> str:
    steps = metrics.get("steps_per_epoch")
    count = (f"{last} epochs of {steps} minibatch steps, {last * steps:,} gradient evaluations per network"
             if steps else f"{last} epochs per network")
    return (f"\nCost: {count}; each optimizer's {runs} networks are trained at once as one batched ensemble. "
            "Wall times are in `data/timings/thermo-train.json` (not a pipeline output); "
            "`benchmarks/thermo_bench.py` measures speed.\n")


def _divergence(metrics: dict, labels: list[str], runs: int) -> str:
    diverged = {label: metrics[label].get("diverged", 0) for label in labels}
    if not any(diverged.values()):
        return ""
    names = ", ".join(f"{label} {k} of {runs}" for label, k in diverged.items() if k)
    return (f"\n**Diverged runs**: {names} (training loss not finite, or over 10⁴ times its initial value, at an "
            "evaluation); they are kept, left out of the means from the epoch they diverged on, and counted "
            "in the cells.\n")


def report_section(data_dir: Path) -> ReportSection | None:
    task_dir = Path(data_dir) / TASK
    metrics = task_metrics(data_dir, TASK)
    if metrics is None:
        return None
    labels = [k for k, v in metrics.items() if isinstance(v, dict)]
    epochs = sorted({int(k[len("test_acc_e"):]) for lbl in labels for k in metrics[lbl]
                     if k.startswith("test_acc_e") and not k.endswith("_sd")})
    runs, last = metrics.get("runs"), metrics.get("epochs")
    md = [f"Two-spiral classification (4 turns, 500 train / 1,000 test points), network 2-100-1, BCE, batch 25; "
          f"{runs} runs per optimizer (same initialisations for every optimizer), {last} epochs. "
          f"Test accuracy (%) on the full test set, mean ± sd over runs. Paper: {paper.SOURCE}.\n"]
    rows = [[label, *(cell(metrics[label], "test_acc", e, runs, 100) for e in epochs),
             cell(metrics[label], "test_loss", last, runs, 1, 3)] for label in labels]
    for name, values in paper.SINGLE_RUN_ACCURACY.items():
        rows.append([f"paper, {name} (one run)", *(values.get(e, "–") for e in epochs), "–"])
    md.append(markdown_table(["optimizer", *(f"epoch {e}" for e in epochs), f"test loss, epoch {last}"], rows))
    md.append(_divergence(metrics, labels, runs))
    md += _comparison(metrics, last, runs)
    md += _thermostat(metrics, labels)
    md.append(_cost(metrics, runs, last))
    figs = [task_dir / "figures" / f"{name}.png" for name in FIGURES]
    return ReportSection(title="Thermodynamic optimizers: two spirals", markdown="\n".join(md),
                         figures=[p for p in figs if p.is_file()])
