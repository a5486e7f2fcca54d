"""Training and prediction of the particle models (tensors in, models and loss histories out; no I/O).

Every run goes through the shared loop ``phys_ml.stages.common.training.fit`` and the optimizer registry, so
any registered optimizer (the thermodynamic ones included) can be selected by name. The loss is the paper's
MSE throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from phys_ml.stages.common.runtime import seed_everything
from phys_ml.stages.common.training import fit

from .models import MLP, ChargeLSTM, Continuation, InteractionGNN, sequence_features


@dataclass
class Run:
    """A trained model and its per-epoch losses."""

    model: torch.nn.Module
    history: dict[str, list[float]]


def _fit_run(model: torch.nn.Module, loss_fn, train: tuple, val: tuple, **fit_kwargs) -> Run:
    """Train ``model`` in the shared loop on (train, val) tensor tuples; gradient clipping etc. pass through."""
    return Run(model, fit(model, loss_fn, train, val=val, **fit_kwargs))


def _valid(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(n, steps) mask of the samples inside each sequence."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


@dataclass
class Task2Data:
    pos0: torch.Tensor  # (n, N, 2)
    vel0: torch.Tensor  # (n, N, 2)
    charges: torch.Tensor  # (n, N)
    targets: torch.Tensor  # (n, H, N, 2)

    def inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.pos0, self.vel0, self.charges

    def head(self, n: int) -> Task2Data:
        return Task2Data(self.pos0[:n], self.vel0[:n], self.charges[:n], self.targets[:n])

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray], device) -> Task2Data:
        return cls(*(_tensor(d[k], device) for k in ("pos0", "vel0", "charges", "targets")))


def _tensor(a: np.ndarray, device) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float32, device=device)


def _mlp_loss(model, pos0, vel0, charges, target):
    return F.mse_loss(model(pos0, vel0, charges), target)


def train_mlp(train: Task2Data, val: Task2Data, horizon: int, *, optimizer, epochs: int, batch_size: int,
              seed: int, description: str = "mlp") -> Run:
    """The paper's MLP for one horizon (index into the targets), one model per horizon as in the paper."""
    seed_everything(seed)
    model = MLP(train.pos0.shape[1]).to(train.pos0.device)
    tr = (train.pos0, train.vel0, train.charges, train.targets[:, horizon])
    va = (val.pos0, val.vel0, val.charges, val.targets[:, horizon])
    return _fit_run(model, _mlp_loss, tr, va, optimizer=optimizer, epochs=epochs, batch_size=batch_size, seed=seed,
                    description=description)


def _gnn_loss(model, pos0, vel0, charges, target):
    return F.mse_loss(model(pos0, vel0, charges), target)


def train_gnn(train: Task2Data, val: Task2Data, horizons: tuple[float, ...], *, hidden: int, layers: int,
              softening: float, optimizer, epochs: int, batch_size: int, seed: int, description: str = "gnn") -> Run:
    """The graph network, one model for all horizons."""
    seed_everything(seed)
    model = InteractionGNN(horizons, hidden=hidden, layers=layers, softening=softening).to(train.pos0.device)
    return _fit_run(model, _gnn_loss, train.inputs() + (train.targets,), val.inputs() + (val.targets,),
                    optimizer=optimizer, epochs=epochs, batch_size=batch_size, seed=seed, description=description)


@torch.no_grad()
def predict_task2(model: torch.nn.Module, data: Task2Data) -> torch.Tensor:
    model.eval()
    return model(data.pos0, data.vel0, data.charges)


# ---------------------------------------------------------------- task 3.1
@dataclass
class SeqData:
    traj: torch.Tensor  # (n, T, 2) zero-padded given part
    lengths: torch.Tensor  # (n,) int64
    charges: torch.Tensor  # (n, 3)
    cont: torch.Tensor | None = None  # (n, C, 2) zero-padded continuation (task 3.2)
    cont_lengths: torch.Tensor | None = None

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray], device) -> SeqData:
        return cls(_tensor(d["given"], device), torch.as_tensor(d["lengths"], device=device),
                   _tensor(d["charges"], device), _tensor(d["cont"], device),
                   torch.as_tensor(d["cont_lengths"], device=device))


def _charge_loss(model, x, lengths, charges):
    return F.mse_loss(model(x, lengths), charges)


def train_charge_lstm(train: SeqData, val: SeqData, *, hidden: int, fc: int, with_velocity: bool, sample_dt: float,
                      optimizer, epochs: int, batch_size: int, seed: int, grad_clip: float | None = None,
                      description: str = "lstm") -> Run:
    """The paper's LSTM charge regressor (Sec. 2.3)."""
    seed_everything(seed)
    xtr = sequence_features(train.traj, train.lengths, with_velocity, sample_dt)
    xva = sequence_features(val.traj, val.lengths, with_velocity, sample_dt)
    model = ChargeLSTM(xtr.shape[-1], hidden, fc).to(xtr.device)
    model.scale.fit(xtr[_valid(train.lengths, xtr.shape[1])])
    return _fit_run(model, _charge_loss, (xtr, train.lengths, train.charges), (xva, val.lengths, val.charges),
                    optimizer=optimizer, epochs=epochs, batch_size=batch_size, seed=seed, grad_clip=grad_clip,
                    description=description)


@torch.no_grad()
def predict_charges(model: ChargeLSTM, data: SeqData, with_velocity: bool, sample_dt: float) -> torch.Tensor:
    model.eval()
    return model(sequence_features(data.traj, data.lengths, with_velocity, sample_dt), data.lengths)


# ---------------------------------------------------------------- task 3.2
def continuation_mask(cont_lengths: torch.Tensor, horizon: int) -> torch.Tensor:
    return _valid(cont_lengths, horizon)


def _cont_loss(model, traj, lengths, cont, cont_lengths):
    pred = model(traj, lengths, cont.shape[1])
    mask = continuation_mask(cont_lengths, cont.shape[1]).unsqueeze(-1).to(pred.dtype)
    return (((pred - cont) ** 2) * mask).sum() / (2 * mask.sum())


def train_continuation(train: SeqData, val: SeqData, *, cell: str, residual: bool, hidden: int, layers: int, fc: int,
                       sample_dt: float, optimizer, epochs: int, batch_size: int, seed: int,
                       grad_clip: float | None = None, description: str = "rnn") -> Run:
    """A sequence model rolled out over the continuation, trained on the masked MSE of the roll-out."""
    seed_everything(seed)
    model = Continuation(cell, hidden, layers, fc, residual, sample_dt).to(train.traj.device)
    model.scale.fit(train.traj[_valid(train.lengths, train.traj.shape[1])])
    tr = (train.traj, train.lengths, train.cont, train.cont_lengths)
    va = (val.traj, val.lengths, val.cont, val.cont_lengths)
    return _fit_run(model, _cont_loss, tr, va, optimizer=optimizer, epochs=epochs, batch_size=batch_size, seed=seed,
                    grad_clip=grad_clip, description=description)


@torch.no_grad()
def predict_continuation(model: Continuation, data: SeqData, horizon: int) -> torch.Tensor:
    model.eval()
    return model(data.traj, data.lengths, horizon)
