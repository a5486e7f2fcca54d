"""Physics checks of the thermodynamic optimizers (stages/common/langevin.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.langevin import (
    LOL,
    AdLaLa,
    LaLa,
    Langevin,
    Overdamped,
    layer_param_groups,
)
from phys_ml.stages.common.optim import build_optimizer, parse_optimizer

torch.set_num_threads(1)


def quadratic_closure(opt, tensors, stiffness):
    """L = sum_i k_i |theta_i|^2 / 2 (exact gradients, no minibatch noise)."""

    def closure():
        opt.zero_grad()
        loss = sum(0.5 * k * t.square().sum() for t, k in zip(tensors, stiffness))
        loss.backward()
        return loss

    return closure


def params(n, seed, scale=0.5):
    gen = torch.Generator().manual_seed(seed)
    return nn.Parameter(scale * torch.randn(n, generator=gen, dtype=torch.float64))


def averages(opt, tensors, closure, burn, steps):
    """Time averages of mean p^2 and mean theta^2 per tensor."""
    for _ in range(burn):
        opt.step(closure)
    p2 = torch.zeros(len(tensors), dtype=torch.float64)
    q2 = torch.zeros(len(tensors), dtype=torch.float64)
    for _ in range(steps):
        opt.step(closure)
        p2 += torch.stack(opt.kinetic_temperature())  # one tensor per group here
        q2 += torch.stack([t.detach().square().mean() for t in tensors])
    return (p2 / steps).numpy(), (q2 / steps).numpy()


def test_equipartition_each_langevin_partition():
    """LaLa on a harmonic potential: <p^2> -> tau and k <theta^2> -> tau in each layer, each at its own tau."""
    a, b = params(2000, 0), params(2000, 1)
    k = (1.0, 4.0)
    opt = LaLa([{"params": [a]}, {"params": [b]}], h=0.1, gamma1=1.0, gamma2=2.0, tau1=0.5, tau2=2.0,
               generator=torch.Generator().manual_seed(2))
    p2, q2 = averages(opt, [a, b], quadratic_closure(opt, [a, b], k), burn=300, steps=2000)
    np.testing.assert_allclose(p2, [0.5, 2.0], rtol=0.02)
    np.testing.assert_allclose(q2 * np.array(k), [0.5, 2.0], rtol=0.02)  # BAOAB samples positions exactly here


def test_adaptive_langevin_mean_xi_and_temperature():
    """AdLaLa, exact gradients: the first layer's <xi> -> sigma_A^2 / (2 tau1), <p^2> -> tau1; the rest -> tau2."""
    a, b = params(1000, 3), params(1000, 4)
    tau1, sigma_a = 0.5, 1.0
    opt = AdLaLa([{"params": [a]}, {"params": [b]}], h=0.1, gamma=1.0, tau1=tau1, tau2=2.0, sigma_A=sigma_a,
                 eps=0.01, xi_init=0.1, generator=torch.Generator().manual_seed(5))
    closure = quadratic_closure(opt, [a, b], (1.0, 1.0))
    for _ in range(800):
        opt.step(closure)
    xi = torch.zeros((), dtype=torch.float64)
    p2 = torch.zeros(2, dtype=torch.float64)
    steps = 3000
    for _ in range(steps):
        opt.step(closure)
        xi += opt.xi()[0][0].squeeze()
        p2 += torch.stack([opt.state[t]["momentum"].square().mean() for t in (a, b)])
    assert float(xi / steps) == pytest.approx(sigma_a**2 / (2 * tau1), rel=0.03)
    np.testing.assert_allclose((p2 / steps).numpy(), [tau1, 2.0], rtol=0.02)
    assert opt.param_groups[0]["scheme"] == "adaptive" and opt.param_groups[1]["scheme"] == "langevin"


def damped_oscillator(t, k, gamma):
    """theta'' + gamma theta' + k theta = 0, theta(0) = 1, theta'(0) = 0 (underdamped)."""
    w = math.sqrt(k - gamma**2 / 4)
    return math.exp(-gamma * t / 2) * (math.cos(w * t) + gamma / (2 * w) * math.sin(w * t))


@pytest.mark.parametrize("closure_mode", [True, False])
def test_deterministic_limit_is_damped_dynamics(closure_mode):
    """tau = 0: BAOAB is a second-order integrator of the damped oscillator (error ratio ~4 when h halves)."""
    k, gamma, t_end = 2.0, 0.3, 5.0
    errors = []
    for h in (0.1, 0.05, 0.025):
        theta = nn.Parameter(torch.ones(1, dtype=torch.float64))
        opt = Langevin([theta], h=h, gamma=gamma, tau=0.0)
        closure = quadratic_closure(opt, [theta], (k,))
        for _ in range(round(t_end / h)):
            if closure_mode:
                opt.step(closure)
            else:
                closure()
                opt.step()
        errors.append(abs(theta.item() - damped_oscillator(t_end, k, gamma)))
    assert errors[0] < 5e-3
    assert 3.3 < errors[0] / errors[1] < 4.7 and 3.3 < errors[1] / errors[2] < 4.7


def test_param_group_added_later_starts_cleanly():
    """A group added mid-run gets its own half kick; the running group is not kicked twice (tau = 0)."""
    a, b = nn.Parameter(torch.ones(3, dtype=torch.float64)), nn.Parameter(torch.ones(2, dtype=torch.float64))
    ref = nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = Langevin([a], h=0.1, gamma=0.5, tau=0.0)
    opt_ref = Langevin([ref], h=0.1, gamma=0.5, tau=0.0)
    closure = quadratic_closure(opt, [a, b], (1.0, 2.0))
    closure_ref = quadratic_closure(opt_ref, [ref], (1.0,))
    for n in range(10):
        if n == 5:
            opt.add_param_group({"params": [b]})
        opt.step(closure)
        opt_ref.step(closure_ref)
    torch.testing.assert_close(a, ref, rtol=0, atol=0)


def double_well_grad(x):
    return 4 * x * (x * x - 1)


@pytest.mark.parametrize("h", [0.1, 0.3])
def test_lol_overdamped_part_is_leimkuhler_matthews(h):
    """LOL's overdamped layer follows theta_{n+1} = theta_n - delta grad L + sqrt(delta tau / 2)(R_n + R_{n+1}),
    delta = h^2 / 2, driven by the same noise (the first step starts from p = -h/2 grad: half a drift, one R)."""
    n0, n1, tau2, steps = 7, 5, 0.3, 50
    first, second = params(n0, 6), params(n1, 7, scale=1.0)
    start = second.detach().clone()
    opt = LOL([{"params": [first]}, {"params": [second]}], h=h, gamma=1.0, tau1=0.1, tau2=tau2,
              generator=torch.Generator().manual_seed(8))

    def closure():
        opt.zero_grad()
        loss = 0.5 * first.square().sum() + ((second**2 - 1) ** 2).sum()
        loss.backward()
        return loss

    trajectory = []
    for _ in range(steps):
        opt.step(closure)
        trajectory.append(second.detach().clone())
    # replay: per step the Langevin group draws n0 normals, then the overdamped group n1
    replay = torch.Generator().manual_seed(8)
    delta, x, previous = h * h / 2, start, torch.zeros(n1, dtype=torch.float64)
    for n in range(steps):
        torch.randn(n0, generator=replay, dtype=torch.float64)
        r = torch.randn(n1, generator=replay, dtype=torch.float64)
        step = delta / 2 if n == 0 else delta
        x = x - step * double_well_grad(x) + math.sqrt(delta * tau2 / 2) * (previous + r)
        previous = r
        torch.testing.assert_close(trajectory[n], x, rtol=1e-12, atol=1e-12)


def test_overdamped_samples_gibbs_variance():
    """Overdamped on k theta^2 / 2: k <theta^2> -> tau (LM is exact to O(delta^2) on a harmonic potential)."""
    a = params(4000, 9)
    opt = Overdamped([a], h=0.3, tau=0.4, generator=torch.Generator().manual_seed(10))
    _, q2 = averages(opt, [a], quadratic_closure(opt, [a], (1.5,)), burn=300, steps=1000)
    assert q2[0] * 1.5 == pytest.approx(0.4, rel=0.03)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU())
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.body(x))


def test_param_group_partition():
    net = Net()
    names = {id(p): n for n, p in net.named_parameters()}
    groups = layer_param_groups(net)
    assert [sorted(names[id(p)] for p in g["params"]) for g in groups] == [
        ["body.0.bias", "body.0.weight"], ["body.2.bias", "body.2.weight", "head.bias", "head.weight"]]
    assert [g["first_layer"] for g in groups] == [True, False]
    per_layer = layer_param_groups(net, "per_layer", member_dims=0)
    assert [g["layer"] for g in per_layer] == ["body.0", "body.2", "head"]
    assert all(g["member_dims"] == 0 for g in per_layer)
    everything = sorted(id(p) for g in per_layer for p in g["params"])
    assert everything == sorted(id(p) for p in net.parameters())
    with pytest.raises(UserError):
        layer_param_groups(net, "by_size")


@pytest.mark.parametrize("name", ["adlala", "lol", "lala", "langevin", "overdamped"])
def test_registry_builds_partitioned_optimizers(name):
    net = Net()
    opt = build_optimizer(net, {"name": name, "h": 0.1})
    schemes = [g["scheme"] for g in opt.param_groups]
    expected = {"adlala": ["adaptive", "langevin"], "lol": ["langevin", "overdamped"], "lala": ["langevin"] * 2,
                "langevin": ["langevin"], "overdamped": ["overdamped"]}[name]
    assert schemes == expected
    assert sum(len(g["params"]) for g in opt.param_groups) == 6
    x, y = torch.randn(32, 2), torch.randn(32, 1)

    def closure():
        opt.zero_grad()
        loss = (net(x) - y).square().mean()
        loss.backward()
        return loss

    losses = [float(opt.step(closure).detach()) for _ in range(30)]
    assert all(math.isfinite(v) for v in losses)


def test_partitioned_method_needs_groups_and_valid_hyperparameters():
    net = Net()
    with pytest.raises(UserError, match="param groups"):
        AdLaLa(net.parameters())
    with pytest.raises(UserError, match=r"optimizer\.h must be > 0, got 0"):
        parse_optimizer({"name": "adlala", "h": 0}, "optimizer")
    with pytest.raises(UserError, match=r"optimizer\.tau1 must be >= 0"):
        parse_optimizer({"name": "lol", "tau1": -1.0}, "optimizer")
    with pytest.raises(UserError, match=r"optimizer\.lr is not a known key"):
        parse_optimizer({"name": "lala", "lr": 0.1}, "optimizer")
    with pytest.raises(UserError, match="tau"):
        Langevin([nn.Parameter(torch.zeros(2))], tau=-1.0)


def test_ensemble_members_are_independent_runs():
    """member_dims=1: a stacked ensemble gives each member its own xi, so it equals separate runs (no noise)."""
    gen = torch.Generator().manual_seed(11)
    w = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64) * torch.tensor([0.5, 1.0, 2.0]).view(3, 1, 1)
    v = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    hyper = dict(h=0.2, gamma=0.5, tau1=0.0, tau2=0.0, sigma_A=0.0, eps=0.3, xi_init=0.2)

    def run(w0, v0, member_dims):
        a, b = nn.Parameter(w0.clone()), nn.Parameter(v0.clone())
        opt = AdLaLa([{"params": [a]}, {"params": [b]}], member_dims=member_dims, **hyper)
        closure = quadratic_closure(opt, [a, b], (1.0, 3.0))
        for _ in range(40):
            opt.step(closure)
        return a.detach(), b.detach(), opt.state[a]["xi"]

    wa, wb, xi = run(w, v, 1)
    assert xi.shape == (3, 1, 1)
    for m in range(3):
        sa, sb, sxi = run(w[m], v[m], 0)
        torch.testing.assert_close(wa[m], sa)
        torch.testing.assert_close(wb[m], sb)
        torch.testing.assert_close(xi[m], sxi)


def test_same_seed_same_trajectory():
    def run():
        torch.manual_seed(0)
        net = Net()
        opt = build_optimizer(net, {"name": "adlala"})
        opt.generator = torch.Generator().manual_seed(12)
        x, y = torch.randn(16, 2, generator=torch.Generator().manual_seed(1)), torch.zeros(16, 1)
        for _ in range(10):
            opt.step(lambda: _loss(opt, net, x, y))
        return torch.cat([p.detach().ravel() for p in net.parameters()])

    assert torch.equal(run(), run())


def _loss(opt, net, x, y):
    opt.zero_grad()
    loss = (net(x) - y).square().mean()
    loss.backward()
    return loss


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    net = Net().cuda()
    opt = build_optimizer(net, {"name": "adlala"})
    opt.generator = torch.Generator(device="cuda").manual_seed(0)
    x, y = torch.randn(16, 2, device="cuda"), torch.zeros(16, 1, device="cuda")
    for _ in range(5):
        opt.step(lambda: _loss(opt, net, x, y))
    assert all(torch.isfinite(p).all() for p in net.parameters())
