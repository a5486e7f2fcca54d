"""Typed configs of the amortized-inference stages (params: groundwater.flow); values live in params.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from phys_ml.stages.common.config import Config

from .flow import FlowSizes
from .flow_training import TrainSettings


class FlowModelConfig(Config):
    n_affine: int = Field(ge=1, description="conditional affine coupling layers (cINN)")
    n_spline: int = Field(ge=0, description="conditional rational-quadratic spline coupling layers (cNSF)")
    hidden: int = Field(ge=4, description="width of the two hidden layers of every coupling sub-network")
    bins: int = Field(ge=2)
    spline_bound: float = Field(gt=0)
    coupling_dims: int | None = Field(ge=2, le=706, description="leading prior modes the couplings act on")
    rest: Literal["prior", "diagonal"] = Field(description="the other modes: the prior, or a conditional diagonal")
    dropout: float = Field(ge=0, lt=1)
    summary_dim: int = Field(ge=1)
    conv_channels: int = Field(ge=1)
    elementwise: bool = Field(description="a conditional elementwise affine layer before the couplings (ours)")

    def sizes(self, mask_seed: int) -> FlowSizes:
        return FlowSizes(mask_seed=mask_seed, **self.model_dump())


class FlowTrainConfig(Config):
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=2)
    lr: float = Field(gt=0)
    lr_decay: float = Field(gt=0, le=1)
    decay_epochs: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    grad_clip: float = Field(ge=0, description="max gradient norm; 0 disables clipping")
    patience: int = Field(ge=1, description="early stopping: epochs without a better validation loss")
    min_steps: int = Field(ge=1, le=25, description="shortest record kept by random truncation")
    truncate_prob: float = Field(ge=0, le=1)
    drop_well_prob: float = Field(ge=0, lt=1)

    def settings(self, noise_sd: float) -> TrainSettings:
        return TrainSettings(noise_sd=noise_sd, **self.model_dump())


class FlowEvaluateConfig(Config):
    n_samples: int = Field(ge=10, description="posterior samples per reference field (paper: 2,000)")
    n_samples_test: int = Field(ge=10, description="posterior samples per test-split data set")
    n_predictive: int = Field(ge=0, description="posterior samples per reference field run through MODFLOW")
    steps: list[int] = Field(min_length=1, description="observed steps for the errors-vs-record-length study")
    levels: list[float] = Field(min_length=1, description="credible levels of the calibration curve")

    @model_validator(mode="after")
    def _ranges(self) -> FlowEvaluateConfig:
        if any(not 1 <= s <= 25 for s in self.steps):
            raise ValueError("steps must lie in 1..25")
        if any(not 0 < lv < 1 for lv in self.levels):
            raise ValueError("levels must lie strictly between 0 and 1")
        return self


class FlowConfig(Config):
    seed: int
    device: Literal["auto", "cpu", "cuda"]
    threads: int = Field(ge=0, description="torch CPU threads; 0 leaves torch's default")
    model: FlowModelConfig
    train: FlowTrainConfig
    evaluate: FlowEvaluateConfig
