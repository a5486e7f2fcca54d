"""Typed configs of the `particles:` section of params.yaml (validated before any work starts).

Every value comes from params.yaml; these classes carry only types, bounds and the cross-field checks
(pydantic validators, reported as ``particles.generate.task2.horizon_step must be ...``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from phys_ml.stages.common.config import Config, parse_config
from phys_ml.stages.common.optim import OPTIMIZERS, OptimizerSpec, parse_optimizer

from .datasets import Task2Spec, Task3Spec
from .simulator import Physics

SUBTASKS = ("task2", "task31", "task32")
Device = Literal["auto", "cpu", "cuda"]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
GradClip = Annotated[float, Field(gt=0)] | None  # clamp each gradient element to +-grad_clip (None: off)


# ---------------------------------------------------------------- generate
class PhysicsFields(Config):
    coupling: NonNegative
    softening: Positive
    dt: Positive

    def physics(self) -> Physics:
        return Physics(coupling=self.coupling, softening=self.softening, dt=self.dt)

    def _require_multiple(self, name: str) -> None:
        """``name`` (a time interval) must be a whole number of integration steps ``dt``."""
        interval = getattr(self, name)
        k = round(interval / self.dt)
        if k < 1 or abs(k * self.dt - interval) > 1e-9 * max(1.0, interval):
            raise ValueError(f".{name} must be a whole multiple of dt ({self.dt}), got {interval}")


class Simulations(PhysicsFields):
    """A simulated data set: its seed, split sizes and physics."""

    seed: Annotated[int, Field(ge=0)]
    n_train: Annotated[int, Field(ge=2)]
    n_val: Annotated[int, Field(ge=1)]
    n_test: Annotated[int, Field(ge=2)]


class Task2Generate(Simulations):
    n_particles: Annotated[int, Field(ge=2)]
    position_std: Positive
    velocity_std: NonNegative
    horizon_step: Positive
    n_horizons: Annotated[int, Field(ge=1)]

    @model_validator(mode="after")
    def _horizon_on_grid(self) -> Task2Generate:
        self._require_multiple("horizon_step")
        return self

    def spec(self) -> Task2Spec:
        return Task2Spec(self.n_particles, self.position_std, self.velocity_std, self.horizon_step, self.n_horizons)

    @property
    def horizons(self) -> tuple[float, ...]:
        return tuple(round(self.horizon_step * (h + 1), 12) for h in range(self.n_horizons))


Count = Annotated[int, Field(ge=0)]


class Task3Generate(Simulations):
    start_distance: Positive
    aim_jitter: Annotated[float, Field(ge=0, le=1.5)]
    speed_min: Positive
    speed_max: Positive
    sample_dt: Positive
    prefix_min: Annotated[int, Field(ge=3)]
    prefix_max: Annotated[int, Field(ge=3)]
    cont_min: Count
    cont_max: Count

    @model_validator(mode="after")
    def _ranges(self) -> Task3Generate:
        for lo, hi in (("speed_min", "speed_max"), ("prefix_min", "prefix_max"), ("cont_min", "cont_max")):
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(f".{lo} must be <= {hi} ({getattr(self, hi)}), got {getattr(self, lo)}")
        self._require_multiple("sample_dt")
        return self

    def spec(self) -> Task3Spec:
        return Task3Spec(self.start_distance, self.aim_jitter, self.speed_min, self.speed_max, -1.0, 0.0,
                         self.sample_dt, self.prefix_min, self.prefix_max, self.cont_min, self.cont_max)


class Task32Generate(Task3Generate):
    """Task 3.2 predicts the continuation, so every trajectory needs one."""

    @model_validator(mode="after")
    def _has_continuation(self) -> Task32Generate:
        if self.cont_min < 1:
            raise ValueError(f".cont_min must be >= 1 for task 3.2, got {self.cont_min}")
        return self


# ---------------------------------------------------------------- training
class Fit(Config):
    epochs: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=1)]
    optimizer: OptimizerSpec


class GNNFit(Fit):
    hidden: Annotated[int, Field(ge=1)]
    layers: Annotated[int, Field(ge=1)]


class Task2Studies(Config):
    """The paper's Sec. 1.4 studies, run on the first horizon with a training subset."""

    enabled: bool
    train_size: Annotated[int, Field(ge=2)]
    epochs: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=1)]  # for the optimizer and learning-rate studies
    optimizers: list[OptimizerSpec] = Field(min_length=1)
    base_optimizer: OptimizerSpec  # the learning-rate and batch-size studies vary this one
    learning_rates: list[Positive] = Field(min_length=1)
    batch_sizes: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)


class Task2Train(Config):
    seed: Annotated[int, Field(ge=0)]
    device: Device
    train_sizes: list[Annotated[int, Field(ge=2)]] = Field(min_length=1)
    mlp: Fit
    gnn: GNNFit
    studies: Task2Studies


class Task31Compare(Config):
    """The paper's Sec. 2.4 optimizer comparison; ``optional_optimizers`` run only if their name is registered."""

    enabled: bool
    epochs: Annotated[int, Field(ge=1)]
    optimizers: list[OptimizerSpec]
    optional_optimizers: list[dict[str, Any]]

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


class SequenceFit(Fit):
    seed: Annotated[int, Field(ge=0)]
    device: Device
    grad_clip: GradClip
    hidden: Annotated[int, Field(ge=1)]
    fc: Annotated[int, Field(ge=1)]


class Task31Train(SequenceFit):
    features: Literal["positions", "positions_velocities"]
    compare: Task31Compare


class Task32Train(SequenceFit):
    models: list[Literal["gru", "lstm", "gru_residual", "lstm_residual"]] = Field(min_length=1)
    layers: Annotated[int, Field(ge=1)]


class Evaluate(Config):
    ls_min_distance: NonNegative  # least-squares baseline: skip samples this close to a fixed charge


GENERATE_MODELS = {"task2": Task2Generate, "task31": Task3Generate, "task32": Task32Generate}
TRAIN_MODELS = {"task2": Task2Train, "task31": Task31Train, "task32": Task32Train}


def generate_config(params: dict[str, Any], subtask: str) -> Task2Generate | Task3Generate:
    """The generate section of one sub-task, parsed and cross-checked."""
    return parse_config(GENERATE_MODELS[subtask], params, f"particles.generate.{subtask}")


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
