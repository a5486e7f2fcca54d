"""The P-DL network (x, y, depth, t) -> psi and the RRE residual of paper eq. 6.

The residual needs psi_t, the three first space derivatives and the three pure second space derivatives at
10,000 collocation points. Nested reverse-mode autograd recomputes the network many times; here the
derivatives are carried forward through the layers with the network value (forward-mode, "Taylor mode" for
the pure second derivatives), stacked so that each layer costs one matmul:

    h = W a + b,   a' = tanh(h),   s = 1 - a'^2
    d a'/dx_k     = s * (W da/dx_k)
    d2 a'/dx_k^2  = s * (W d2a/dx_k^2) - 2 a' s * (W da/dx_k)^2

Training then back-propagates once through this graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
        params = [p for lin in self.linears for p in (lin.weight, lin.bias)]
        out = _TaylorMLP.apply(self.scaled(coords), *params)  # (8, N): value, 4 first, 3 second derivatives
        c, k = self.in_scale, self.psi_scale
        return {
            "psi": self.psi_centre + k * out[0],
            "psi_x": k * c[0] * out[1],
            "psi_y": k * c[1] * out[2],
            "psi_z": k * c[2] * out[3],
            "psi_t": k * c[3] * out[4],
            "psi_xx": k * c[0] ** 2 * out[5],
            "psi_yy": k * c[1] ** 2 * out[6],
            "psi_zz": k * c[2] ** 2 * out[7],
        }


class _TaylorMLP(torch.autograd.Function):
    """Value, first and pure second input derivatives of a tanh MLP, with a hand-written backward pass
    (one pass over the saved layer states; cheaper than letting autograd record every elementwise op).

    State per layer: Z = [a; g_1..g_4; q_1..q_3], shape (8, N, H). Forward of a hidden layer:
        Y = Z W^T,  A = tanh(Y_0 + b),  s = 1 - A^2,  p = -2 A s
        Z' = [A;  s Y_1..4;  s Y_5..7 + p Y_1..3^2]
    """

    @staticmethod
    def forward(ctx, xs: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        weights, biases = params[0::2], params[1::2]
        n = xs.shape[0]
        z = xs.new_zeros(8, n, xs.shape[1])
        z[0] = xs
        for k in range(4):
            z[1 + k, :, k] = 1.0  # d x_k / d x_k; second derivatives of the inputs are 0
        saved = []
        # elementwise work is done per channel on contiguous (N, H) slices: broadcasting (N, H) against
        # (8, N, H) is several times slower in torch on CPU
        for w, b in zip(weights[:-1], biases[:-1]):
            y = F.linear(z, w)
            a = torch.tanh(y[0] + b)
            s = 1 - a * a
            p = -2 * a * s
            nxt = torch.empty_like(y)
            nxt[0] = a
            for k in range(4):
                torch.mul(y[1 + k], s, out=nxt[1 + k])
            for k in range(3):
                tmp = y[1 + k] * y[1 + k]
                tmp.mul_(p)
                torch.addcmul(tmp, y[5 + k], s, out=nxt[5 + k])
            saved.append((z, y, a, s, p))
            z = nxt
        out = F.linear(z, weights[-1]).squeeze(-1)
        out[0] += biases[-1]
        ctx.saved = saved
        ctx.last = z
        ctx.save_for_backward(*weights)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        weights = ctx.saved_tensors
        z = ctx.last
        h = z.shape[-1]  # width of the last hidden layer
        # last layer: out_c = z_c . w  (+ b for c = 0)
        grads: list[torch.Tensor] = [grad_out[0].sum().reshape(1), (grad_out.reshape(1, -1) @ z.reshape(-1, h))]
        zbar = grad_out[..., None] * weights[-1]  # (8, N, H)
        for (z_in, y, a, s, p), w in zip(reversed(ctx.saved), reversed(weights[:-1])):
            abar, gbar, qbar = zbar[0], zbar[1:5], zbar[5:]
            ybar = torch.empty_like(y)
            sbar = torch.zeros_like(s)
            pbar = torch.zeros_like(s)
            for k in range(4):
                torch.mul(gbar[k], s, out=ybar[1 + k])
                sbar.addcmul_(gbar[k], y[1 + k])
            for k in range(3):
                torch.mul(qbar[k], s, out=ybar[5 + k])
                sbar.addcmul_(qbar[k], y[5 + k])
                ybar[1 + k].addcmul_(p * y[1 + k], qbar[k], value=2.0)  # from p * dh^2
                pbar.addcmul_(y[1 + k] * y[1 + k], qbar[k])
            # s = 1 - a^2, p = -2 a + 2 a^3, a = tanh(y_0 + b)
            ybar[0] = (abar - 2 * a * sbar + (6 * a * a - 2) * pbar) * s
            grads += [ybar[0].sum(0), ybar.reshape(-1, y.shape[-1]).T @ z_in.reshape(-1, z_in.shape[-1])]
            zbar = ybar @ w
        grads.reverse()  # collected from the last layer down as (bias, weight): now (w_0, b_0, w_1, b_1, ...)
        return (None, *grads)


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
