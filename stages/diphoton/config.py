"""Typed params of the diphoton task (params.yaml section ``diphoton``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from phys_ml.stages.common.config import Config

LOSSES = ("log", "kl", "mmd", "mdmm")
Loss = Literal["log", "kl", "mmd", "mdmm"]


class OpenDataConfig(Config):
    """ATLAS open-data ROOT files (tree ``mini``); used when generate.source is ``opendata``."""

    data_files: list[str] = Field(default_factory=list)
    mc_files: list[str] = Field(default_factory=list)
    require_tight_id: bool = False
    require_trigger: bool = False


class GenerateConfig(Config):
    seed: int = 1
    source: Literal["simulated", "opendata"] = "simulated"
    n_mc: int = Field(60_000, ge=100)
    n_data: int = Field(60_000, ge=100)
    opendata: OpenDataConfig = OpenDataConfig()


class TrainConfig(Config):
    seed: int = 2
    threads: int = Field(2, ge=0)
    losses: list[Loss] = Field(default_factory=lambda: list(LOSSES), min_length=1)
    epochs: int = Field(1000, ge=1)
    # per-loss multiplier of epochs (e.g. {log: 4}: the cheap log-loss steps get 4x the epochs); default 1
    epochs_scale: dict[Loss, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    max_steps_per_epoch: int = Field(0, ge=0)  # 0: every batch of the training split
    n_blocks: int = Field(10, ge=1)
    hidden_units: list[int] = Field(default_factory=lambda: [128, 128], min_length=1)
    log_scale_bound: float = Field(3.0, gt=0)
    validation_fraction: float = Field(0.1, gt=0, lt=1)
    log_pt: bool = True  # the flow works in log pT (standardized); False: in pT
    batch_size: int = Field(25_600, ge=2)  # log loss and KL (Sec. 3)
    batch_size_mmd: int = Field(1_000, ge=2)  # MMD and MDMM (Sec. 3)
    lr_start: float = Field(1e-3, gt=0)
    lr_end: float = Field(1e-5, gt=0)
    clip_norm: float = Field(5.0, ge=0)  # 0: no clipping
    kde_grid: int = Field(128, ge=8)
    kde_bandwidth_factor: float = Field(0.5, gt=0)
    kde_data_events: int = Field(200_000, ge=100)
    mmd_sigma: float = Field(0.1, gt=0)
    mmd_form: Literal["standard", "paper"] = "standard"
    mdmm_epsilon_rel: float = Field(0.015, ge=0)  # epsilon = (1 + rel) * data-vs-data MMD (paper: 2.01 vs 1.98)
    mdmm_damping: float = Field(100.0, ge=0)
    mdmm_lambda_lr: float = Field(200.0, gt=0)
    mdmm_lambda_init: float = Field(0.0, ge=0)
    checkpoint_every: int = Field(1, ge=1)

    def epochs_for(self, loss: str) -> int:
        """Epochs of one loss: epochs x epochs_scale[loss], at least 1."""
        return max(1, round(self.epochs * self.epochs_scale.get(loss, 1.0)))


class EvaluateConfig(Config):
    seed: int = 3
    threads: int = Field(2, ge=0)
    n_events: int = Field(20_000, ge=100)  # held-out events used for the evaluation (0 < n <= validation size)
    physical_range: bool = True  # wrap transformed phi into [-pi, pi), cap pT at the training events' largest
    classifier_hidden: list[int] = Field(default_factory=lambda: [32, 32], min_length=1)
    classifier_epochs: int = Field(10, ge=1)
    classifier_batch: int = Field(1_000, ge=2)
    hist_bins: int = Field(60, ge=5)
