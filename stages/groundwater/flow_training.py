"""Joint maximum-likelihood training of the summary network and the conditional flow (paper eq. 22), no file I/O.

Choices the paper leaves open, made here:
- targets are the prior-whitened z (see `flow.PriorWhitening`), inputs the heads standardized per well and step;
- fresh observation noise N(0, noise_sd^2) is drawn every time a training pair is used;
- with probability ``truncate_prob`` a pair keeps only its first T steps, T uniform in min_steps..25, and each well
  is dropped with probability ``drop_well_prob``; the mask tells the summary network what was observed, so one
  trained model serves incomplete data (paper Fig. 14);
- validation: the same corruption, drawn once with a fixed seed, so the validation loss is a fixed number per
  model; early stopping on it, and the best epoch's weights are kept;
- Adam with lr = lr0 * decay ** (epoch / decay_epochs) (the paper's "decay rate 0.95").
The loop calls ``on_epoch(state)`` after every epoch so the stage can checkpoint; a state passed back in resumes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .flow import AmortizedPosterior


@dataclass(frozen=True)
class TrainSettings:
    """Training settings (params: groundwater.flow.train, whose config carries the bounds and meanings)."""

    epochs: int
    batch_size: int
    lr: float
    lr_decay: float
    decay_epochs: float
    weight_decay: float
    grad_clip: float
    patience: int
    noise_sd: float  # sd of the noise added to the simulated heads (groundwater.generate.noise_sd)
    min_steps: int
    truncate_prob: float
    drop_well_prob: float


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; the caller keeps its last good checkpoint."""


@dataclass
class TrainState:
    """Everything needed to resume training bit for bit."""

    epoch: int = 0  # epochs completed
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)
    model: dict | None = None
    best_model: dict | None = None
    optimizer: dict | None = None
    generator: torch.Tensor | None = None  # the noise / truncation / shuffling generator
    torch_rng: torch.Tensor | None = None  # torch's global CPU generator (dropout draws on it)
    cuda_rng: list[torch.Tensor] | None = None  # the CUDA generators, when CUDA is initialized
    stopped: str = ""

    def to_dict(self) -> dict:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, d: dict) -> TrainState:
        return cls(**d)


def restore_global_rng(state: TrainState) -> None:
    """Put back torch's global generators as they were after the saved epoch: dropout draws on them, so a
    resumed run continues the same random sequence as an uninterrupted one."""
    if state.torch_rng is not None:
        torch.set_rng_state(state.torch_rng)
    if state.cuda_rng is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state.cuda_rng)


def observe(heads: torch.Tensor, settings: TrainSettings, gen: torch.Generator,
            corrupt: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy heads and the mask of observed entries for clean heads (B, wells, steps); draws on ``gen`` (CPU)."""
    b, n_wells, n_steps = heads.shape
    noise = settings.noise_sd * torch.randn(heads.shape, generator=gen)
    mask = torch.ones(heads.shape, dtype=torch.bool)
    if corrupt:
        truncated = torch.rand(b, generator=gen) < settings.truncate_prob
        steps = torch.randint(min(settings.min_steps, n_steps), n_steps + 1, (b,), generator=gen)
        steps = torch.where(truncated, steps, torch.full_like(steps, n_steps))
        mask &= (torch.arange(n_steps)[None, None, :] < steps[:, None, None])
        dropped = torch.rand(b, n_wells, generator=gen) < settings.drop_well_prob
        mask &= ~dropped[:, :, None]
    noisy = heads + noise.to(heads.device)
    return noisy, mask.to(heads.device)


def validation_observations(heads_val: torch.Tensor, settings: TrainSettings, seed: int
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation split's fixed noise and truncation draws (the same at every epoch and after training)."""
    return observe(heads_val, settings, torch.Generator().manual_seed(seed + 1))


def nll(model: AmortizedPosterior, z: torch.Tensor, heads: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of whitened parameters under the conditional flow (eq. 22)."""
    return -model.log_prob_z(z, heads, mask).mean()


@torch.no_grad()
def validation_loss(model: AmortizedPosterior, z: torch.Tensor, heads: torch.Tensor, mask: torch.Tensor,
                    batch: int = 500) -> float:
    model.eval()
    total = 0.0
    for i in range(0, len(z), batch):
        total += float(nll(model, z[i:i + batch], heads[i:i + batch], mask[i:i + batch])) * len(z[i:i + batch])
    return total / len(z)


def train(model: AmortizedPosterior, z_train: torch.Tensor, heads_train: torch.Tensor,
          z_val: torch.Tensor, heads_val: torch.Tensor, settings: TrainSettings, seed: int,
          state: TrainState | None = None, on_epoch: Callable[[TrainState], None] | None = None,
          progress: Callable[[range], object] = iter) -> TrainState:
    """Train ``model`` in place (best weights loaded at the end); resumes from ``state`` when given.

    z_* (N, 706) whitened parameters, heads_* (N, wells, steps) clean heads, all on the model's device.
    """
    device = z_train.device
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    val_heads, val_mask = validation_observations(heads_val, settings, seed)
    if state is None:
        state = TrainState()
    else:
        model.load_state_dict(state.model)
        opt.load_state_dict(state.optimizer)
        gen.set_state(state.generator)
        restore_global_rng(state)
    n = len(z_train)
    for epoch in progress(range(state.epoch, settings.epochs)):
        if state.stopped:
            break
        lr = settings.lr * settings.lr_decay ** (epoch / settings.decay_epochs)
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        total, count = 0.0, 0
        for start in range(0, n - settings.batch_size + 1 if n >= settings.batch_size else 1, settings.batch_size):
            idx = order[start:start + settings.batch_size]
            heads, mask = observe(heads_train[idx], settings, gen)
            loss = nll(model, z_train[idx], heads, mask)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"training loss became {float(loss.detach())} at epoch {epoch + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        val = validation_loss(model, z_val, val_heads, val_mask)
        if not math.isfinite(val):
            raise NonFiniteLoss(f"validation loss became {val} at epoch {epoch + 1}")
        state.epoch = epoch + 1
        state.history.append({"epoch": epoch + 1, "train_loss": total / count, "val_loss": val, "lr": lr})
        if val < state.best_val:
            state.best_val, state.best_epoch, state.bad_epochs = val, epoch + 1, 0
            state.best_model = copy.deepcopy(model.state_dict())
        else:
            state.bad_epochs += 1
            if state.bad_epochs >= settings.patience:
                state.stopped = f"validation loss did not improve for {settings.patience} epochs"
        if state.epoch >= settings.epochs and not state.stopped:
            state.stopped = f"reached {settings.epochs} epochs"
        state.model, state.optimizer, state.generator = model.state_dict(), opt.state_dict(), gen.get_state()
        state.torch_rng = torch.get_rng_state()
        state.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        if on_epoch is not None:
            on_epoch(state)
    if state.best_model is not None:
        model.load_state_dict(state.best_model)
    model.eval()
    return state


def choose_linear_rest(model: AmortizedPosterior, candidates: list[tuple[int, str]],
                       linearization: tuple[np.ndarray, np.ndarray], noise_sd: float, settings: TrainSettings,
                       seed: int, heads_tr: torch.Tensor, z_tr: torch.Tensor, z_va: torch.Tensor,
                       heads_va: torch.Tensor, flow_val: float) -> list[dict]:
    """rest linear: fit each (rest_modes, rest_given) candidate after the flow's training (its maximum-likelihood
    fit is apart from the flow's, see flow.py) and keep the one with the lowest validation NLL (ties: the first,
    fewest modes); the table of every candidate's validation NLL goes into flow_train.json."""
    if not candidates:
        return []
    fit_heads, fit_mask = observe(heads_tr, settings, torch.Generator().manual_seed(seed + 2))
    val_obs = validation_observations(heads_va, settings, seed)
    table, fitted = [], []
    for modes, given in candidates:
        model.set_linear_rest(model.new_linear_rest(modes, given))
        if model.rest_linear is not None:
            model.fit_linear_rest(*linearization, noise_sd, fit_heads, fit_mask, z_tr)
        val = flow_val if model.rest_linear is None else validation_loss(model, z_va, *val_obs)
        table.append({"rest_modes": model.sizes.rest_modes, "rest_given": given, "val_nll": val})
        fitted.append(model.rest_linear)
    best = min(range(len(table)), key=lambda i: table[i]["val_nll"])
    model.set_linear_rest(fitted[best])
    for i, row in enumerate(table):
        row["kept"] = i == best
    return table
