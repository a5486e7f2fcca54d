"""Training a batched ensemble of two-spiral classifiers with one optimizer (pure: tensors in, arrays out)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from phys_ml.stages.common.divergence import DivergenceGuard
from phys_ml.stages.common.langevin import ThermodynamicOptimizer, layer_param_groups
from phys_ml.stages.common.optim import OptimizerChoice, build_optimizer

from .model import EnsembleMLP


@dataclass
class Curves:
    """Learning curves of an ensemble: rows are evaluation epochs, columns members."""

    epochs: np.ndarray  # (K,) epochs completed at each evaluation (0 = the initialisation)
    train_loss: np.ndarray  # (K, E) BCE on the full training set
    train_acc: np.ndarray  # (K, E)
    test_loss: np.ndarray  # (K, E) BCE on the full test set
    test_acc: np.ndarray  # (K, E)
    # thermodynamic optimizers only (NaN otherwise): kinetic temperature (mean p^2) of the first layer and of
    # the other layers, and the first layer's mean thermostat variable xi (adaptive Langevin)
    kin_first: np.ndarray  # (K, E)
    kin_rest: np.ndarray  # (K, E)
    xi_first: np.ndarray  # (K, E)
    # per member: the evaluation epoch at which it was found diverged (DivergenceGuard on its full training
    # loss), -1 if it never diverged; a diverged member's curves are NaN from that epoch on
    diverged_at: np.ndarray  # (E,)

    @property
    def diverged(self) -> int:
        return int((self.diverged_at >= 0).sum())


def member_generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def make_optimizer(model: EnsembleMLP, choice: OptimizerChoice, generator: torch.Generator):
    """The optimizer over per-layer param groups; thermodynamic ones thermostat each member separately."""
    opt = build_optimizer(layer_param_groups(model, member_dims=1), choice)
    if isinstance(opt, ThermodynamicOptimizer):
        opt.generator = generator
    return opt


@torch.no_grad()
def evaluate(model: EnsembleMLP, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-member BCE and accuracy on the whole set (x: (N, 2), y: (N,))."""
    logits = model(x)
    target = y.expand_as(logits)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=1)
    acc = ((logits > 0).to(y.dtype) == target).to(torch.float64).mean(dim=1)
    return loss, acc


@torch.no_grad()
def thermostat_state(opt, members: int) -> list[torch.Tensor]:
    """Per member (member_dims = 1): mean p^2 of the first-layer group and of the other groups, and the mean xi
    of the first layer; NaN where the optimizer has no such state."""
    nan = torch.full((members,), float("nan"), dtype=torch.float64)
    if not isinstance(opt, ThermodynamicOptimizer):
        return [nan, nan.clone(), nan.clone()]
    out = []
    for first in (True, False):
        tensors = [opt.state[q]["momentum"] for g in opt.param_groups if g["first_layer"] == first
                   for q in g["params"] if "momentum" in opt.state[q]]
        if not tensors:
            out.append(nan.clone())
            continue
        total = sum(p.square().reshape(members, -1).sum(dim=1) for p in tensors)
        out.append((total / sum(p[0].numel() for p in tensors)).to(torch.float64).cpu())
    xis = [opt.state[q]["xi"].reshape(members) for g in opt.param_groups if g["first_layer"]
           for q in g["params"] if "xi" in opt.state[q]]
    out.append(torch.stack(xis).mean(dim=0).to(torch.float64).cpu() if xis else nan.clone())
    return out


def train_ensemble(
    data: dict[str, torch.Tensor],
    choice: OptimizerChoice,
    seeds: list[int],
    *,
    epochs: int,
    batch_size: int,
    hidden: int,
    eval_every: int,
    noise_seed: int,
    progress=None,
    name: str = "ensemble",
) -> tuple[EnsembleMLP, Curves]:
    """Train one network per seed (initialisation from its seed), all at once, with the optimizer ``choice``.

    ``data`` holds x_train (N, 2), y_train (N,), x_test, y_test on one device. Every member sees its own
    shuffle of the training set each epoch (minibatches of ``batch_size``; BCE, the mean over the batch).
    ``noise_seed`` seeds the minibatch order and the optimizer's noise. ``progress`` wraps the epoch range.
    At every evaluation each member's full training loss goes through the shared divergence rule (not finite,
    or over 1e4 times its value at the initialisation): a diverged member is kept (an optimizer comparison
    keeps its runs), its curves become NaN from that epoch on and ``Curves.diverged_at`` says when.
    """
    x, y = data["x_train"], data["y_train"]
    device = x.device
    members, n = len(seeds), x.shape[0]
    model = EnsembleMLP(members, hidden).to(device)
    model.reset(member_generators(seeds))
    gen = torch.Generator(device=device).manual_seed(noise_seed)
    opt = make_optimizer(model, choice, gen)
    shuffle_gen = torch.Generator(device=device).manual_seed(noise_seed + 1)

    history: list[tuple[int, list[torch.Tensor]]] = []
    guards = [DivergenceGuard(f"{name} run {m}") for m in range(members)]
    diverged_at = np.full(members, -1, dtype=np.int64)

    def record(epoch: int) -> None:
        history.append((epoch, [*evaluate(model, x, y), *evaluate(model, data["x_test"], data["y_test"]),
                                *thermostat_state(opt, members)]))
        for m, loss in enumerate(history[-1][1][0].tolist()):
            if diverged_at[m] < 0 and guards[m].diverged(loss, epoch):
                diverged_at[m] = epoch

    record(0)
    epoch_range = range(1, epochs + 1)
    for epoch in progress(epoch_range) if progress else epoch_range:
        order = torch.rand(members, n, generator=shuffle_gen, device=device).argsort(dim=1)
        xs, ys = x[order], y[order]  # (E, N, 2), (E, N)
        for start in range(0, n, batch_size):
            xb, yb = xs[:, start : start + batch_size], ys[:, start : start + batch_size]

            def closure(xb=xb, yb=yb):
                opt.zero_grad()
                # sum over members of each member's mean BCE: member m's gradient is its own
                loss = F.binary_cross_entropy_with_logits(model(xb), yb, reduction="none").mean(dim=1).sum()
                loss.backward()
                return loss

            opt.step(closure)
        if epoch % eval_every == 0 or epoch == epochs:
            record(epoch)
    epochs_done = np.array([h[0] for h in history])
    stacked = [torch.stack([h[1][i].cpu() for h in history]).numpy() for i in range(7)]
    for m in np.flatnonzero(diverged_at >= 0):
        for values in stacked:
            values[epochs_done >= diverged_at[m], m] = np.nan
    return model, Curves(epochs_done, *stacked, diverged_at=diverged_at)
