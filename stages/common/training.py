"""A plain mini-batch training loop with closure-based steps (so Langevin-type and full-batch optimizers fit)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .divergence import DivergenceGuard
from .optim import OptimizerChoice, build_optimizer, parse_optimizer
from .progress import track
from .runtime import torch_generator

LossFn = Callable[..., torch.Tensor]  # loss_fn(model, *batch) -> scalar tensor


def fit(
    model: torch.nn.Module,
    loss_fn: LossFn,
    train: Sequence[torch.Tensor],
    *,
    optimizer: OptimizerChoice | dict,
    epochs: int,
    batch_size: int,
    seed: int,
    val: Sequence[torch.Tensor] | None = None,
    description: str = "training",
    grad_clip: float | None = None,
) -> dict[str, list[float]]:
    """Train in place; returns per-epoch mean training loss and (if ``val``) validation loss.

    Tensors in ``train`` share their first dimension. The batch order comes from a generator seeded with
    ``seed``. Optimizers registered as full-batch use the whole training set per step. A non-finite loss stops
    the run with Diverged naming the run ``description`` (see ``divergence.py``). ``grad_clip`` clamps every
    gradient element to [-grad_clip, grad_clip] after each backward pass, so the optimizer (which calls the
    closure) only sees clamped gradients; None leaves them as computed.
    """
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip}")
    choice = parse_optimizer(optimizer)
    opt = build_optimizer(model, choice)
    n = train[0].shape[0]
    batch = n if choice.full_batch else min(batch_size, n)
    device = train[0].device
    gen = torch_generator(seed)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    guard = DivergenceGuard(description)
    for epoch in track(range(epochs), description, total=epochs):
        model.train()
        order = torch.randperm(n, generator=gen).to(device) if batch < n else None
        total = torch.zeros((), device=device)
        for start in range(0, n, batch):
            idx = order[start : start + batch] if order is not None else slice(None)
            xb = [t[idx] for t in train]

            def closure(xb=xb):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model, *xb)
                loss.backward()
                if grad_clip is not None:
                    torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)
                return loss

            loss = opt.step(closure)
            total += loss.detach() * xb[0].shape[0]
        mean = float(total) / n
        guard.check(mean, step=epoch + 1)
        history["train_loss"].append(mean)
        if val is not None:
            history["val_loss"].append(evaluate_loss(model, loss_fn, val))
    return history


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, loss_fn: LossFn, data: Sequence[torch.Tensor]) -> float:
    model.eval()
    return float(loss_fn(model, *data))
