"""Thermodynamic optimizers: discretized Langevin dynamics as torch optimizers.

Leimkuhler, Matthews, Vlaar, "Partitioned integrators for thermodynamic parameterization of neural networks",
Foundations of Data Science 1(4), 2019 (specification: shared/design/thermodynamic-optimizers.md).

Unit mass, parameters theta, momenta p, minibatch loss L, R fresh N(0, 1) noise. Sub-steps with step f:

    A_f: theta += f p                         B_f: p -= f grad L
    O_f: p = c p + sqrt((1 - c^2) tau) R,  c = exp(-gamma f)
    C_f: p *= exp(-f xi)                      D_f: p += sigma_A sqrt(f) R
    E_f: xi += f eps (p.p - N tau)            (one scalar xi per tensor, N its number of entries)

Every param group follows one ``scheme``:

- ``langevin``   (BAOAB):  A_{h/2} O_h A_{h/2}, gradient, B_h
- ``overdamped`` (gamma -> infinity limit of O): A_{h/2} [p = sqrt(tau) R] A_{h/2}, gradient, B_h; the positions
  follow the Leimkuhler-Matthews scheme with step delta = h^2 / 2
- ``adaptive``   (adaptive Langevin): A_{h/2} C_{h/2} D_{h/2} E_h D_{h/2} C_{h/2} A_{h/2}, gradient, B_h

Momenta start at zero followed by B_{h/2}, so each step needs one gradient. The partitioned methods (AdLaLa,
LOL, LaLa) give the first layer's group one scheme and the other groups another; ``layer_param_groups`` builds
the groups. ``step(closure)`` drifts, calls the closure (loss and gradients at the drifted parameters) and kicks.
Without a closure, ``step()`` kicks with the gradients already in ``.grad`` and then drifts (same trajectory).

Ensembles: a group's ``member_dims`` (default 0) says how many leading dimensions of each tensor index
independent ensemble members; xi and p.p are then per member, so a batched ensemble equals independent runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from pydantic import Field
from torch import nn

from .config import Config
from .errors import UserError

SCHEMES = ("langevin", "overdamped", "adaptive")


# ---- param groups -------------------------------------------------------------------------------------------
def model_layers(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """(name, parameters) of every module that owns trainable parameters itself, in registration order."""
    layers = []
    for name, module in model.named_modules():
        params = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if params:
            layers.append((name or type(module).__name__, params))
    return layers


def layer_param_groups(model: nn.Module, mode: str = "first_rest", **options: Any) -> list[dict[str, Any]]:
    """Param groups by layer: ``first_rest`` gives [first layer, all other layers], ``per_layer`` one per layer.

    A layer is a module owning parameters (weight and bias together), in registration order, which is the
    forward order for ``nn.Sequential`` and for modules that register their layers in order. Each group carries
    ``layer`` (a name) and ``first_layer`` (bool); ``options`` (e.g. ``member_dims=1``) are added to every group.
    """
    layers = model_layers(model)
    if not layers:
        raise UserError(f"{type(model).__name__} has no trainable parameters")
    if mode == "per_layer":
        return [{"params": ps, "layer": name, "first_layer": i == 0, **options} for i, (name, ps) in enumerate(layers)]
    if mode != "first_rest":
        raise UserError(f"param-group mode must be 'first_rest' or 'per_layer', got {mode!r}")
    name0, first = layers[0]
    groups = [{"params": first, "layer": name0, "first_layer": True, **options}]
    rest = [p for _, ps in layers[1:] for p in ps]
    if rest:
        groups.append({"params": rest, "layer": "rest", "first_layer": False, **options})
    return groups


# ---- the integrator -------------------------------------------------------------------------------------------
class ThermodynamicOptimizer(torch.optim.Optimizer):
    """Base of the Langevin family: each param group has a ``scheme`` and its hyperparameters.

    Group keys: scheme, h, gamma, tau, sigma_A, eps, xi_init, member_dims. Noise comes from ``generator``
    (a torch.Generator on the parameters' device) when given, else from torch's global generator; per step,
    groups draw in order, one normal vector per sub-step that needs noise, split over the group's tensors.
    """

    def __init__(self, params: Iterable, defaults: dict[str, Any], generator: torch.Generator | None = None):
        super().__init__(params, defaults)
        self.generator = generator

    # -- the interface --
    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        """One step. With a closure: drift, loss and gradients at the new parameters, kick B_h; returns the loss.

        The very first call also evaluates the closure at the starting point for the initial half kick B_{h/2}.
        """
        if closure is None:
            self._kick()
            self._drift()
            return None
        if not self._started():
            with torch.enable_grad():
                closure()
            self._kick(only_new=True)
        self._drift()
        with torch.enable_grad():
            loss = closure()
        self._kick()
        return loss

    def kinetic_temperature(self) -> list[torch.Tensor]:
        """Per group, the mean of p^2 over its entries (a tensor, no host sync); equals tau at equilibrium."""
        out = []
        for group in self.param_groups:
            ps = [self.state[q]["momentum"] for q in group["params"] if "momentum" in self.state[q]]
            if not ps:
                out.append(torch.zeros(()))
                continue
            total = sum(p.square().sum() for p in ps)
            out.append(total / sum(p.numel() for p in ps))
        return out

    def xi(self) -> list[list[torch.Tensor]]:
        """Per group, the thermostat variables xi of its tensors (adaptive groups; empty list otherwise)."""
        return [[self.state[q]["xi"] for q in g["params"] if "xi" in self.state[q]] for g in self.param_groups]

    # -- internals --
    def _started(self) -> bool:
        return all("momentum" in self.state[q] for g in self.param_groups for q in g["params"])

    def _momenta(self, group: dict) -> list[torch.Tensor]:
        ps = []
        for q in group["params"]:
            state = self.state[q]
            if "momentum" not in state:
                state["momentum"] = torch.zeros_like(q, memory_format=torch.preserve_format)
                if group["scheme"] == "adaptive":
                    shape = q.shape[: group["member_dims"]] + (1,) * (q.dim() - group["member_dims"])
                    state["xi"] = torch.full(shape, float(group["xi_init"]), dtype=q.dtype, device=q.device)
            ps.append(state["momentum"])
        return ps

    def _kick(self, only_new: bool = False) -> None:
        """B_h; B_{h/2} on a tensor's first kick (momenta start at zero, then half a kick). ``only_new``: only
        the tensors not kicked before (the start, or a param group added later)."""
        for group in self.param_groups:
            h = group["h"]
            new = [q for q in group["params"] if "momentum" not in self.state[q]]
            self._momenta(group)
            for q in new:
                if q.grad is not None:
                    self.state[q]["momentum"].add_(q.grad, alpha=-h / 2)
            new_ids = {id(q) for q in new}
            old = [(self.state[q]["momentum"], q.grad) for q in group["params"]
                   if q.grad is not None and id(q) not in new_ids]
            if old and not only_new:
                ps, gs = zip(*old)
                torch._foreach_add_(list(ps), list(gs), alpha=-h)

    def _noise(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """Fresh N(0, 1) tensors shaped like ``params``: one draw, split."""
        sizes = [q.numel() for q in params]
        flat = torch.randn(sum(sizes), generator=self.generator, device=params[0].device, dtype=params[0].dtype)
        return [r.view_as(q) for r, q in zip(flat.split(sizes), params)]

    def _drift(self) -> None:
        for group in self.param_groups:
            if not group["params"]:
                continue
            params = list(group["params"])
            ps = self._momenta(group)
            half = group["h"] / 2
            torch._foreach_add_(params, ps, alpha=half)  # A_{h/2}
            scheme = group["scheme"]
            if scheme == "langevin":
                self._o_step(ps, group)
            elif scheme == "overdamped":  # O with c = 0: full momentum refresh
                noise = self._noise(ps)
                torch._foreach_mul_(noise, math.sqrt(group["tau"]))
                torch._foreach_copy_(ps, noise)
            else:
                self._adaptive_drift(ps, group)
            torch._foreach_add_(params, ps, alpha=half)  # A_{h/2}

    def _o_step(self, ps: list[torch.Tensor], group: dict) -> None:
        """O_h: exact Ornstein-Uhlenbeck update of the momenta."""
        c = math.exp(-group["gamma"] * group["h"])
        torch._foreach_mul_(ps, c)
        torch._foreach_add_(ps, self._noise(ps), alpha=math.sqrt((1 - c * c) * group["tau"]))

    def _adaptive_drift(self, ps: list[torch.Tensor], group: dict) -> None:
        """C_{h/2} D_{h/2} E_h D_{h/2} C_{h/2} (the A_{h/2} on either side are done by the caller)."""
        h, m = group["h"], group["member_dims"]
        xis = [self.state[q]["xi"] for q in group["params"]]
        d_scale = group["sigma_A"] * math.sqrt(h / 2)

        def c_step() -> None:  # C_{h/2}: p *= exp(-h/2 xi)
            factors = torch._foreach_mul(xis, -h / 2)
            torch._foreach_exp_(factors)
            torch._foreach_mul_(ps, factors)

        c_step()
        torch._foreach_add_(ps, self._noise(ps), alpha=d_scale)  # D_{h/2}
        # E_h: xi += h eps (p.p - N tau), p.p over each member's entries (N of them)
        squares = torch._foreach_mul(ps, ps)
        sums = [sq.sum(dim=tuple(range(m, sq.dim())), keepdim=True) if sq.dim() > m else sq for sq in squares]
        torch._foreach_add_(xis, sums, alpha=h * group["eps"])
        per_member = [math.prod(p.shape[m:]) for p in ps]
        torch._foreach_add_(xis, [-h * group["eps"] * n * group["tau"] for n in per_member])
        torch._foreach_add_(ps, self._noise(ps), alpha=d_scale)  # D_{h/2}
        c_step()


def _positive(name: str, value: float, strict: bool = True) -> None:
    if not (value > 0 if strict else value >= 0) or not math.isfinite(value):
        raise UserError(f"{name} must be {'>' if strict else '>='} 0, got {value!r}")


def _partition(groups: list[dict], first: dict[str, Any], rest: dict[str, Any], method: str) -> None:
    """Give the first layer's group(s) the ``first`` settings and the others ``rest`` (explicit keys win)."""
    if len(groups) < 2 and not any("first_layer" in g for g in groups):
        raise UserError(f"{method} partitions the parameters by layer: pass param groups "
                        "(first layer, rest), e.g. layer_param_groups(model)")
    for i, group in enumerate(groups):
        is_first = group.get("first_layer", i == 0)
        group["first_layer"] = is_first
        for key, value in (first if is_first else rest).items():
            group.setdefault(key, value)


def _check_groups(groups: list[dict]) -> None:
    for group in groups:
        if group["scheme"] not in SCHEMES:
            raise UserError(f"scheme must be one of {', '.join(SCHEMES)}, got {group['scheme']!r}")
        for key in ("h", "gamma", "sigma_A", "eps"):
            if key in group:
                _positive(key, group[key], strict=key == "h")
        _positive("tau", group.get("tau", 0.0), strict=False)
        if not isinstance(group.get("member_dims", 0), int) or group.get("member_dims", 0) < 0:
            raise UserError(f"member_dims must be an integer >= 0, got {group.get('member_dims')!r}")


def _common(h: float, member_dims: int, **more: Any) -> dict[str, Any]:
    return {"h": h, "member_dims": member_dims, **more}


class Langevin(ThermodynamicOptimizer):
    """Underdamped Langevin (BAOAB) on every group: dp = -grad L dt - gamma p dt + sqrt(2 gamma tau) dW."""

    def __init__(self, params, h: float = 0.25, gamma: float = 0.1, tau: float = 1e-4, *, member_dims: int = 0,
                 generator: torch.Generator | None = None):
        super().__init__(params, _common(h, member_dims, gamma=gamma, tau=tau, scheme="langevin"), generator)
        _check_groups(self.param_groups)


class Overdamped(ThermodynamicOptimizer):
    """Overdamped Langevin, d theta = -grad L dt + sqrt(2 tau) dW, as the gamma -> infinity limit of BAOAB:
    the Leimkuhler-Matthews scheme with step delta = h^2 / 2."""

    def __init__(self, params, h: float = 0.25, tau: float = 1e-4, *, member_dims: int = 0,
                 generator: torch.Generator | None = None):
        super().__init__(params, _common(h, member_dims, tau=tau, scheme="overdamped"), generator)
        _check_groups(self.param_groups)


class AdLaLa(ThermodynamicOptimizer):
    """Adaptive Langevin on the first layer (tau1, sigma_A, eps, xi_init), Langevin on the rest (gamma, tau2)."""

    def __init__(self, params, h: float = 0.25, gamma: float = 0.1, tau1: float = 1e-4, tau2: float = 1e-4,
                 sigma_A: float = 0.01, eps: float = 0.05, xi_init: float = 0.1, *, member_dims: int = 0,
                 generator: torch.Generator | None = None):
        defaults = _common(h, member_dims, gamma=gamma, sigma_A=sigma_A, eps=eps, xi_init=xi_init)
        super().__init__(params, defaults, generator)
        _partition(self.param_groups, {"scheme": "adaptive", "tau": tau1}, {"scheme": "langevin", "tau": tau2},
                   "AdLaLa")
        _check_groups(self.param_groups)

    groups_for = staticmethod(lambda model, **_: layer_param_groups(model))


class LOL(ThermodynamicOptimizer):
    """Langevin on the first layer (gamma, tau1), overdamped Langevin on the rest (tau2)."""

    def __init__(self, params, h: float = 0.25, gamma: float = 0.1, tau1: float = 1e-4, tau2: float = 1e-4, *,
                 member_dims: int = 0, generator: torch.Generator | None = None):
        super().__init__(params, _common(h, member_dims, gamma=gamma), generator)
        _partition(self.param_groups, {"scheme": "langevin", "tau": tau1}, {"scheme": "overdamped", "tau": tau2},
                   "LOL")
        _check_groups(self.param_groups)

    groups_for = staticmethod(lambda model, **_: layer_param_groups(model))


class LaLa(ThermodynamicOptimizer):
    """Langevin on every layer with per-layer friction and temperature: (gamma1, tau1) on the first layer,
    (gamma2, tau2) on the others; a group's own ``gamma``/``tau`` keys override (per-layer groups)."""

    def __init__(self, params, h: float = 0.25, gamma1: float = 0.1, gamma2: float = 0.1, tau1: float = 1e-4,
                 tau2: float = 1e-4, *, member_dims: int = 0, generator: torch.Generator | None = None):
        super().__init__(params, _common(h, member_dims, scheme="langevin"), generator)
        _partition(self.param_groups, {"gamma": gamma1, "tau": tau1}, {"gamma": gamma2, "tau": tau2}, "LaLa")
        _check_groups(self.param_groups)

    groups_for = staticmethod(lambda model, **_: layer_param_groups(model))


# ---- hyperparameter configs (params.yaml) and registration -----------------------------------------------------
# Defaults: the authors' settings (h = 0.25, tau = 1e-4, gamma = 0.1, sigma_A = 0.01, eps = 0.05, xi_init = 0.1).
class LangevinHyper(Config):
    h: float = Field(0.25, gt=0)
    gamma: float = Field(0.1, gt=0)
    tau: float = Field(1e-4, ge=0)


class OverdampedHyper(Config):
    h: float = Field(0.25, gt=0)
    tau: float = Field(1e-4, ge=0)


class AdLaLaHyper(Config):
    h: float = Field(0.25, gt=0)
    gamma: float = Field(0.1, gt=0)
    tau1: float = Field(1e-4, ge=0)
    tau2: float = Field(1e-4, ge=0)
    sigma_A: float = Field(0.01, ge=0)
    eps: float = Field(0.05, ge=0)
    xi_init: float = 0.1


class LOLHyper(Config):
    h: float = Field(0.25, gt=0)
    gamma: float = Field(0.1, gt=0)
    tau1: float = Field(1e-4, ge=0)
    tau2: float = Field(1e-4, ge=0)


class LaLaHyper(Config):
    h: float = Field(0.25, gt=0)
    gamma1: float = Field(0.1, gt=0)
    gamma2: float = Field(0.1, gt=0)
    tau1: float = Field(1e-4, ge=0)
    tau2: float = Field(1e-4, ge=0)


def register_all(register: Callable[..., None]) -> None:
    """Register the thermodynamic optimizers with the shared registry (``register_optimizer``)."""
    register("langevin", Langevin, LangevinHyper, full_batch=False)
    register("overdamped", Overdamped, OverdampedHyper, full_batch=False)
    register("adlala", AdLaLa, AdLaLaHyper, full_batch=False)
    register("lol", LOL, LOLHyper, full_batch=False)
    register("lala", LaLa, LaLaHyper, full_batch=False)
