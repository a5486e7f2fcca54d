"""The optimizer registry shared by every torch stage.

Params select an optimizer by name with its hyperparameters beside it:

    optimizer: {name: adam, lr: 1.0e-4, weight_decay: 3.0e-5}

Task configs declare such a field as ``OptimizerSpec``; it is validated with the rest of the params (unknown
name, unknown hyperparameter, out-of-range value), and ``build_optimizer(model, spec)`` makes the optimizer.

An optimizer class may define ``groups_for(model, **hyperparameters) -> list[dict]`` (a staticmethod): given a
module, ``build_optimizer`` then uses it to partition the parameters into param groups (the thermodynamic
optimizers put the first layer and the rest in different groups this way). Otherwise all parameters form one group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationError

from . import langevin
from .config import Config, validation_message
from .errors import UserError


@dataclass(frozen=True)
class OptimizerEntry:
    name: str
    cls: Callable[..., Any]
    config: type[Config]
    full_batch: bool  # the optimizer is defined on the full-batch gradient (plain gradient descent)


@dataclass(frozen=True)
class OptimizerChoice:
    """A validated selection: the registry entry and its hyperparameters."""

    name: str
    hyper: Config

    @property
    def entry(self) -> OptimizerEntry:
        return OPTIMIZERS[self.name]

    @property
    def full_batch(self) -> bool:
        return self.entry.full_batch

    def kwargs(self) -> dict[str, Any]:
        return self.hyper.model_dump()


OPTIMIZERS: dict[str, OptimizerEntry] = {}


def register_optimizer(name: str, cls: Callable[..., Any], config: type[Config], full_batch: bool = False) -> None:
    """Make ``cls(params, **config_fields)`` selectable as ``name`` in params."""
    OPTIMIZERS[name] = OptimizerEntry(name=name, cls=cls, config=config, full_batch=full_batch)


# ---- hyperparameters of the classic optimizers (torch names) ----
class GDHyper(Config):
    lr: float = Field(1e-2, gt=0)


class SGDHyper(Config):
    lr: float = Field(1e-2, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0)


class RMSpropHyper(Config):
    lr: float = Field(1e-3, gt=0)
    alpha: float = Field(0.99, gt=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)


class AdamHyper(Config):
    lr: float = Field(1e-3, gt=0)
    betas: list[Annotated[float, Field(ge=0, lt=1)]] = Field(default_factory=lambda: [0.9, 0.999], min_length=2, max_length=2)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)


class AdagradHyper(Config):
    lr: float = Field(1e-2, gt=0)
    lr_decay: float = Field(0.0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    eps: float = Field(1e-10, gt=0)


def _torch_classes() -> None:
    import torch

    def sgd(params, lr, momentum, nesterov, weight_decay):
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                               weight_decay=weight_decay)

    def adam(params, lr, betas, eps, weight_decay):
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)

    register_optimizer("gd", lambda params, lr: torch.optim.SGD(params, lr=lr), GDHyper, full_batch=True)
    register_optimizer("sgd", sgd, SGDHyper)
    register_optimizer("rmsprop", torch.optim.RMSprop, RMSpropHyper)
    register_optimizer("adam", adam, AdamHyper)
    register_optimizer("adagrad", torch.optim.Adagrad, AdagradHyper)


_torch_classes()
langevin.register_all(register_optimizer)  # AdLaLa, LOL, LaLa and their kin


def parse_optimizer(spec: Any, key: str = "optimizer") -> OptimizerChoice:
    """Validate ``{name: ..., <hyperparameters>}``; raise UserError naming the bad key."""
    try:
        return _choice(spec)
    except ValueError as exc:
        raise UserError(_join(key, str(exc))) from None


def _join(key: str, message: str) -> str:
    return f"{key}{message}" if message.startswith(".") else f"{key}: {message}"


def _choice(spec: Any) -> OptimizerChoice:
    if isinstance(spec, OptimizerChoice):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError("must be a mapping with a 'name' key")
    name = spec["name"]
    if name not in OPTIMIZERS:
        raise ValueError(f".name must be one of {', '.join(sorted(OPTIMIZERS))}, got {name!r}")
    hyper = {k: v for k, v in spec.items() if k != "name"}
    try:
        return OptimizerChoice(name=name, hyper=OPTIMIZERS[name].config.model_validate(hyper))
    except ValidationError as exc:
        raise ValueError("." + validation_message(exc, "").lstrip(".")) from None


# Use as a field type in task configs: `optimizer: OptimizerSpec = {"name": "adam", "lr": 1e-3}`.
OptimizerSpec = Annotated[Any, AfterValidator(_choice)]


def build_optimizer(target: Any, spec: OptimizerChoice | dict | str):
    """Make the optimizer for a module (or an iterable of parameters / param groups)."""
    import torch

    choice = parse_optimizer(spec)
    kwargs = choice.kwargs()
    cls = choice.entry.cls
    if isinstance(target, torch.nn.Module):
        groups_for = getattr(cls, "groups_for", None)
        params: Iterable = groups_for(target, **kwargs) if groups_for else target.parameters()
    else:
        params = target
    return cls(params, **kwargs)
