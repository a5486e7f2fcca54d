"""How the train stage fits networks: the settings (sensor masks) of the protocol, the residual weight of a run,
one case's inputs as tensors and a fit on a subset of its sensors. No file I/O: inputs come as arrays
(``store.CaseInputs``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.progress import track
from phys_ml.stages.common.runtime import seed_everything, torch_generator

from . import protocol
from .config import NetworkCfg, RunCfg, TrainCfg
from .evaluation import predict
from .model import PsiNet
from .soil import VanGenuchten, head, theta
from .train import Boundary, Initial, MassBalance, SoilParams, TrainData, TrainResult, train


@dataclass(frozen=True)
class CaseInputs:
    """What a user would have for one case: sensors, collocation and boundary points, and the case metadata."""

    sensors: np.ndarray  # (Nm, 4) x, y, depth, t
    psi_obs: np.ndarray  # (Nm,)
    colloc: np.ndarray  # (Nf, 4)
    bnd: np.ndarray  # (Nb, 4)
    bnd_axis: np.ndarray  # (Nb,) int
    bnd_flux: np.ndarray  # (Nb,)
    meta: dict

    @property
    def soil(self) -> VanGenuchten:
        return VanGenuchten(**self.meta["soil"])

    def _newer(self, key: str) -> float:
        """A metadata value older generated data lack."""
        if key not in self.meta:
            raise UserError(f"the rre generated data hold no {key} (written by an older version): rerun "
                            "`phys-ml generate rre`")
        return float(self.meta[key])

    @property
    def top_flux_mean(self) -> float:
        """The known evaporation flux averaged over the top face (cm/s)."""
        return self._newer("top_flux_mean")

    @property
    def t_end(self) -> float:
        return float(self.meta["t_end"])

    @property
    def psi0(self) -> float:
        return self._newer("psi0")


def bounds(meta: dict) -> tuple[list[float], list[float]]:
    g = meta["grid"]
    return [0.0, 0.0, 0.0, 0.0], [g["lx"], g["ly"], g["lz"], float(meta["t_end"])]


def paper_network(cfg: TrainCfg) -> NetworkCfg:
    return NetworkCfg(hidden=cfg.hidden, layers=cfg.layers, transform="linear", log_time=None,
                     hard_initial=None)


def network_of(cfg: TrainCfg, name: str) -> NetworkCfg:
    """The network a record names: 'paper' or 'study-<k>' (rre.train.networks[k])."""
    return paper_network(cfg) if name == "paper" else cfg.networks[int(name.split("-")[1])]


def describe(net: NetworkCfg) -> str:
    """'5x10 linear', '4x20 neg_exp log-t 1 s': layers x width, output transform, time input."""
    return (f"{net.layers}x{net.hidden} {net.transform}"
            + ("" if net.log_time is None else f" log-t {net.log_time:g} s")
            + ("" if net.hard_initial is None else f" hard IC {net.hard_initial:g} s"))


def new_net(net: NetworkCfg, meta: dict, psi_ref: np.ndarray) -> PsiNet:
    """A network whose output scaling spans ``psi_ref`` (the sensor readings it trains on; psi0 alone for the
    physics-only network): centre and half range of psi for the linear output, of log(-psi) for neg_exp. The half
    range is at least 1 (cm, or e-fold) for neg_exp and for psi0 alone, 1e-3 cm otherwise."""
    lo, hi = bounds(meta)
    v = np.log(np.maximum(-psi_ref, 1e-3)) if net.transform == "neg_exp" else psi_ref
    centre = float((v.max() + v.min()) / 2)
    scale = float(max((v.max() - v.min()) / 2, 1e-3 if net.transform == "linear" and v.size > 1 else 1.0))
    hard = None if net.hard_initial is None else (float(meta["psi0"]), net.hard_initial)
    return PsiNet(net.hidden, net.layers, lo, hi, centre, scale, net.transform, net.log_time, hard)


def mass_balance_head(inputs: CaseInputs) -> float:
    """The pressure head (cm) the column would have at t_end if it dried uniformly: the initial water content
    minus the water the known top flux removes (its mean over the top-face boundary points, times t_end, over the
    depth), through the retention curve. Solver-free (the forcing, the soil and psi0 only): the output scale of
    the physics-only network, which has no readings to take it from."""
    removed = float(removed_water(inputs, np.array([inputs.t_end]))[0])
    return head(float(theta(inputs.psi0, inputs.soil)) - removed, inputs.soil)


def removed_water(inputs: CaseInputs, times: np.ndarray) -> np.ndarray:
    """The water (per unit volume of the box) the known top flux has removed by ``times`` (no flow through the
    other faces)."""
    return inputs.top_flux_mean * np.asarray(times) / float(inputs.meta["grid"]["lz"])


def mass_points(cfg: TrainCfg, inputs: CaseInputs, log_time: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The water-balance points (seeded from rre.train.seed): rre.train.physics.mass_balance.points space points,
    uniform in the box, at each of its ``times`` times spread evenly in the time feature (t > 0), time-major;
    and the times."""
    mb, g = cfg.physics.mass_balance, inputs.meta["grid"]
    times = spread_in_time((np.arange(mb.times) + 1.0) / mb.times, inputs.t_end, log_time)
    xyz = np.random.default_rng([cfg.seed, 17]).uniform(size=(mb.points, 3)) * np.array([g["lx"], g["ly"], g["lz"]])
    return np.concatenate([np.c_[xyz, np.full(mb.points, t)] for t in times]), times


def forward_reference(output_range: str, inputs: CaseInputs) -> np.ndarray:
    """The pressure heads the physics-only network's output scaling spans (a candidate of
    rre.train.forward.output_range): psi0 alone, or psi0 and ``mass_balance_head``."""
    if output_range == "psi0":
        return np.array([inputs.psi0])
    return np.array([inputs.psi0, mass_balance_head(inputs)])


def spread_in_time(u: np.ndarray, t_end: float, log_time: float | None) -> np.ndarray:
    """Times from uniform numbers ``u`` in [0, 1]: evenly in t, or in log(1 + t / log_time)."""
    return u * t_end if log_time is None else log_time * np.expm1(u * np.log1p(t_end / log_time))


def physics_points(cfg: TrainCfg, inputs: CaseInputs, log_time: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The study networks' physics points (seeded from rre.train.seed, no truth): ``collocation`` points uniform
    in the box with times spread as the network's time feature, and the generated boundary points moved to such
    times."""
    g = inputs.meta["grid"]
    box = np.array([g["lx"], g["ly"], g["lz"]])
    rng = np.random.default_rng([cfg.seed, 11])
    u = rng.uniform(size=(cfg.physics.collocation, 4))
    colloc = np.c_[u[:, :3] * box, spread_in_time(u[:, 3], inputs.t_end, log_time)]
    bnd = inputs.bnd.copy()
    bnd[:, 3] = spread_in_time(rng.uniform(size=bnd.shape[0]), inputs.t_end, log_time)
    return colloc, bnd


def initial_points(cfg: TrainCfg, inputs: CaseInputs) -> np.ndarray:
    """``initial_points`` points at t = 0, uniform in the box (seeded from rre.train.seed)."""
    g = inputs.meta["grid"]
    u = np.random.default_rng([cfg.seed, 13]).uniform(size=(cfg.physics.initial_points, 3))
    return np.c_[u * np.array([g["lx"], g["ly"], g["lz"]]), np.zeros(u.shape[0])]


def settings(cfg: TrainCfg, sensor_xyzt: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every setting's (readings it trains on, readings the selection holds out): see protocol.py. Reads only
    the sensors' coordinates."""
    all_ = np.ones(sensor_xyzt.shape[0], dtype=bool)
    out = {"table1": (all_, protocol.holdout_layer(sensor_xyzt, all_))}
    for sp in cfg.studies.sparse:
        mask = protocol.sparse_mask(sensor_xyzt, sp.locations, sp.layers, cfg.seed)
        out[f"sparse-{sp.locations}x{sp.layers}"] = (mask, protocol.holdout_layer(sensor_xyzt, mask))
    if cfg.studies.forecast:
        mask = sensor_xyzt[:, 3] <= protocol.forecast_split(sensor_xyzt[:, 3], cfg.studies.forecast_fraction)
        out["forecast"] = (mask, protocol.holdout_latest(sensor_xyzt[:, 3], mask, cfg.selection.forecast_holdout))
    return out


def weight_rule(cfg: TrainCfg, run: RunCfg) -> float | str:
    """The run's residual weight setting: its own override, else rre.train.residual_weight."""
    return cfg.residual_weight if run.residual_weight is None else run.residual_weight


def residual_weight(cfg: TrainCfg, run: RunCfg, data: TrainData, selected: float) -> float:
    """The run's w in L = L_D + w L_RRE. "selected": the protocol's choice for Table 1. "paper": eq. 3 with psi
    in cm and r in 1/s, i.e. our scaled terms weighted (r_scale / psi_scale)^2 (about 1e-11 here: the RRE term is
    then negligible)."""
    w = weight_rule(cfg, run)
    if w == "selected":
        return selected
    return (data.r_scale / data.psi_scale) ** 2 if w == "paper" else float(w)


def heldout_rms(net: PsiNet, xyzt: np.ndarray, obs: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predict(net, xyzt) - obs) ** 2)))


class CaseFit:
    """One case's training inputs as tensors, and a way to fit a network on a subset of the sensors."""

    def __init__(self, cfg: TrainCfg, inputs: CaseInputs, device) -> None:
        self.cfg, self.inputs, self.meta, self.device = cfg, inputs, inputs.meta, device
        self.xyzt, self.obs = inputs.sensors, inputs.psi_obs
        self.colloc = self.f32(inputs.colloc)
        self.soil, self.t_end = inputs.soil, inputs.t_end
        self.boundary = self.boundary_of(inputs.bnd)
        self.initial = Initial(self.f32(initial_points(cfg, inputs)), inputs.psi0)
        self._physics: dict = {}

    def f32(self, a) -> torch.Tensor:
        return torch.tensor(np.asarray(a), dtype=torch.float32, device=self.device)

    def boundary_of(self, points: np.ndarray) -> Boundary | None:
        if not self.cfg.boundary:
            return None
        return Boundary(self.f32(points), torch.tensor(self.inputs.bnd_axis, device=self.device),
                        self.f32(self.inputs.bnd_flux), float(self.meta["grid"]["lz"]))

    def physics(self, network: NetworkCfg | None) -> tuple[torch.Tensor, Boundary | None]:
        """Collocation and boundary points: the generated ones for the paper's network (None), drawn ones
        (``physics_points``) for a study network."""
        if network is None:
            return self.colloc, self.boundary
        if network.log_time not in self._physics:
            colloc, bnd = physics_points(self.cfg, self.inputs, network.log_time)
            self._physics[network.log_time] = (self.f32(colloc), self.boundary_of(bnd))
        return self._physics[network.log_time]

    def data(self, mask: np.ndarray, n_colloc: int | None = None, network: NetworkCfg | None = None) -> TrainData:
        """The training data of the readings in ``mask`` (none: the physics-only problem) for the paper's network
        (``network`` None) or a study network."""
        obs = self.obs[mask]  # L_D (and the initial condition) in units of half the readings' range, or of |psi0|
        scale = float(max((obs.max() - obs.min()) / 2, 1e-3)) if obs.size else max(abs(self.inputs.psi0), 1e-3)
        colloc, bnd = self.physics(network)
        colloc = colloc if n_colloc is None else colloc[:n_colloc]
        # compiled: the study networks (one graph per set of physics points, whatever the sensors) and the
        # paper network's full runs; the paper network's short selection runs stay eager (compiling its 2,000
        # selection points would cost more than those runs take)
        compile_ = self.cfg.compile and (network is not None or n_colloc is None)
        return TrainData(self.f32(self.xyzt[mask]), self.f32(obs), colloc, self.soil, self.t_end, scale,
                         self.cfg.derivatives, compile_, bnd, self.initial, self.mass(network),
                         self.time_weight(network))

    def time_weight(self, network: NetworkCfg | None) -> tuple[float, float] | None:
        p = self.cfg.physics.time_weight
        if network is None or p == 0:
            return None
        return (0.0 if network.log_time is None else network.log_time, p)

    def mass(self, network: NetworkCfg | None) -> MassBalance | None:
        """The water balance of a study network (none for the paper's, or with mass_balance.points 0)."""
        if network is None or self.cfg.physics.mass_balance.points == 0:
            return None
        points, times = mass_points(self.cfg, self.inputs, network.log_time)
        return MassBalance(self.f32(points), self.f32(removed_water(self.inputs, times)), self.inputs.psi0)

    def fit(self, mask, optimizer, iterations: int, batch: str, weight: float, gen_seed: int, label: str,
            n_colloc: int | None = None, soil: SoilParams | None = None, data: TrainData | None = None,
            warmup: int | None = None, network: NetworkCfg | None = None, init: int = 0,
            output_range: str = "psi0") -> tuple[PsiNet, TrainResult]:
        """Train a new network (the paper's for ``network`` None) from initialization number ``init`` (0: the
        stage seed, the same initial network for every run). Without sensors the output scaling spans
        ``forward_reference(output_range)``."""
        data = self.data(mask, n_colloc, network) if data is None else data
        seed_everything(self.cfg.seed + 7919 * init)
        obs = self.obs[mask]
        net = new_net(network or paper_network(self.cfg), self.meta,
                      obs if obs.size else forward_reference(output_range, self.inputs)).to(self.device)
        res = train(net, data, optimizer, iterations=iterations, batch=batch, batch_size=self.cfg.batch_size,
                    log_every=self.cfg.log_every, weight=weight, generator=torch_generator(gen_seed),
                    progress=lambda it: track(it, label, total=iterations), soil=soil, lr_decay=self.cfg.lr_decay,
                    warmup=min(self.cfg.warmup if warmup is None else warmup, iterations // 2), run=label)
        return net, res
