"""The optimizer registry shared by every torch stage.

Params select an optimizer by name with its hyperparameters beside it:

    optimizer: {name: adam, lr: 1.0e-4, weight_decay: 3.0e-5}

Task configs declare such a field as ``OptimizerSpec``; it is validated with the rest of the params (unknown
name, unknown hyperparameter, out-of-range value), and ``build_optimizer(model, spec)`` makes the optimizer.

An optimizer class may define ``groups_for(model, **hyperparameters) -> list[dict]`` (a staticmethod): given a
module, ``build_optimizer`` then uses it to partition the parameters into param groups (the thermodynamic
optimizers put the first layer and the rest in different groups this way). Otherwise all parameters form one group.

Line-search optimizers (``lbfgs``, and the schedule ``adam_lbfgs``: Adam for ``adam_steps`` steps, then L-BFGS)
need the same loss at every evaluation of one step: they are registered ``full_batch`` and ``needs_full_batch``
(a stage must not give them mini-batches). Each ``step(closure)`` of L-BFGS runs ``max_iter`` iterations;
``line_search_counts(optimizer)`` says how many iterations and loss evaluations L-BFGS really made (torch's
L-BFGS stops a step early, silently, once the gradient or the change falls below its tolerances).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator

from . import langevin
from .config import Config, validation_message
from .errors import UserError


@dataclass(frozen=True)
class OptimizerEntry:
    name: str
    cls: Callable[..., Any]
    config: type[Config]
    full_batch: bool  # the optimizer is defined on the full-batch gradient (plain gradient descent)
    needs_full_batch: bool = False  # a line search: mini-batches would change the loss between evaluations


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


def register_optimizer(name: str, cls: Callable[..., Any], config: type[Config], full_batch: bool = False,
                       needs_full_batch: bool = False) -> None:
    """Make ``cls(params, **config_fields)`` selectable as ``name`` in params."""
    OPTIMIZERS[name] = OptimizerEntry(name=name, cls=cls, config=config, full_batch=full_batch or needs_full_batch,
                                      needs_full_batch=needs_full_batch)


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


class LBFGSHyper(Config):
    """torch.optim.LBFGS with the strong-Wolfe line search. ``max_iter``: iterations per ``step`` call (torch's
    default 20; 1 makes a stage's step count the L-BFGS iteration count); ``max_eval``: loss evaluations per
    ``step`` call, the first included (None: torch's max_iter * 5 // 4). The line search of a step gets only
    ``max_eval`` - 1 evaluations in all, so max_eval <= max_iter is refused: with max_iter 1 torch's default
    leaves the line search none and L-BFGS never moves. The tolerances default to 0 (torch: 1e-7 and 1e-9, absolute
    values that end every step without a move once the gradient or the directional derivative is that small,
    e.g. near the minimum of a loss of order 1e-6): L-BFGS then stops only where it can make no descent step."""

    lr: float = Field(1.0, gt=0)
    max_iter: int = Field(20, ge=1)
    max_eval: int | None = Field(None, ge=2)
    history_size: int = Field(100, ge=1)
    tolerance_grad: float = Field(0.0, ge=0)
    tolerance_change: float = Field(0.0, ge=0)
    line_search: Literal["strong_wolfe"] = "strong_wolfe"

    @model_validator(mode="after")
    def _line_search_gets_evaluations(self) -> LBFGSHyper:
        if (self.max_iter * 5 // 4 if self.max_eval is None else self.max_eval) <= self.max_iter:
            raise ValueError(".max_eval must be > max_iter (the line search needs evaluations of its own; torch's "
                             "default max_iter * 5 // 4 leaves none for a small max_iter)")
        return self


def _lbfgs_class():
    import torch

    class CountingLBFGS(torch.optim.LBFGS):
        """torch's L-BFGS that also counts the ``step`` calls that moved the parameters (``moved``): torch's own
        iteration count also grows when a step ends without a move (a tolerance met, no descent direction)."""

        moved = 0

        def step(self, closure):
            before = torch.cat([p.detach().reshape(-1) for p in self._params])
            loss = super().step(closure)
            after = torch.cat([p.detach().reshape(-1) for p in self._params])
            self.moved += int(not torch.equal(before, after))
            return loss

    return CountingLBFGS


def _lbfgs(params, lr, max_iter, max_eval, history_size, tolerance_grad, tolerance_change, line_search):
    params = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    return _lbfgs_class()(params, lr=lr, max_iter=max_iter, max_eval=max_eval, history_size=history_size,
                          tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                          line_search_fn=line_search)


class AdamLBFGSHyper(Config):
    """The schedule Adam then L-BFGS: Adam (``lr``, ``betas``, ``eps``) for the first ``adam_steps`` step calls, then
    L-BFGS (``lbfgs``) from where Adam left the parameters."""

    lr: float = Field(1e-3, gt=0)
    betas: list[Annotated[float, Field(ge=0, lt=1)]] = Field(default_factory=lambda: [0.9, 0.999], min_length=2,
                                                             max_length=2)
    eps: float = Field(1e-8, gt=0)
    adam_steps: int = Field(1000, ge=0)
    lbfgs: LBFGSHyper = Field(default_factory=LBFGSHyper)


class AdamThenLBFGS:
    """Adam for the first ``adam_steps`` calls of ``step(closure)``, then L-BFGS on the same parameters. Its
    ``param_groups`` are Adam's (a learning-rate schedule acts on Adam only)."""

    def __init__(self, params, lr, betas, eps, adam_steps, lbfgs) -> None:
        import torch

        params = list(params)
        self.adam = torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps)
        self.lbfgs = _lbfgs(params, **lbfgs)
        self.adam_steps, self.steps = adam_steps, 0

    @property
    def active(self):
        return self.adam if self.steps < self.adam_steps else self.lbfgs

    @property
    def param_groups(self) -> list[dict]:
        return self.adam.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.active.zero_grad(set_to_none=set_to_none)

    def step(self, closure):
        opt = self.active
        self.steps += 1
        return opt.step(closure)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "adam": self.adam.state_dict(), "lbfgs": self.lbfgs.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        self.adam.load_state_dict(state["adam"])
        self.lbfgs.load_state_dict(state["lbfgs"])


def line_search_counts(optimizer) -> dict[str, int] | None:
    """What L-BFGS (``lbfgs``, or the L-BFGS part of ``adam_lbfgs``) really did: torch's ``iterations`` and loss
    ``evaluations``, and ``moved``, the step calls that changed the parameters. None for other optimizers."""
    import torch

    lbfgs = optimizer.lbfgs if isinstance(optimizer, AdamThenLBFGS) else optimizer
    if not isinstance(lbfgs, torch.optim.LBFGS):
        return None
    state = lbfgs.state[lbfgs._params[0]]
    return {"iterations": int(state.get("n_iter", 0)), "evaluations": int(state.get("func_evals", 0)),
            "moved": int(getattr(lbfgs, "moved", 0))}


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
    register_optimizer("lbfgs", _lbfgs, LBFGSHyper, needs_full_batch=True)
    register_optimizer("adam_lbfgs", AdamThenLBFGS, AdamLBFGSHyper, needs_full_batch=True)


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
