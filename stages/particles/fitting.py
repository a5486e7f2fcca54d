"""Training and prediction of the particle models (tensors in, models and loss histories out; no I/O).

Every run goes through the shared loop ``phys_ml.stages.common.training.fit`` and the optimizer registry, so
any registered optimizer (the thermodynamic ones included) can be selected by name. The loss is the paper's
MSE throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from phys_ml.stages.common.runtime import seed_everything
from phys_ml.stages.common.training import fit

from .models import MLP, ChargeLSTM, Continuation, InteractionGNN, sequence_features


def clip_gradients(model: torch.nn.Module, value: float | None) -> None:
    """Clamp every gradient element to [-value, value] as it is computed (tensor hooks).

    The shared loop gives the optimizer a closure, so clipping cannot sit between backward and step; hooks
    do the same job for any optimizer. Long free-running roll-outs (task 3.2) otherwise blow up with SGD.
    """
    if value is None:
        return
    for p in model.parameters():
        if p.requires_grad:
            p.register_hook(lambda g, v=value: g.clamp(-v, v))


@dataclass
class Run:
    """A trained model and its per-epoch losses."""

    model: torch.nn.Module
    history: dict[str, list[float]]


@dataclass
class Task2Data:
    pos0: torch.Tensor  # (n, N, 2)
    vel0: torch.Tensor  # (n, N, 2)
    charges: torch.Tensor  # (n, N)
    targets: torch.Tensor  # (n, H, N, 2)

    def head(self, n: int) -> Task2Data:
        return Task2Data(self.pos0[:n], self.vel0[:n], self.charges[:n], self.targets[:n])


def _mlp_loss(model, pos0, vel0, charges, target):
    return F.mse_loss(model(pos0, vel0, charges), target)


def train_mlp(train: Task2Data, val: Task2Data, horizon: int, *, optimizer, epochs: int, batch_size: int,
              seed: int, description: str = "mlp") -> Run:
    """The paper's MLP for one horizon (index into the targets), one model per horizon as in the paper."""
    seed_everything(seed)
    model = MLP(train.pos0.shape[1]).to(train.pos0.device)
    tr = (train.pos0, train.vel0, train.charges, train.targets[:, horizon])
    va = (val.pos0, val.vel0, val.charges, val.targets[:, horizon])
    history = fit(model, _mlp_loss, tr, optimizer=optimizer, epochs=epochs, batch_size=batch_size, seed=seed,
                  val=va, description=description)
    return Run(model, history)


def _gnn_loss(model, pos0, vel0, charges, target):
    return F.mse_loss(model(pos0, vel0, charges), target)


def train_gnn(train: Task2Data, val: Task2Data, horizons: tuple[float, ...], *, hidden: int, layers: int,
              softening: float, optimizer, epochs: int, batch_size: int, seed: int, description: str = "gnn") -> Run:
    """The graph network, one model for all horizons."""
    seed_everything(seed)
    model = InteractionGNN(horizons, hidden=hidden, layers=layers, softening=softening).to(train.pos0.device)
    tr = (train.pos0, train.vel0, train.charges, train.targets)
    va = (val.pos0, val.vel0, val.charges, val.targets)
    history = fit(model, _gnn_loss, tr, optimizer=optimizer, epochs=epochs, batch_size=batch_size, seed=seed,
                  val=va, description=description)
    return Run(model, history)


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
    clip_gradients(model, grad_clip)
    valid = torch.arange(xtr.shape[1], device=xtr.device).unsqueeze(0) < train.lengths.unsqueeze(1)
    model.scale.fit(xtr[valid])
    history = fit(model, _charge_loss, (xtr, train.lengths, train.charges), optimizer=optimizer, epochs=epochs,
                  batch_size=batch_size, seed=seed, val=(xva, val.lengths, val.charges), description=description)
    return Run(model, history)


@torch.no_grad()
def predict_charges(model: ChargeLSTM, data: SeqData, with_velocity: bool, sample_dt: float) -> torch.Tensor:
    model.eval()
    return model(sequence_features(data.traj, data.lengths, with_velocity, sample_dt), data.lengths)


# ---------------------------------------------------------------- task 3.2
def continuation_mask(cont_lengths: torch.Tensor, horizon: int) -> torch.Tensor:
    return torch.arange(horizon, device=cont_lengths.device).unsqueeze(0) < cont_lengths.unsqueeze(1)


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
    clip_gradients(model, grad_clip)
    valid = torch.arange(train.traj.shape[1], device=train.traj.device).unsqueeze(0) < train.lengths.unsqueeze(1)
    model.scale.fit(train.traj[valid])
    tr = (train.traj, train.lengths, train.cont, train.cont_lengths)
    va = (val.traj, val.lengths, val.cont, val.cont_lengths)
    history = fit(model, _cont_loss, tr, optimizer=optimizer, epochs=epochs, batch_size=batch_size, seed=seed,
                  val=va, description=description)
    return Run(model, history)


@torch.no_grad()
def predict_continuation(model: Continuation, data: SeqData, horizon: int) -> torch.Tensor:
    model.eval()
    return model(data.traj, data.lengths, horizon)
