"""The P-DL network (x, y, depth, t) -> psi and the RRE residual of paper eq. 6.

The residual needs psi_t, the three first space derivatives and the three pure second space derivatives at
10,000 collocation points. Nested reverse-mode autograd recomputes the network many times; here the
derivatives are carried forward through the layers with the network value (forward-mode, "Taylor mode" for
the pure second derivatives):

    y = W a + b,   a' = tanh(y),   s = 1 - a'^2,   p = -2 a' s
    d a'/dx_k     = s * (W da/dx_k)
    d2 a'/dx_k^2  = s * (W d2a/dx_k^2) + p * (W da/dx_k)^2

in plain tensor operations, so training back-propagates through them with ordinary autograd, and
``torch.compile`` can fuse the elementwise work (see ``train.py``). Activations are stored feature-major,
(H, N) and (H, channels, N), so every layer is one (H x H) @ (H x channels N) product.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .soil import VanGenuchten, capacity, conductivity, conductivity_derivative

# order of the input columns; second derivatives are taken in the first three (space)
INPUTS = ("x", "y", "z", "t")


TRANSFORMS = ("linear", "neg_exp")


class PsiNet(nn.Module):
    """Fully connected tanh network. Inputs are mapped to [-1, 1] with ``lo``/``hi`` (time first through
    log(1 + t / log_time) when ``log_time`` is given, so the early transient gets its share of the input range);
    the output N becomes v = centre + scale * N and psi = v (``transform`` 'linear') or psi = -exp(v) ('neg_exp':
    psi < 0 everywhere, as Bandai and Ghezzehei 2022; centre and scale are then those of log(-psi)).
    ``hard_initial`` (psi0 cm, tau s): the initial condition is built into the output, v = v0 + g(t) (centre - v0
    + scale N) with g = 1 - exp(-t / tau) and v0 = psi0 (linear) or log(-psi0) (neg_exp), so psi(x, 0) = psi0
    exactly and the initial condition cannot be traded against the residual."""

    def __init__(self, hidden: int, layers: int, lo, hi, psi_centre: float, psi_scale: float,
                 transform: str = "linear", log_time: float | None = None,
                 hard_initial: tuple[float, float] | None = None) -> None:
        super().__init__()
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown output transform {transform!r}")
        self.transform, self.log_time = transform, log_time
        self.hard_tau = None if hard_initial is None else float(hard_initial[1])
        if hard_initial is not None:
            psi0 = float(hard_initial[0])
            if transform == "neg_exp" and not psi0 < 0:
                raise ValueError(f"a neg_exp output needs psi0 < 0 for a hard initial condition, got {psi0}")
            self.register_buffer("v0", torch.tensor(psi0 if transform == "linear" else float(np.log(-psi0))))
        sizes = [4] + [hidden] * layers + [1]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        lo = self._time_feature(torch.as_tensor(lo, dtype=torch.float64))
        hi = self._time_feature(torch.as_tensor(hi, dtype=torch.float64))
        self.register_buffer("in_centre", ((hi + lo) / 2).float())
        self.register_buffer("in_scale", (2 / (hi - lo)).float())  # d(scaled input)/d(input feature)
        self.register_buffer("psi_centre", torch.tensor(float(psi_centre)))
        self.register_buffer("psi_scale", torch.tensor(float(psi_scale)))
        for lin in self.linears:  # Glorot normal, zero bias (the usual PINN start)
            nn.init.xavier_normal_(lin.weight)
            nn.init.zeros_(lin.bias)

    def _time_feature(self, coords: torch.Tensor) -> torch.Tensor:
        if self.log_time is None:
            return coords
        return torch.cat([coords[..., :3], torch.log1p(coords[..., 3:] / self.log_time)], dim=-1)

    def scaled(self, coords: torch.Tensor) -> torch.Tensor:
        return (self._time_feature(coords) - self.in_centre) * self.in_scale

    def _gate(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """g(t) = 1 - exp(-t / tau) of the hard initial condition and g'(t)."""
        e = torch.exp(-t / self.hard_tau)
        return 1 - e, e / self.hard_tau

    def _value(self, out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v (psi or log(-psi)) from the network output N."""
        v = self.psi_centre + self.psi_scale * out
        if self.hard_tau is None:
            return v
        return self.v0 + self._gate(t)[0] * (v - self.v0)

    def _output(self, v: torch.Tensor) -> torch.Tensor:
        return v if self.transform == "linear" else -torch.exp(v)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """psi (N,) at physical coordinates (N, 4) = (x, y, depth, t) in cm and s."""
        a = self.scaled(coords)
        for lin in self.linears[:-1]:
            a = torch.tanh(lin(a))
        return self._output(self._value(self.linears[-1](a).squeeze(-1), coords[:, 3]))

    def normal_derivative(self, coords: torch.Tensor, axis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """psi (N,) and its derivative along one space axis per point (N,), ``axis`` (N,) long: 0 x, 1 y, 2 depth
        (what a face's flux needs: the derivative along its normal only)."""
        value, first = directional_forward(self.scaled(coords), [lin.weight for lin in self.linears],
                                           [lin.bias for lin in self.linears], axis)
        v1 = self.psi_scale * self.in_scale[axis] * first
        v = self.psi_centre + self.psi_scale * value
        if self.hard_tau is not None:  # v = v0 + g(t) (w - v0): v_i = g w_i
            g = self._gate(coords[:, 3])[0]
            v1, v = g * v1, self.v0 + g * (v - self.v0)
        psi = self._output(v)
        return psi, (v1 if self.transform == "linear" else psi * v1)  # neg_exp: psi_i = psi v_i

    def derivatives(self, coords: torch.Tensor) -> dict[str, torch.Tensor]:
        """psi and psi_x, psi_y, psi_z, psi_t, psi_xx, psi_yy, psi_zz (z = depth), each (N,), physical units."""
        weights = [lin.weight for lin in self.linears]
        biases = [lin.bias for lin in self.linears]
        value, first, second = taylor_forward(self.scaled(coords), weights, biases)
        c, k = self.in_scale, self.psi_scale
        dt = c[3] if self.log_time is None else c[3] / (self.log_time + coords[:, 3])
        v1 = [k * c[0] * first[0], k * c[1] * first[1], k * c[2] * first[2], k * dt * first[3]]
        v2 = [k * c[i] ** 2 * second[i] for i in range(3)]
        v = self.psi_centre + k * value
        if self.hard_tau is not None:  # v = v0 + g(t) (w - v0): v_i = g w_i, v_t = g' (w - v0) + g w_t
            g, dg = self._gate(coords[:, 3])
            v1 = [g * v1[0], g * v1[1], g * v1[2], dg * (v - self.v0) + g * v1[3]]
            v2 = [g * d for d in v2]
            v = self.v0 + g * (v - self.v0)
        # psi = f(v): linear f(v) = v; neg_exp f = -exp(v), f' = f'' = psi, so
        # psi_i = psi v_i and psi_ii = psi (v_ii + v_i^2)
        psi = self._output(v)
        if self.transform == "linear":
            out = {"psi": psi, "psi_t": v1[3]}
            for i, name in enumerate(INPUTS[:3]):
                out[f"psi_{name}"], out[f"psi_{name}{name}"] = v1[i], v2[i]
        else:
            out = {"psi": psi, "psi_t": psi * v1[3]}
            for i, name in enumerate(INPUTS[:3]):
                out[f"psi_{name}"], out[f"psi_{name}{name}"] = psi * v1[i], psi * (v2[i] + v1[i] ** 2)
        return out


def directional_forward(xs: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor],
                        axis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A tanh MLP's output (N,) and its first derivative (N,) in one input per point, ``axis`` (N,), at scaled
    inputs ``xs`` (N, 4): one derivative channel instead of ``taylor_forward``'s seven."""
    w0 = weights[0]
    a = torch.tanh(w0 @ xs.T + biases[0][:, None])  # (H, N)
    first = (1 - a * a) * w0[:, axis]  # the input's own derivative is a unit vector: a column of W per point
    for w, b in zip(weights[1:-1], biases[1:-1]):
        a = torch.tanh(w @ a + b[:, None])
        first = (1 - a * a) * (w @ first)
    w, b = weights[-1], biases[-1]
    return (w @ a + b[:, None]).squeeze(0), (w @ first).squeeze(0)


def taylor_forward(xs: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A tanh MLP's output (N,), its first derivatives in the 4 inputs (4, N) and its pure second
    derivatives in the first 3 inputs (3, N), at scaled inputs ``xs`` (N, 4)."""
    n, width = xs.shape[0], weights[0].shape[0]
    w0 = weights[0]
    a = torch.tanh(w0 @ xs.T + biases[0][:, None])  # (H, N)
    s = 1 - a * a
    # the inputs' own derivatives are unit vectors, so the first layer's are columns of W
    first = s[:, None, :] * w0[:, :, None]  # (H, 4, N)
    second = (-2 * a * s)[:, None, :] * (w0[:, :3, None] ** 2)  # (H, 3, N)
    for w, b in zip(weights[1:-1], biases[1:-1]):
        y = w @ a + b[:, None]
        y1 = (w @ first.reshape(width, -1)).reshape(width, 4, n)
        y2 = (w @ second.reshape(width, -1)).reshape(width, 3, n)
        a = torch.tanh(y)
        s = 1 - a * a
        second = s[:, None, :] * y2 + (-2 * a * s)[:, None, :] * y1[:, :3] ** 2
        first = s[:, None, :] * y1
    w, b = weights[-1], biases[-1]
    value = (w @ a + b[:, None]).squeeze(0)
    return (value, (w @ first.reshape(width, -1)).reshape(4, n),
            (w @ second.reshape(width, -1)).reshape(3, n))


def residual(d: dict[str, torch.Tensor], soil: VanGenuchten) -> torch.Tensor:
    """Paper eq. 6 with z the depth (downward): the elevation derivative is -psi_z, so the gravity term
    psi_e (psi_e + 1) becomes psi_z^2 - psi_z.  r = C psi_t - [K' |grad psi|^2 - K' psi_z + K lap psi]."""
    psi = d["psi"]
    c = capacity(psi, soil)
    k = conductivity(psi, soil)
    dk = conductivity_derivative(psi, soil)
    grad2 = d["psi_x"] ** 2 + d["psi_y"] ** 2 + d["psi_z"] ** 2
    lap = d["psi_xx"] + d["psi_yy"] + d["psi_zz"]
    return c * d["psi_t"] - (dk * (grad2 - d["psi_z"]) + k * lap)


def autograd_derivatives(net: PsiNet, coords: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same derivatives by nested reverse-mode autograd (the reference the tests and benchmark use)."""
    coords = coords.detach().requires_grad_(True)
    psi = net(coords)
    (grad,) = torch.autograd.grad(psi.sum(), coords, create_graph=True)
    out = {"psi": psi}
    for i, name in enumerate(INPUTS):
        out[f"psi_{name}"] = grad[:, i]
    for i, name in enumerate(INPUTS[:3]):
        (g2,) = torch.autograd.grad(grad[:, i].sum(), coords, create_graph=True)
        out[f"psi_{name}{name}"] = g2[:, i]
    return out
