"""Typed params of the thermo task (params.yaml section ``thermo``): types and bounds only, every value comes
from params.yaml."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from phys_ml.stages.common.config import Config
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.optim import OptimizerChoice, parse_optimizer


class GenerateConfig(Config):
    seed: int = Field(ge=0)
    n_train: int = Field(ge=2)
    n_test: int = Field(ge=2)
    noise: float = Field(ge=0)
    turns: float = Field(gt=0)

    @field_validator("n_train", "n_test")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even (half per class), got {value}")
        return value


class TrainConfig(Config):
    seed: int = Field(ge=0)
    device: Literal["auto", "cpu", "cuda"]
    runs: int = Field(ge=1, le=1000)  # independent networks (seeds) per optimizer, trained as one ensemble
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    hidden: int = Field(ge=1)
    eval_every: int = Field(ge=1)  # epochs between evaluations on the full train and test sets
    # label -> {name: <registered optimizer>, <hyperparameters>}; labels name the runs in tables and figures
    optimizers: dict[str, Any] = Field(min_length=1)

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
    table_epochs: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)
    grid: int = Field(ge=10, le=2000)  # decision-boundary figure resolution per axis
    boundary_runs: int = Field(ge=1, le=10)  # runs per optimizer drawn in the boundary figure
