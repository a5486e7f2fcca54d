"""The tasks of phys-ml: each task's stage functions (``<task>/pipeline.py``) and its report section."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .common.errors import UserError
from .common.report import ReportSection
from .diphoton import pipeline as diphoton_pipeline
from .diphoton import report as diphoton_report
from .groundwater import pipeline as groundwater_pipeline
from .groundwater import report as groundwater_report
from .particles import pipeline as particles_pipeline
from .particles import report as particles_report
from .rre import pipeline as rre_pipeline
from .rre import report as rre_report
from .thermo import pipeline as thermo_pipeline
from .thermo import report as thermo_report

STAGE_NAMES = ("generate", "train", "evaluate")


@dataclass(frozen=True)
class TaskInfo:
    name: str
    title: str
    paper: str
    pipeline: ModuleType  # generate(ctx, subtask), train(ctx, subtask), evaluate(ctx, subtask)
    report_section: Callable[[Path], ReportSection | None]  # None when the task has not run
    subtasks: tuple[str, ...] = ()


TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in (
        TaskInfo("particles", "Charged-particle regression", "charged-particles-regression",
                 particles_pipeline, particles_report.report_section, ("task2", "task31", "task32")),
        TaskInfo("thermo", "Thermodynamic optimizers on the two-spiral problem",
                 "thermodynamic-parameterization", thermo_pipeline, thermo_report.report_section),
        TaskInfo("groundwater", "Freyberg groundwater model: amortized inference and ensemble smoother",
                 "groundwater-amortized-inference", groundwater_pipeline, groundwater_report.report_section,
                 ("jacobian", "flow", "ies", "glm", "refine")),
        TaskInfo("diphoton", "Higgs diphoton conditional normalizing flow", "diphoton-cnf-mdmm",
                 diphoton_pipeline, diphoton_report.report_section),
        TaskInfo("rre", "Richards-equation P-DL and its optimizers", "rre-pdl-optimizers",
                 rre_pipeline, rre_report.report_section),
    )
}


def get_task(name: str) -> TaskInfo:
    if name not in TASKS:
        raise UserError(f"unknown task '{name}' (known: {', '.join(TASKS)})")
    return TASKS[name]


def stage_function(task: TaskInfo, stage: str, subtask: str | None):
    """The pipeline function for ``stage``, after checking the sub-task name."""
    if subtask is not None and subtask not in task.subtasks:
        known = ", ".join(task.subtasks) or "none"
        raise UserError(f"task '{task.name}' has no sub-task '{subtask}' (known: {known})")
    fn = getattr(task.pipeline, stage, None)
    if fn is None:
        raise UserError(f"task '{task.name}' has no '{stage}' stage")
    return fn
