"""Neural networks of the three sub-tasks (pure torch, no I/O).

Task 2: the paper's MLP (25 -> 64 -> 128 -> 256 -> 10, ReLU; Sec. 1.3.2) and a permutation-equivariant graph
network that predicts the correction to constant-velocity motion.
Task 3.1: the paper's LSTM -> FC 256 (ReLU) -> 3 (Sec. 2.3.2).
Task 3.2: stacked GRU/LSTM encoder, then an autoregressive roll-out through FC 256 (ReLU) -> 2 (Sec. 3.3.2);
optionally predicting the correction to linear extrapolation instead of the absolute next position.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


class Standardize(nn.Module):
    """Fixed affine input scaling (mean, std from the training set, stored with the model)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: torch.Tensor) -> Standardize:
        flat = x.reshape(-1, x.shape[-1])
        self.mean.copy_(flat.mean(0))
        self.std.copy_(flat.std(0).clamp_min(1e-6))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


# ---------------------------------------------------------------- task 2
def task2_inputs(pos0: torch.Tensor, vel0: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
    """The paper's 25 inputs: positions (10), velocities (10), charges (5), each flattened particle-major."""
    b = pos0.shape[0]
    return torch.cat([pos0.reshape(b, -1), vel0.reshape(b, -1), charges.reshape(b, -1)], 1)


class MLP(nn.Module):
    """Paper's regression MLP for one horizon: (B, N, 2) x2, (B, N) -> positions (B, N, 2)."""

    def __init__(self, n_particles: int = 5, widths: tuple[int, ...] = (64, 128, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        width_in = 5 * n_particles
        for w in widths:
            layers += [nn.Linear(width_in, w), nn.ReLU()]
            width_in = w
        layers.append(nn.Linear(width_in, 2 * n_particles))
        self.net = nn.Sequential(*layers)

    def forward(self, pos0: torch.Tensor, vel0: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        return self.net(task2_inputs(pos0, vel0, charges)).reshape(pos0.shape)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.SiLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class InteractionGNN(nn.Module):
    """Message passing on the complete graph of particles, equivariant to relabelling them.

    Edge inputs (i <- j): relative position x_j - x_i, distance, relative velocity, q_i q_j and the softened
    Coulomb term q_i q_j (x_i - x_j) / (|x_i - x_j|^2 + eps^2)^(3/2) (the force law's shape, not its strength).
    Node inputs: velocity and charge (no absolute position: the model is translation invariant). Messages are
    summed over neighbours (order-free), so permuting particles permutes the output. Output for horizon t_h:
    x_0 + v_0 t_h + t_h^2 / 2 * c_h, with c_h read from the node state (a learned mean acceleration).
    """

    def __init__(self, horizons: tuple[float, ...], hidden: int = 64, layers: int = 2, softening: float = 0.05):
        super().__init__()
        self.register_buffer("horizons", torch.tensor(horizons, dtype=torch.float32))
        self.softening = softening
        edge_in = 2 + 1 + 2 + 1 + 2
        self.node_in = _mlp([3, hidden, hidden])
        self.edge_in = _mlp([edge_in, hidden, hidden])
        self.message = nn.ModuleList([_mlp([3 * hidden, hidden, hidden]) for _ in range(layers)])
        self.update = nn.ModuleList([_mlp([2 * hidden, hidden, hidden]) for _ in range(layers)])
        self.readout = _mlp([hidden, hidden, 2 * len(horizons)])

    def forward(self, pos0: torch.Tensor, vel0: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        """(B, N, 2), (B, N, 2), (B, N) -> positions (B, H, N, 2)."""
        b, n, _ = pos0.shape
        rel = pos0.unsqueeze(1) - pos0.unsqueeze(2)  # [b, i, j] = x_j - x_i
        dist2 = (rel * rel).sum(-1, keepdim=True)
        qq = (charges.unsqueeze(2) * charges.unsqueeze(1)).unsqueeze(-1)
        coulomb = -qq * rel / (dist2 + self.softening**2) ** 1.5
        rel_vel = vel0.unsqueeze(1) - vel0.unsqueeze(2)
        edges = self.edge_in(torch.cat([rel, dist2.sqrt(), rel_vel, qq, coulomb], -1))
        off_diag = (~torch.eye(n, dtype=torch.bool, device=pos0.device)).to(pos0.dtype).view(1, n, n, 1)
        h = self.node_in(torch.cat([vel0, charges.unsqueeze(-1)], -1))
        for message, update in zip(self.message, self.update):
            hi = h.unsqueeze(2).expand(b, n, n, -1)
            hj = h.unsqueeze(1).expand(b, n, n, -1)
            m = message(torch.cat([hi, hj, edges], -1)) * off_diag
            h = h + update(torch.cat([h, m.sum(2)], -1))
        acc = self.readout(h).reshape(b, n, -1, 2).transpose(1, 2)  # (B, H, N, 2)
        t = self.horizons.to(pos0.dtype).view(1, -1, 1, 1)
        return pos0.unsqueeze(1) + vel0.unsqueeze(1) * t + 0.5 * t * t * acc


# ---------------------------------------------------------------- task 3.1
class ChargeLSTM(nn.Module):
    """Paper's LSTM (Sec. 2.3.2): trajectory (B, T, F) with lengths -> charges (B, 3).

    Padding is skipped with packed sequences; the last valid hidden state feeds FC 256 (ReLU) -> 3.
    """

    def __init__(self, n_features: int = 2, hidden: int = 256, fc: int = 256):
        super().__init__()
        self.scale = Standardize(n_features)
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden, fc), nn.ReLU(), nn.Linear(fc, 3))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.scale(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.head(h[-1])


def sequence_features(traj: torch.Tensor, lengths: torch.Tensor, with_velocity: bool, sample_dt: float) -> torch.Tensor:
    """Per-step inputs: positions, optionally with the backward-difference velocity (zero at step 0 and in padding)."""
    if not with_velocity:
        return traj
    vel = torch.zeros_like(traj)
    vel[:, 1:] = (traj[:, 1:] - traj[:, :-1]) / sample_dt
    valid = torch.arange(traj.shape[1], device=traj.device).unsqueeze(0) < lengths.unsqueeze(1)
    return torch.cat([traj, vel * valid.unsqueeze(-1)], -1)


# ---------------------------------------------------------------- task 3.2
class Continuation(nn.Module):
    """Stacked GRU/LSTM over the given positions, then an autoregressive roll-out of the continuation.

    ``residual=False`` is the paper's model: the head outputs the next position. ``residual=True`` predicts the
    correction to linear extrapolation, x_{s+1} = 2 x_s - x_{s-1} + dt^2 * a_s, so an untrained head (a = 0)
    reproduces the linear baseline and training only has to learn the curvature.
    """

    def __init__(self, cell: str = "gru", hidden: int = 256, layers: int = 2, fc: int = 256, residual: bool = False,
                 sample_dt: float = 0.1):
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.residual = residual
        self.sample_dt = sample_dt
        self.scale = Standardize(2)
        self.rnn = rnn(4, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden, fc), nn.ReLU(), nn.Linear(fc, 2))
        if residual:  # start exactly at the linear baseline
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)

    def _inputs(self, pos: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """Scaled position and step (x_s - x_{s-1}) / std, (B, T, 4)."""
        return torch.cat([self.scale(pos), (pos - prev) / self.scale.std], -1)

    def forward(self, traj: torch.Tensor, lengths: torch.Tensor, horizon: int) -> torch.Tensor:
        """traj (B, T, 2) zero-padded given part, lengths (B,) -> predicted continuation (B, horizon, 2)."""
        prev = torch.cat([traj[:, :1], traj[:, :-1]], 1)
        packed = pack_padded_sequence(self._inputs(traj, prev), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        rows = torch.arange(traj.shape[0], device=traj.device)
        last, before = traj[rows, lengths - 1], traj[rows, lengths - 2]
        out = []
        for _ in range(horizon):
            top = (state[0] if isinstance(state, tuple) else state)[-1]
            y = self.head(top)
            if self.residual:
                nxt = 2 * last - before + self.sample_dt**2 * y
            else:
                nxt = y * self.scale.std + self.scale.mean
            out.append(nxt)
            _, state = self.rnn(self._inputs(nxt, last).unsqueeze(1), state)
            before, last = last, nxt
        return torch.stack(out, 1)
