"""The tasks of phys-ml: name -> pipeline module. Pipelines are imported only when a command needs them."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from .common.errors import UserError

STAGE_NAMES = ("generate", "train", "evaluate")


@dataclass(frozen=True)
class TaskInfo:
    name: str
    title: str
    paper: str
    subtasks: tuple[str, ...] = ()

    @property
    def module_name(self) -> str:
        return f"phys_ml.stages.{self.name}.pipeline"

    def pipeline(self) -> ModuleType:
        try:
            return importlib.import_module(self.module_name)
        except ModuleNotFoundError as exc:
            if exc.name == self.module_name:
                raise UserError(f"task '{self.name}' has no pipeline yet") from None
            raise


TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in (
        TaskInfo("particles", "Charged-particle regression", "charged-particles-regression",
                 ("task2", "task31", "task32")),
        TaskInfo("thermo", "Thermodynamic optimizers on the two-spiral problem",
                 "thermodynamic-parameterization"),
        TaskInfo("groundwater", "Freyberg groundwater model: amortized inference and ensemble smoother",
                 "groundwater-amortized-inference", ("flow", "ies")),
        TaskInfo("diphoton", "Higgs diphoton conditional normalizing flow", "diphoton-cnf-mdmm"),
        TaskInfo("rre", "Richards-equation P-DL and its optimizers", "rre-pdl-optimizers"),
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
    fn = getattr(task.pipeline(), stage, None)
    if fn is None:
        raise UserError(f"task '{task.name}' has no '{stage}' stage")
    return fn
