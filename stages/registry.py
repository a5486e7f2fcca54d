"""The tasks of phys-ml: each task's stage functions (``<task>/pipeline.py``) and its report section."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .common.config import Config, parse_config
from .common.errors import UserError
from .common.report import ReportConfig, ReportSection
from .diphoton import config as diphoton_config
from .diphoton import pipeline as diphoton_pipeline
from .diphoton import report as diphoton_report
from .groundwater import config as groundwater_config
from .groundwater import pipeline as groundwater_pipeline
from .groundwater import report as groundwater_report
from .particles import config as particles_config
from .particles import pipeline as particles_pipeline
from .particles import report as particles_report
from .rre import config as rre_config
from .rre import pipeline as rre_pipeline
from .rre import report as rre_report
from .thermo import config as thermo_config
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
    sections: dict[str, type[Config]]  # every params section of the task ("train.task2") -> its config class
    subtasks: tuple[str, ...] = ()
    subtask_stages: tuple[str, ...] = STAGE_NAMES  # the stages that take a sub-task


_PARTICLES = {**{f"generate.{k}": v for k, v in particles_config.GENERATE_MODELS.items()},
              **{f"train.{k}": v for k, v in particles_config.TRAIN_MODELS.items()},
              "evaluate": particles_config.Evaluate}

TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in (
        TaskInfo("particles", "Charged-particle regression", "charged-particles-regression",
                 particles_pipeline, particles_report.report_section, _PARTICLES, ("task2", "task31", "task32")),
        TaskInfo("thermo", "Thermodynamic optimizers on the two-spiral problem",
                 "thermodynamic-parameterization", thermo_pipeline, thermo_report.report_section,
                 {"generate": thermo_config.GenerateConfig, "train": thermo_config.TrainConfig,
                  "evaluate": thermo_config.EvaluateConfig}),
        TaskInfo("groundwater", "Freyberg groundwater model: amortized inference and ensemble smoother",
                 "groundwater-amortized-inference", groundwater_pipeline, groundwater_report.report_section,
                 {"model": groundwater_config.ModelConfig, "generate": groundwater_config.GenerateConfig,
                  "flow": groundwater_config.FlowConfig, "ies": groundwater_config.IESConfig,
                  "glm": groundwater_config.GLMConfig},
                 ("jacobian", "flow", "ies", "glm", "refine"), ("train",)),
        TaskInfo("diphoton", "Higgs diphoton conditional normalizing flow", "diphoton-cnf-mdmm",
                 diphoton_pipeline, diphoton_report.report_section,
                 {"generate": diphoton_config.GenerateConfig, "train": diphoton_config.TrainConfig,
                  "evaluate": diphoton_config.EvaluateConfig}),
        TaskInfo("rre", "Richards-equation P-DL and its optimizers", "rre-pdl-optimizers",
                 rre_pipeline, rre_report.report_section,
                 {"generate": rre_config.GenerateCfg, "train": rre_config.TrainCfg, "evaluate": rre_config.EvaluateCfg}),
    )
}
OTHER_SECTIONS: dict[str, type[Config]] = {"report": ReportConfig}  # params sections that belong to no task


def get_task(name: str) -> TaskInfo:
    if name not in TASKS:
        raise UserError(f"unknown task '{name}' (known: {', '.join(TASKS)})")
    return TASKS[name]


def stage_function(task: TaskInfo, stage: str, subtask: str | None):
    """The pipeline function for ``stage``, after checking the sub-task name."""
    if subtask is not None and subtask not in task.subtasks:
        known = ", ".join(task.subtasks) or "none"
        raise UserError(f"task '{task.name}' has no sub-task '{subtask}' (known: {known})")
    if subtask is not None and stage not in task.subtask_stages:
        raise UserError(f"`{stage} {task.name}` takes no sub-task (got '{subtask}'; sub-tasks apply to "
                        f"{' and '.join(task.subtask_stages)})")
    fn = getattr(task.pipeline, stage, None)
    if fn is None:
        raise UserError(f"task '{task.name}' has no '{stage}' stage")
    return fn


def _all_sections() -> dict[str, type[Config]]:
    """Every params section of every task (``"thermo.train"``) and the others (``"report"``) -> its config."""
    out = {f"{name}.{key}": cls for name, task in TASKS.items() for key, cls in task.sections.items()}
    return {**out, **OTHER_SECTIONS}


def check_section_names(params: dict) -> None:
    """Every section of ``params`` is one the tasks read: a misspelt one (``thermo.trian``) is named, not
    ignored. Only the section names are checked here; each stage parses the sections it uses."""
    source = getattr(params, "source", "params.yaml")
    known = _all_sections()
    tree: dict[str, set[str]] = {}
    for key in known:  # the names at each level above a config: {"": {"particles", ...}, "particles": {...}}
        parts = key.split(".")
        for depth in range(len(parts)):
            tree.setdefault(".".join(parts[:depth]), set()).add(parts[depth])

    def walk(node: dict, prefix: str) -> None:
        for name, value in node.items():
            key = f"{prefix}.{name}" if prefix else str(name)
            if str(name) not in tree.get(prefix, ()):
                where = f"section of {prefix}" if prefix else "top-level section"
                raise UserError(f"{source}: '{key}' is not a known {where} "
                                f"(known: {', '.join(sorted(tree.get(prefix, ())))})")
            if key not in known:
                if not isinstance(value, dict):
                    raise UserError(f"{key} must be a mapping, got {type(value).__name__}")
                walk(value, key)

    walk(params, "")


def validate_params(params: dict) -> None:
    """Every section of ``params`` names a known section and parses (`phys-ml profile apply` checks the file it
    writes with this); the first problem is a UserError naming it."""
    check_section_names(params)
    for key, cls in _all_sections().items():
        parse_config(cls, params, key)


def load_stage_params(path: str | Path) -> dict:
    """The params file a stage runs with, after checking its section names (`check_section_names`)."""
    from .common.params import load_params

    params = load_params(path)
    check_section_names(params)
    return params
