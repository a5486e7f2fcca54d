"""Typed params of the rre task (params.yaml section ``rre``). Types and bounds only: every value is in params.yaml.
Cross-field checks are model validators; their messages name the key."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from phys_ml.stages.common.config import Config
from phys_ml.stages.common.optim import OptimizerSpec

Case = Literal["evaporation", "patch"]
Cells = Annotated[int, Field(ge=1)]
Length = Annotated[float, Field(gt=0)]  # cm
NonNegative = Annotated[float, Field(ge=0)]
Pair = Annotated[list[float], Field(min_length=2, max_length=2)]
Cases = Annotated[list[Case], Field(min_length=1)]
# w in L = L_D + w L_RRE (scaled terms, see train.py), "paper": eq. 3 as printed, both terms in cm and s, or
# "selected": chosen by the protocol (protocol.py) from rre.train.selection.weights on held-out sensors
ResidualWeight = NonNegative | Literal["paper", "selected"]


# ---- rre.generate ----
class GridCfg(Config):
    nx: Cells
    ny: Cells
    nz: Annotated[int, Field(ge=2)]
    lx: Length
    ly: Length
    lz: Length


class SoilCfg(Config):
    alpha: float = Field(gt=0)
    n: float = Field(gt=1)
    theta_s: float = Field(gt=0, le=1)
    theta_r: float = Field(ge=0, lt=1)
    k_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _residual_below_saturation(self) -> SoilCfg:
        if self.theta_r >= self.theta_s:
            raise ValueError(".theta_r must be < theta_s")
        return self


class PatchCfg(Config):
    x: Pair
    y: Pair
    evaporation_cm_per_h: NonNegative


class SensorCfg(Config):
    locations: Cells
    layers: Annotated[list[int], Field(min_length=2)]
    noise_sd: NonNegative  # cm


class GenerateCfg(Config):
    seed: int
    cases: Cases
    grid: GridCfg
    soil: SoilCfg
    psi0: float = Field(lt=0)  # cm
    evaporation_cm_per_h: NonNegative
    t_end: Length  # s
    n_times: int = Field(ge=2)
    stepping: Literal["tight", "mrst"]
    dt_max: float = Field(gt=0)  # s, tight stepping
    tol: float = Field(gt=0)  # cm, tight stepping
    compare_mrst: bool  # also run the MRST-like stepping and report its difference
    patch: PatchCfg
    sensors: SensorCfg
    collocation: Cells
    boundary_points: int = Field(ge=10)

    @model_validator(mode="after")
    def _fits_the_grid(self) -> GenerateCfg:
        g = self.grid
        if self.sensors.locations > g.nx * g.ny:
            raise ValueError(f".sensors.locations must be <= {g.nx * g.ny} (grid columns)")
        if any(not 0 <= k < g.nz for k in self.sensors.layers):
            raise ValueError(f".sensors.layers must lie in 0..{g.nz - 1}")
        n_rows = g.nx * g.ny * g.nz * self.n_times
        if self.collocation > n_rows:
            raise ValueError(f".collocation must be <= {n_rows} (space-time instances)")
        return self


# ---- rre.train ----
class NetworkCfg(Config):
    """A P-DL network: ``layers`` hidden tanh layers of ``hidden`` units; output ``transform`` linear (psi = centre
    + scale N) or neg_exp (psi = -exp(centre + scale N)); ``log_time`` t_c (s): time enters as log(1 + t / t_c)
    (null: linearly), and its collocation points are spread evenly in that feature; ``hard_initial`` tau (s): the
    initial condition is built into the output through g(t) = 1 - exp(-t / tau) (model.PsiNet; null: it is a
    term of L_RRE only)."""

    hidden: Cells
    layers: Cells
    transform: Literal["linear", "neg_exp"]
    log_time: Annotated[float, Field(gt=0)] | None
    hard_initial: Annotated[float, Field(gt=0)] | None


class MassBalanceCfg(Config):
    """The box's water balance in L_RRE (study networks): ``points`` space points at each of ``times`` times
    (0 points: left out)."""

    points: Annotated[int, Field(ge=0)]
    times: Cells


class PhysicsCfg(Config):
    """The physics term's points for the study networks: ``collocation`` points drawn by the train stage
    uniformly over the space-time box (time evenly in the network's time feature; the paper's network keeps the
    generated collocation instances), ``initial_points`` at t = 0 for the initial condition (every network) and
    the water balance's points."""

    collocation: Cells
    initial_points: Cells
    mass_balance: MassBalanceCfg
    # p: the study networks' residual at time t weighted ((t + t_c) / (t_end + t_c))^p, t_c the network's log_time
    # (0 when null); 0: unweighted
    time_weight: NonNegative


class ForwardCfg(Config):
    """The physics-only forward check: the chosen study network trained on L_RRE alone (no sensors)."""

    enabled: bool
    optimizer: OptimizerSpec
    iterations: Cells
    # candidates: the network's output scaling spans psi0 alone, or psi0 and the uniform-drying head of the mass
    # balance (fitting.mass_balance_head: no readings tell a physics-only network how far psi falls); one network
    # is trained per candidate and the one with the lowest final L_RRE (its training loss) is kept
    output_range: Annotated[list[Literal["psi0", "mass_balance"]], Field(min_length=1)]
    # network initializations per candidate (restarts): a physics-only network can stall in a spurious state
    # from one initialization and not from another; the lowest final L_RRE over all of them is kept
    inits: int = Field(default=1, ge=1)


class SelectionCfg(Config):
    weights: Annotated[list[NonNegative], Field(min_length=1)]
    optimizer: OptimizerSpec
    iterations: Cells
    collocation: Cells  # the first N collocation points (a random subset)
    forecast_holdout: float = Field(gt=0, lt=1)  # latest part of the forecast's training window


class SparseCfg(Config):
    locations: Cells
    layers: int = Field(ge=2)


class SoilInitCfg(Config):
    alpha: float = Field(gt=0)
    n: float = Field(gt=1)
    k_s: float = Field(gt=0)


class SoilStudyCfg(Config):
    enabled: bool
    iterations: Cells
    warmup: int = Field(ge=0)  # data-only iterations before the soil and the physics term come in
    optimizer: OptimizerSpec
    init: SoilInitCfg


class StudiesCfg(Config):
    optimizer: OptimizerSpec
    iterations: Cells
    seeds: Cells  # network initializations per study setting (P-DL and data-only paired per seed)
    sparse: list[SparseCfg]
    forecast: bool
    forecast_fraction: float = Field(gt=0, lt=1)
    soil: SoilStudyCfg


class RunCfg(Config):
    optimizer: OptimizerSpec
    batch: Literal["full", "mini"]
    iterations: Cells
    # an optional per-run override of rre.train.residual_weight (absent: the run uses that value)
    residual_weight: ResidualWeight | None = None
    # which network: the paper's (rre.train.hidden x layers, linear; absent: this) or the study network chosen
    # from rre.train.networks by the protocol
    network: Literal["paper", "study"] = "paper"


class TrainCfg(Config):
    seed: int
    device: Literal["auto", "cpu", "cuda"]
    cases: Cases
    hidden: Cells  # the paper's network: layers x hidden tanh units, linear output (Table 1's paper rows)
    layers: Cells
    networks: Annotated[list[NetworkCfg], Field(min_length=1)]  # study network candidates (protocol.py)
    physics: PhysicsCfg
    forward: ForwardCfg
    residual_weight: ResidualWeight
    boundary: bool  # add the boundary flux conditions (known evaporation, no flow elsewhere) to L_RRE
    selection: SelectionCfg
    studies: StudiesCfg
    derivatives: Literal["taylor", "autograd"]  # forward-mode or nested autograd for eq. 6
    compile: bool  # torch.compile the physics term of full-batch forward-mode runs (needs a C++ compiler on CPU)
    batch_size: Cells
    log_every: Cells
    lr_decay: float = Field(gt=0, le=1)  # exponential decay of the learning rate to this fraction
    warmup: int = Field(ge=0)  # first iterations of every physics run fit the data alone (within the budget)
    threads: int = Field(ge=0)  # torch threads for this stage (0: torch's default); see params.yaml
    processes: int = Field(ge=1)  # cases trained side by side in worker processes on the CPU (1: in this one)
    runs: Annotated[list[RunCfg], Field(min_length=1)]

    @model_validator(mode="after")
    def _runs_are_distinct(self) -> TrainCfg:
        keys = [(r.optimizer.name, r.batch, r.residual_weight, r.network) for r in self.runs]
        if len(set(keys)) != len(keys):
            raise ValueError(".runs: each (optimizer name, batch, residual_weight, network) may appear once")
        for k, r in enumerate(self.runs):
            if r.batch == "mini" and r.optimizer.entry.needs_full_batch:
                raise ValueError(f".runs[{k}]: {r.optimizer.name} needs batch: full (a line search on mini-batches "
                                 "compares losses of different batches)")
        return self


# ---- rre.evaluate ----
class EvaluateCfg(Config):
    seed: int
    map_time: Cells  # output index (1-based) of the theta maps, paper Fig. 3
