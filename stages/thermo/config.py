"""Typed params of the thermo task (params.yaml section ``thermo``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from phys_ml.stages.common.config import Config
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.optim import OptimizerChoice, parse_optimizer


class GenerateConfig(Config):
    seed: int = Field(0, ge=0)
    n_train: int = Field(500, ge=2)
    n_test: int = Field(1000, ge=2)
    noise: float = Field(0.02, ge=0)
    turns: float = Field(4.0, gt=0)

    @field_validator("n_train", "n_test")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even (half per class), got {value}")
        return value


def _default_optimizers() -> dict[str, Any]:
    return {"adam": {"name": "adam", "lr": 0.005}, "adlala": {"name": "adlala"}}


class TrainConfig(Config):
    seed: int = Field(1, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    runs: int = Field(10, ge=1, le=1000)  # independent networks (seeds) per optimizer, trained as one ensemble
    epochs: int = Field(4000, ge=1)
    batch_size: int = Field(25, ge=1)
    hidden: int = Field(100, ge=1)
    eval_every: int = Field(50, ge=1)  # epochs between evaluations on the full train and test sets
    # label -> {name: <registered optimizer>, <hyperparameters>}; labels name the runs in tables and figures
    optimizers: dict[str, Any] = Field(default_factory=_default_optimizers, min_length=1, validate_default=True)

    @field_validator("optimizers", mode="before")
    @classmethod
    def _choices(cls, value: Any) -> dict[str, OptimizerChoice]:
        if not isinstance(value, dict):
            return value  # the type check reports it
        out = {}
        for label, spec in value.items():
            key = f"thermo.train.optimizers.{label}"
            if not isinstance(label, str) or not label.replace("_", "").replace("-", "").isalnum():
                raise UserError(f"{key}: a label must be letters, digits, '-' or '_'")
            out[label] = parse_optimizer(spec, key)  # raises UserError naming the bad hyperparameter
        return out


class EvaluateConfig(Config):
    table_epochs: list[int] = Field(default_factory=lambda: [500, 1000, 2000, 4000], min_length=1)
    grid: int = Field(200, ge=10, le=2000)  # decision-boundary figure resolution per axis
    boundary_runs: int = Field(1, ge=1, le=10)  # runs per optimizer drawn in the boundary figure

    @field_validator("table_epochs")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(e < 1 for e in value):
            raise ValueError(f"epochs must be >= 1, got {value}")
        return value
