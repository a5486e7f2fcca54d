"""Typed configs of the `particles:` section of params.yaml (validated before any work starts)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from phys_ml.stages.common.config import Config, parse_config
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.optim import OPTIMIZERS, OptimizerSpec, parse_optimizer

from .datasets import Task2Spec, Task3Spec
from .simulator import Physics

SUBTASKS = ("task2", "task31", "task32")
Device = Literal["auto", "cpu", "cuda"]


class PhysicsFields(Config):
    coupling: float = Field(ge=0)
    softening: float = Field(gt=0)
    dt: float = Field(gt=0)

    def physics(self) -> Physics:
        return Physics(coupling=self.coupling, softening=self.softening, dt=self.dt)

    def _check_multiple(self, interval: float, name: str, key: str) -> None:
        k = round(interval / self.dt)
        if k < 1 or abs(k * self.dt - interval) > 1e-9 * max(1.0, interval):
            raise UserError(f"{key}.{name} must be a whole multiple of {key}.dt ({self.dt}), got {interval}")


class Task2Generate(PhysicsFields):
    seed: int = Field(ge=0)
    n_train: int = Field(ge=2)
    n_val: int = Field(ge=1)
    n_test: int = Field(ge=2)
    n_particles: int = Field(ge=2)
    position_std: float = Field(gt=0)
    velocity_std: float = Field(ge=0)
    horizon_step: float = Field(gt=0)
    n_horizons: int = Field(ge=1)

    def check(self, key: str) -> None:
        self._check_multiple(self.horizon_step, "horizon_step", key)

    def spec(self) -> Task2Spec:
        return Task2Spec(self.n_particles, self.position_std, self.velocity_std, self.horizon_step, self.n_horizons)

    @property
    def horizons(self) -> tuple[float, ...]:
        return tuple(round(self.horizon_step * (h + 1), 12) for h in range(self.n_horizons))


class Task3Generate(PhysicsFields):
    seed: int = Field(ge=0)
    n_train: int = Field(ge=2)
    n_val: int = Field(ge=1)
    n_test: int = Field(ge=2)
    start_distance: float = Field(gt=0)
    aim_jitter: float = Field(ge=0, le=1.5)
    speed_min: float = Field(gt=0)
    speed_max: float = Field(gt=0)
    sample_dt: float = Field(gt=0)
    prefix_min: int = Field(ge=3)
    prefix_max: int = Field(ge=3)
    cont_min: int = Field(ge=0)
    cont_max: int = Field(ge=0)

    def check(self, key: str, needs_continuation: bool) -> None:
        for lo, hi in (("speed_min", "speed_max"), ("prefix_min", "prefix_max"), ("cont_min", "cont_max")):
            if getattr(self, lo) > getattr(self, hi):
                raise UserError(f"{key}.{lo} must be <= {key}.{hi} ({getattr(self, hi)}), got {getattr(self, lo)}")
        if needs_continuation and self.cont_min < 1:
            raise UserError(f"{key}.cont_min must be >= 1 for task 3.2, got {self.cont_min}")
        self._check_multiple(self.sample_dt, "sample_dt", key)

    def spec(self) -> Task3Spec:
        return Task3Spec(self.start_distance, self.aim_jitter, self.speed_min, self.speed_max, -1.0, 0.0,
                         self.sample_dt, self.prefix_min, self.prefix_max, self.cont_min, self.cont_max)


class Generate(Config):
    task2: Task2Generate
    task31: Task3Generate
    task32: Task3Generate


# ---------------------------------------------------------------- training
class Fit(Config):
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    optimizer: OptimizerSpec


class GNNFit(Fit):
    hidden: int = Field(ge=1)
    layers: int = Field(ge=1)


class Task2Studies(Config):
    """The paper's Sec. 1.4 studies, run on the first horizon with a training subset."""

    enabled: bool
    train_size: int = Field(ge=2)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)  # for the optimizer and learning-rate studies
    optimizers: list[OptimizerSpec] = Field(min_length=1)
    base_optimizer: OptimizerSpec  # the learning-rate and batch-size studies vary this one
    learning_rates: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)
    batch_sizes: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)


class Task2Train(Config):
    seed: int = Field(ge=0)
    device: Device
    train_sizes: list[Annotated[int, Field(ge=2)]] = Field(min_length=1)
    mlp: Fit
    gnn: GNNFit
    studies: Task2Studies


class Task31Compare(Config):
    """The paper's Sec. 2.4 optimizer comparison; ``optional_optimizers`` run only if their name is registered."""

    enabled: bool
    epochs: int = Field(ge=1)
    optimizers: list[OptimizerSpec]
    optional_optimizers: list[dict[str, Any]] = Field(default_factory=list)

    def selected(self) -> tuple[list[Any], list[str]]:
        """(optimizer choices to run, names skipped because they are not registered)."""
        run = list(self.optimizers)
        skipped = []
        for i, spec in enumerate(self.optional_optimizers):
            name = spec.get("name")
            if name in OPTIMIZERS:
                run.append(parse_optimizer(spec, f"particles.train.task31.compare.optional_optimizers.{i}"))
            else:
                skipped.append(str(name))
        return run, skipped


class Task31Train(Fit):
    seed: int = Field(ge=0)
    device: Device
    grad_clip: float | None = Field(gt=0)  # clamp each gradient element (null: off, as in the paper)
    hidden: int = Field(ge=1)
    fc: int = Field(ge=1)
    features: Literal["positions", "positions_velocities"]
    compare: Task31Compare


class Task32Train(Fit):
    seed: int = Field(ge=0)
    device: Device
    grad_clip: float | None = Field(gt=0)  # clamp each gradient element (null: off, as in the paper)
    models: list[Literal["gru", "lstm", "gru_residual", "lstm_residual"]] = Field(min_length=1)
    hidden: int = Field(ge=1)
    layers: int = Field(ge=1)
    fc: int = Field(ge=1)


class Evaluate(Config):
    ls_min_distance: float = Field(ge=0)  # least-squares baseline: skip samples this close to a fixed charge


TRAIN_MODELS = {"task2": Task2Train, "task31": Task31Train, "task32": Task32Train}


def generate_config(params: dict[str, Any], subtask: str) -> Task2Generate | Task3Generate:
    """The generate section of one sub-task, parsed and cross-checked."""
    key = f"particles.generate.{subtask}"
    model = Task2Generate if subtask == "task2" else Task3Generate
    cfg = parse_config(model, params, key)
    if subtask == "task2":
        cfg.check(key)
    else:
        cfg.check(key, needs_continuation=subtask == "task32")
    return cfg


def train_config(params: dict[str, Any], subtask: str) -> Task2Train | Task31Train | Task32Train:
    return parse_config(TRAIN_MODELS[subtask], params, f"particles.train.{subtask}")


def evaluate_config(params: dict[str, Any]) -> Evaluate:
    return parse_config(Evaluate, params, "particles.evaluate")


def check_all(params: dict[str, Any]) -> None:
    """Validate every particles section (used by the tests and before a full run)."""
    for sub in SUBTASKS:
        generate_config(params, sub)
        train_config(params, sub)
    evaluate_config(params)


def optimizer_label(choice: Any) -> str:
    """A short readable name of an optimizer choice, e.g. 'sgd lr=0.01 momentum=0.9'."""
    hyper = choice.kwargs()
    parts = [choice.name, f"lr={hyper['lr']:g}"] if "lr" in hyper else [choice.name]
    if hyper.get("momentum"):
        parts.append(f"momentum={hyper['momentum']:g}")
    if "h" in hyper:
        parts.append(f"h={hyper['h']:g}")
    return " ".join(parts)
