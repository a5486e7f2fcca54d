"""How the train stage fits networks: the settings (sensor masks) of the protocol, the residual weight of a run,
one case's inputs as tensors and a fit on a subset of its sensors. No file I/O: inputs come as arrays
(``store.CaseInputs``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from phys_ml.stages.common.progress import track
from phys_ml.stages.common.runtime import seed_everything, torch_generator

from . import protocol
from .config import RunCfg, TrainCfg
from .evaluation import predict
from .model import PsiNet
from .soil import VanGenuchten
from .train import Boundary, SoilParams, TrainData, TrainResult, train


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

    @property
    def t_end(self) -> float:
        return float(self.meta["t_end"])


def bounds(meta: dict) -> tuple[list[float], list[float]]:
    g = meta["grid"]
    return [0.0, 0.0, 0.0, 0.0], [g["lx"], g["ly"], g["lz"], float(meta["t_end"])]


def new_net(cfg: TrainCfg, meta: dict, psi_obs: np.ndarray) -> PsiNet:
    lo, hi = bounds(meta)
    centre = float((psi_obs.max() + psi_obs.min()) / 2)
    scale = float(max((psi_obs.max() - psi_obs.min()) / 2, 1e-3))
    return PsiNet(cfg.hidden, cfg.layers, lo, hi, centre, scale)


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
        self.cfg, self.meta, self.device = cfg, inputs.meta, device
        self.xyzt, self.obs = inputs.sensors, inputs.psi_obs
        self.colloc = self.f32(inputs.colloc)
        self.soil, self.t_end = inputs.soil, inputs.t_end
        self.boundary = (Boundary(self.f32(inputs.bnd), torch.tensor(inputs.bnd_axis, device=device),
                                  self.f32(inputs.bnd_flux), float(inputs.meta["grid"]["lz"]))
                         if cfg.boundary else None)

    def f32(self, a) -> torch.Tensor:
        return torch.tensor(np.asarray(a), dtype=torch.float32, device=self.device)

    def data(self, mask: np.ndarray, n_colloc: int | None = None) -> TrainData:
        obs = self.obs[mask]
        scale = float(max((obs.max() - obs.min()) / 2, 1e-3))
        colloc = self.colloc if n_colloc is None else self.colloc[:n_colloc]
        # the short selection runs stay eager: compiling each of their sensor sets would cost more than it saves
        return TrainData(self.f32(self.xyzt[mask]), self.f32(obs), colloc, self.soil, self.t_end, scale,
                         self.cfg.derivatives, self.cfg.compile and n_colloc is None, self.boundary)

    def fit(self, mask, optimizer, iterations: int, batch: str, weight: float, gen_seed: int, label: str,
            n_colloc: int | None = None, soil: SoilParams | None = None, data: TrainData | None = None,
            warmup: int | None = None) -> tuple[PsiNet, TrainResult]:
        data = self.data(mask, n_colloc) if data is None else data
        seed_everything(self.cfg.seed)  # the same initial network for every run
        net = new_net(self.cfg, self.meta, self.obs[mask]).to(self.device)
        res = train(net, data, optimizer, iterations=iterations, batch=batch, batch_size=self.cfg.batch_size,
                    log_every=self.cfg.log_every, weight=weight, generator=torch_generator(gen_seed),
                    progress=lambda it: track(it, label, total=iterations), soil=soil, lr_decay=self.cfg.lr_decay,
                    warmup=min(self.cfg.warmup if warmup is None else warmup, iterations // 2), run=label)
        return net, res
