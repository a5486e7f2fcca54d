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

import torch
from torch import nn

from .soil import VanGenuchten, capacity, conductivity, conductivity_derivative

# order of the input columns; second derivatives are taken in the first three (space)
INPUTS = ("x", "y", "z", "t")


class PsiNet(nn.Module):
    """Fully connected tanh network. Inputs are mapped to [-1, 1] with ``lo``/``hi``; psi = centre + scale * out."""

    def __init__(self, hidden: int, layers: int, lo, hi, psi_centre: float, psi_scale: float) -> None:
        super().__init__()
        sizes = [4] + [hidden] * layers + [1]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        lo = torch.as_tensor(lo, dtype=torch.float64)
        hi = torch.as_tensor(hi, dtype=torch.float64)
        self.register_buffer("in_centre", ((hi + lo) / 2).float())
        self.register_buffer("in_scale", (2 / (hi - lo)).float())  # d(scaled input)/d(input)
        self.register_buffer("psi_centre", torch.tensor(float(psi_centre)))
        self.register_buffer("psi_scale", torch.tensor(float(psi_scale)))
        for lin in self.linears:  # Glorot normal, zero bias (the usual PINN start)
            nn.init.xavier_normal_(lin.weight)
            nn.init.zeros_(lin.bias)

    def scaled(self, coords: torch.Tensor) -> torch.Tensor:
        return (coords - self.in_centre) * self.in_scale

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """psi (N,) at physical coordinates (N, 4) = (x, y, depth, t) in cm and s."""
        a = self.scaled(coords)
        for lin in self.linears[:-1]:
            a = torch.tanh(lin(a))
        return self.psi_centre + self.psi_scale * self.linears[-1](a).squeeze(-1)

    def derivatives(self, coords: torch.Tensor) -> dict[str, torch.Tensor]:
        """psi and psi_x, psi_y, psi_z, psi_t, psi_xx, psi_yy, psi_zz (z = depth), each (N,), physical units."""
        weights = [lin.weight for lin in self.linears]
        biases = [lin.bias for lin in self.linears]
        value, first, second = taylor_forward(self.scaled(coords), weights, biases)
        c, k = self.in_scale, self.psi_scale
        return {
            "psi": self.psi_centre + k * value,
            "psi_x": k * c[0] * first[0],
            "psi_y": k * c[1] * first[1],
            "psi_z": k * c[2] * first[2],
            "psi_t": k * c[3] * first[3],
            "psi_xx": k * c[0] ** 2 * second[0],
            "psi_yy": k * c[1] ** 2 * second[1],
            "psi_zz": k * c[2] ** 2 * second[2],
        }


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
