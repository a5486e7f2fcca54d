"""Every params config of the groundwater task (params: groundwater.*): types and bounds only, no values.

The values live in params.yaml (profiles override them); cross-field rules are validators, so bad params fail
before any work with a message naming the key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from phys_ml.stages.common.config import Config

from .flow import FlowSizes
from .flow_training import TrainSettings
from .glm import GNSettings

N_STEPS = 25  # observed time steps (stress periods) per well
Localization = Literal["none", "autoadaloc", "distance"]


# ---------------------------------------------------------------- groundwater.model, groundwater.generate
class ModelConfig(Config):
    mf6: str | None = Field(description="explicit path to mf6 (null: $PHYS_ML_MF6, PATH, install folder, flopy)")
    n_workers: int = Field(ge=1, le=64, description="parallel runs (dask without an address: worker processes)")
    timeout_s: float = Field(gt=0, description="a run taking longer is killed and counts as failed outside the model")
    runner: Literal["local", "dask"] = Field(description="overridden by $PHYS_ML_GW_RUNNER, $DASK_SCHEDULER_ADDRESS")
    scheduler_address: str | None = Field(description="dask only; null: a LocalCluster on this machine")
    retries: int = Field(ge=0, le=10, description="a failed run is retried this many times")
    max_consecutive_failures: int = Field(ge=1, description="this many runs in a row failing outside the model "
                                          "(crash, timeout, no executable) stop the stage with exit 1")

    def artifact_params(self) -> dict:
        """The settings recorded in artifacts: not where the runs executed nor when a broken mf6 stops the stage
        (neither changes the bytes)."""
        return self.model_dump(exclude={"runner", "scheduler_address", "max_consecutive_failures"})


class PriorConfig(Config):
    mean: float = Field(description="prior mean of ln K, K in m/d")
    variance: float = Field(gt=0)
    length: float = Field(gt=0, description="correlation length of exp(-r / length), metres")


class GenerateConfig(Config):
    seed: int
    n_sims: int = Field(ge=3)
    n_train: int = Field(ge=1)
    n_val: int = Field(ge=0)
    extra_train: int = Field(default=0, ge=0, description="prior simulations beyond n_sims (the same draw "
                             "continued) that join the training split; validation and test splits unchanged")
    chunk_size: int = Field(ge=1, description="simulations per resumable chunk")
    noise_sd: float = Field(gt=0, description="observation noise sd of the heads (m)")
    prior: PriorConfig

    @model_validator(mode="after")
    def _splits(self) -> GenerateConfig:
        if self.n_train + self.n_val >= self.n_sims:
            raise ValueError("n_train + n_val must be < n_sims")
        return self


# ---------------------------------------------------------------- groundwater.ies (the smoother's one schema)
class IESConfig(Config):
    """The iterative ensemble smoother (`ies.run_ies` reads it directly); pestpp-ies names in brackets."""

    seed: int
    n_ens: int = Field(ge=3, description="prior realizations [ies_num_reals]")
    n_iter: int = Field(ge=1, description="upgrade iterations [noptmax]")
    use_base: bool = Field(description="add the prior mean as realization 0 [ies_include_base]")
    subset_frac: float = Field(gt=0, le=1, description="share of realizations that test the candidates")
    min_subset: int = Field(ge=2, description="the smallest test subset")
    accept_phi_fac: float = Field(ge=1, description="accept an upgrade within this factor of the last mean phi")
    lambda_mults: list[float] = Field(min_length=1, description="[ies_lambda_mults]")
    scale_facs: list[float] = Field(min_length=1, description="[lambda_scale_fac]")
    lambda_dec: float = Field(gt=0, le=1, description="lambda after an accepted upgrade that lowered phi")
    lambda_inc: float = Field(ge=1, description="lambda after a rejected upgrade")
    initial_lambda: float | None = Field(ge=0, description="null: 10^floor(log10(mean phi / 2 n_obs))")
    eigthresh: float = Field(gt=0, lt=1, description="[ies_eigthresh] of the prior precision factor")
    phi_rel_tol: float = Field(ge=0, description="stop after n_stall accepted upgrades improving less than this")
    n_stall: int = Field(ge=1)
    max_rejects: int = Field(ge=1, description="stop after this many rejected upgrades in a row")
    stop_at_noise_level: bool = Field(description="stop once mean phi against the data is <= n_obs")
    localization: list[Localization] = Field(min_length=1, description="settings to run, one smoother each")
    autoadaloc_sigma_dist: float = Field(gt=0, description="keep a pair where |corr| > this x sqrt(1 / (N - 2))")
    distance_length: float = Field(gt=0, description="Gaspari-Cohn half-width (m); the taper is 0 beyond 2 x it")
    use_approx: bool = Field(description="false: the full GLM upgrade with the prior-pull term")

    @model_validator(mode="after")
    def _unique(self) -> IESConfig:
        if len(set(self.localization)) != len(self.localization):
            raise ValueError("localization settings must be distinct")
        return self


# ---------------------------------------------------------------- groundwater.flow
class FlowModelConfig(Config):
    n_affine: int = Field(ge=1, description="conditional affine coupling layers (cINN)")
    n_spline: int = Field(ge=0, description="conditional rational-quadratic spline coupling layers (cNSF)")
    hidden: int = Field(ge=4, description="width of the two hidden layers of every coupling sub-network")
    bins: int = Field(ge=2)
    spline_bound: float = Field(gt=0)
    coupling_dims: int | None = Field(ge=2, le=706, description="leading prior modes the couplings act on")
    rest: Literal["prior", "diagonal", "linear"] = Field(description="the other modes: the prior, a conditional "
                                                         "diagonal, or (next rest_modes) a linear-Gaussian conditional")
    rest_modes: list[int] = Field(min_length=1, description="rest linear: candidates for the modes after the "
                                  "coupled ones it covers (0: none); train-flow keeps the lowest validation NLL")
    rest_given: list[Literal["heads", "heads_and_coupled"]] = Field(
        min_length=1, description="rest linear: candidates for what it is conditioned on (with rest_modes)")
    dropout: float = Field(ge=0, lt=1)
    summary_dim: int = Field(ge=1)
    conv_channels: int = Field(ge=1)
    elementwise: bool = Field(description="a conditional elementwise affine layer before the couplings (ours)")
    linear_modes: int = Field(ge=0, le=706, description="0: off; the linear summary in this many leading modes "
                              "(needs `train groundwater jacobian` with at least as many)")

    @model_validator(mode="before")
    @classmethod
    def _candidate_lists(cls, data: dict) -> dict:
        """A single rest_modes / rest_given is one candidate."""
        if isinstance(data, dict):
            data = {**data, **{k: [data[k]] for k in ("rest_modes", "rest_given")
                               if k in data and not isinstance(data[k], list)}}
        return data

    @model_validator(mode="after")
    def _rest_candidates(self) -> FlowModelConfig:
        if any(not 0 <= m <= 704 for m in self.rest_modes):
            raise ValueError("rest_modes must lie in 0..704")
        if len(set(self.rest_modes)) != len(self.rest_modes) or len(set(self.rest_given)) != len(self.rest_given):
            raise ValueError("rest_modes and rest_given candidates must be distinct")
        return self


class FlowTrainConfig(Config):
    epochs: int = Field(ge=1, description="at most this many epochs")
    batch_size: int = Field(ge=2, description="training pairs per gradient step")
    lr: float = Field(gt=0, description="initial Adam learning rate")
    lr_decay: float = Field(gt=0, le=1, description="lr = lr0 * lr_decay ** (epoch / decay_epochs)")
    decay_epochs: float = Field(gt=0, description="epochs per lr_decay factor")
    weight_decay: float = Field(ge=0, description="Adam's L2 penalty")
    grad_clip: float = Field(ge=0, description="max gradient norm; 0 disables clipping")
    patience: int = Field(ge=1, description="early stopping: epochs without a better validation loss")
    min_steps: int = Field(ge=1, le=N_STEPS, description="shortest record kept by random truncation")
    truncate_prob: float = Field(ge=0, le=1, description="share of pairs truncated to fewer steps")
    drop_well_prob: float = Field(ge=0, lt=1, description="chance that a well is left out of a pair")


class FlowEvaluateConfig(Config):
    n_samples: int = Field(ge=10, description="posterior samples per reference field (paper: 2,000)")
    n_samples_test: int = Field(ge=10, description="posterior samples per test-split data set")
    n_predictive: int = Field(ge=0, description="posterior samples per reference field run through MODFLOW")
    steps: list[int] = Field(min_length=1, description="observed steps for the errors-vs-record-length study")
    levels: list[float] = Field(min_length=1, description="credible levels of the calibration curve")

    @model_validator(mode="after")
    def _ranges(self) -> FlowEvaluateConfig:
        if any(not 1 <= s <= N_STEPS for s in self.steps):
            raise ValueError(f"steps must lie in 1..{N_STEPS}")
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

    def sizes(self) -> FlowSizes:
        """The architecture, its coupling masks drawn from the flow's seed; the linear rest is chosen after the
        flow's training (`rest_candidates`), so the flow trains without it (an unfitted rest is the prior)."""
        model = self.model.model_dump(exclude={"rest_modes", "rest_given"})
        return FlowSizes(mask_seed=self.seed, rest_modes=0, **model)

    def rest_candidates(self) -> list[tuple[int, str]]:
        """(rest_modes, rest_given) pairs to fit and compare on the validation split (rest linear; 0 modes once)."""
        if self.model.rest != "linear":
            return []
        return sorted({(m, g if m else "heads") for m in self.model.rest_modes for g in self.model.rest_given})

    def settings(self, noise_sd: float) -> TrainSettings:
        """The training settings, with the observation noise of the generated data."""
        return TrainSettings(noise_sd=noise_sd, **self.train.model_dump())


# ---------------------------------------------------------------- groundwater.glm (linear analysis, refinement)
class GaussNewtonConfig(Config):
    """One Gauss-Newton / Levenberg-Marquardt MAP search in the leading prior modes (`glm.gauss_newton`)."""

    n_modes: int = Field(ge=1, le=706, description="leading prior modes of the reduced basis (k + 1 runs a Jacobian)")
    fd_step: float = Field(gt=0, description="forward-difference step in whitened units")
    lambdas: list[float] = Field(min_length=1, description="dampings tried together each iteration (0: Gauss-Newton)")
    lambda_inc: float = Field(ge=1, description="dampings x this after an iteration without improvement")
    max_iter: int = Field(ge=0, description="accepted steps at most")
    max_rejects: int = Field(ge=1, description="stop after this many iterations in a row without improvement")
    max_runs: int = Field(ge=2, description="MODFLOW runs of the search and the final Jacobian at most")
    f_tol: float = Field(ge=0, description="stop when a step lowers the objective by less than this (nats)")

    @model_validator(mode="after")
    def _dampings(self) -> GaussNewtonConfig:
        if any(lam < 0 for lam in self.lambdas):
            raise ValueError("lambdas must be >= 0")
        return self

    def settings(self) -> GNSettings:
        return GNSettings(**{**self.model_dump(), "lambdas": tuple(self.lambdas)})


class GLMConfig(Config):
    seed: int
    dvclose: float = Field(gt=0, description="MODFLOW outer_dvclose (m) of every run of these analyses")
    n_test: int = Field(ge=0, description="test-split data sets of the comparison subset (the first ones)")
    n_draws: int = Field(ge=0, description="posterior draws per data set and method run through MODFLOW")
    jacobian_modes: int = Field(ge=1, le=706, description="modes of the Jacobian at the prior mean")
    extend: bool = Field(description="extend each Laplace posterior to the Jacobian-at-the-prior-mean's modes")
    refine_max_misfit: float = Field(gt=0, description="refinement guard: the MAP's heads within this RMS misfit "
                                     "(noise sds), else the flow's draws are kept")
    refine_rml_iterations: int = Field(ge=0, description="RML updates of the refined posterior's n_draws members "
                                       "(0: the Laplace posterior is the refined one)")
    map: GaussNewtonConfig
    refine: GaussNewtonConfig
