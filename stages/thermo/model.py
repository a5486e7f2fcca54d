"""A batched ensemble of small ReLU networks: member m is an independent 2-100-1 network.

Stacking the members' weights along a leading dimension turns E small networks into a few batched matrix
products, so ten seeds cost little more than one on a CPU. Each layer is its own module, so
``layer_param_groups`` partitions by layer; the thermodynamic optimizers get ``member_dims=1`` so that their
thermostat variables are per member.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class EnsembleLinear(nn.Module):
    """E independent affine maps: (E, B, n_in) -> (E, B, n_out); weight (E, n_in, n_out), bias (E, 1, n_out)."""

    def __init__(self, members: int, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, n_in, n_out))
        self.bias = nn.Parameter(torch.empty(members, 1, n_out))

    def reset(self, generator: torch.Generator) -> None:
        """PyTorch's default nn.Linear initialisation, per member: U(-1/sqrt(n_in), 1/sqrt(n_in)) for both."""
        bound = 1 / math.sqrt(self.weight.shape[1])
        with torch.no_grad():
            for p in (self.weight, self.bias):
                p.copy_(torch.rand(p.shape, generator=generator, dtype=p.dtype) * 2 * bound - bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """E networks 2 -> hidden (ReLU) -> 1; ``forward`` returns logits (E, B) (the sigmoid is in the loss)."""

    def __init__(self, members: int, hidden: int = 100, n_in: int = 2):
        super().__init__()
        self.members = members
        self.layer1 = EnsembleLinear(members, n_in, hidden)
        self.layer2 = EnsembleLinear(members, hidden, 1)

    def reset(self, generators: list[torch.Generator]) -> None:
        """Initialise member m from ``generators[m]`` alone, so a member does not depend on the ensemble size."""
        single = [EnsembleLinear(1, *layer.weight.shape[1:]) for layer in (self.layer1, self.layer2)]
        with torch.no_grad():
            for m, gen in enumerate(generators):
                for layer, tmp in zip((self.layer1, self.layer2), single):
                    tmp.reset(gen)
                    layer.weight[m] = tmp.weight[0]
                    layer.bias[m] = tmp.bias[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (E, B, 2) or (B, 2) shared by all members -> logits (E, B)."""
        if x.dim() == 2:
            x = x.expand(self.members, *x.shape)
        return self.layer2(torch.relu(self.layer1(x))).squeeze(-1)
