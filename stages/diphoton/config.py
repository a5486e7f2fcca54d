"""Typed params of the diphoton task (params.yaml section ``diphoton``): types and bounds only, every value comes
from params.yaml."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from phys_ml.stages.common.config import Config

LOSSES = ("log", "kl", "mmd", "mdmm")
Loss = Literal["log", "kl", "mmd", "mdmm"]


class OpenDataConfig(Config):
    """ATLAS open-data ROOT files (tree ``mini``); used when generate.source is ``opendata``."""

    data_files: list[str]
    mc_files: list[str]
    require_tight_id: bool
    require_trigger: bool


class GenerateConfig(Config):
    seed: int = Field(ge=0)
    source: Literal["simulated", "opendata"]
    n_mc: int = Field(ge=100)
    n_data: int = Field(ge=100)
    opendata: OpenDataConfig


class TrainConfig(Config):
    seed: int = Field(ge=0)
    threads: int = Field(ge=0)
    losses: list[Loss] = Field(min_length=1)
    epochs: int = Field(ge=1)  # the most epochs of a run (a cap: the convergence rule normally stops it first)
    # per-loss multiplier of epochs (e.g. {log: 3}: the cheap log-loss steps get 3x the epochs); absent: 1
    epochs_scale: dict[Loss, Annotated[float, Field(gt=0)]]
    # convergence rule, the same for every loss: when the validation score has not improved on its best by more
    # than min_improvement (relative) for ``patience`` epochs the learning rate drops by lr_drop; at the plateau
    # where it would go below lr_end the run stops; the evaluated checkpoint is the epoch of the lowest score
    patience: int = Field(ge=1)
    min_improvement: float = Field(ge=0, lt=1)
    lr_drop: float = Field(gt=0, lt=1)
    val_events: int = Field(ge=100)  # validation events (per sample) the score is computed on
    max_steps_per_epoch: int = Field(ge=0)  # 0: every batch of the training split
    n_blocks: int = Field(ge=1)
    hidden_units: list[int] = Field(min_length=1)
    log_scale_bound: float = Field(gt=0)
    test_fraction: float = Field(gt=0, lt=1)  # the last events of each sample: evaluation only, never trained on
    validation_fraction: float = Field(gt=0, lt=1)  # of the rest: the validation split (stopping, checkpoint)
    log_pt: bool  # the flow works in log pT (standardized); False: in pT
    batch_size: int = Field(ge=2)  # log loss and KL (Sec. 3)
    batch_size_mmd: int = Field(ge=2)  # MMD and MDMM (Sec. 3)
    lr_start: float = Field(gt=0)
    lr_end: float = Field(gt=0)
    clip_norm: float = Field(ge=0)  # 0: no clipping
    kde_grid: int = Field(ge=8)
    kde_bandwidth_factor: float = Field(gt=0)
    kde_data_events: int = Field(ge=100)
    # one bandwidth (the paper's kernel) or several: the kernel is then the mean of the Gaussian kernels
    mmd_sigma: float | list[float] = Field(union_mode="left_to_right")
    mmd_form: Literal["standard", "paper"]
    # columns the MMD kernel compares beside the flow's features (kernel_features.py): "pt" (GeV), "log_m_gg"
    mmd_extra: list[Literal["pt", "log_m_gg"]] = Field(default_factory=list)
    mdmm_epsilon_rel: float = Field(ge=0)  # epsilon = (1 + rel) * data-vs-data MMD (paper: 2.01 vs 1.98)
    mdmm_damping: float = Field(ge=0)
    mdmm_lambda_lr: float = Field(gt=0)
    mdmm_lambda_init: float = Field(ge=0)

    @model_validator(mode="after")
    def _decaying_lr(self) -> TrainConfig:
        if self.lr_end > self.lr_start:
            raise ValueError(f".lr_end ({self.lr_end}) must not exceed lr_start ({self.lr_start}): the learning "
                             "rate falls from lr_start to lr_end")
        return self

    @field_validator("mmd_sigma")
    @classmethod
    def _positive_bandwidths(cls, value):
        sigmas = value if isinstance(value, list) else [value]
        if not sigmas or min(sigmas) <= 0:
            raise ValueError("must be a bandwidth > 0 or a non-empty list of them")
        return value

    @property
    def mmd_sigmas(self) -> tuple[float, ...]:
        return tuple(self.mmd_sigma) if isinstance(self.mmd_sigma, list) else (self.mmd_sigma,)

    def epochs_for(self, loss: str) -> int:
        """Epochs of one loss: epochs x epochs_scale[loss], at least 1."""
        return max(1, round(self.epochs * self.epochs_scale.get(loss, 1.0)))


class EvaluateConfig(Config):
    seed: int = Field(ge=0)
    threads: int = Field(ge=0)
    n_events: int = Field(ge=100)  # test events used for the evaluation (0 < n <= test split size)
    physical_range: bool  # wrap transformed phi into [-pi, pi), cap pT and |eta| at the training events' largest
    classifier_hidden: list[int] = Field(min_length=1)
    classifier_epochs: int = Field(ge=1)
    classifier_batch: int = Field(ge=2)
    hist_bins: int = Field(ge=5)
