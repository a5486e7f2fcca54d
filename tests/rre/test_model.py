"""P-DL network: forward-mode derivatives and their parameter gradients against nested autograd, the compiled
loss against the eager one; the RRE residual is near zero on the solver's own solution."""

import numpy as np
import pytest
import torch

from phys_ml.stages.rre.model import PsiNet, autograd_derivatives, residual
from phys_ml.stages.rre.soil import VanGenuchten, capacity
from phys_ml.stages.rre.solver import Grid, Problem, Stepping, solve

SOIL = VanGenuchten()


def small_net(hidden=6, layers=3):
    torch.manual_seed(0)
    return PsiNet(hidden, layers, [0, 0, 0, 0], [25, 25, 5, 3250], -30.0, 28.0).double()


def points(n=300):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 4, generator=g, dtype=torch.float64) * torch.tensor([25.0, 25.0, 5.0, 3250.0])


def test_forward_mode_derivatives_match_autograd():
    net, x = small_net(), points()
    ours, ref = net.derivatives(x), autograd_derivatives(net, x)
    for key in ref:
        torch.testing.assert_close(ours[key], ref[key], rtol=1e-10, atol=1e-12 * float(ref[key].detach().abs().max()))


@pytest.mark.parametrize("transform, log_time", [("neg_exp", None), ("linear", 1.0), ("neg_exp", 10.0)])
def test_output_transform_and_log_time_derivatives_match_autograd(transform, log_time):
    """psi = -exp(centre + scale N) and time fed as log(1 + t / t_c): the forward-mode chain rule is exact."""
    torch.manual_seed(0)
    net = PsiNet(6, 3, [0, 0, 0, 0], [25, 25, 5, 3250], 2.0, 1.5, transform, log_time).double()
    x = points()
    ours, ref = net.derivatives(x), autograd_derivatives(net, x)
    assert bool((ours["psi"] < 0).all()) or transform == "linear"
    for key in ref:
        torch.testing.assert_close(ours[key], ref[key], rtol=1e-10, atol=1e-12 * float(ref[key].detach().abs().max()))


@pytest.mark.parametrize("transform", ["linear", "neg_exp"])
def test_hard_initial_condition_is_exact_at_t0_and_its_derivatives_match_autograd(transform):
    """psi = f(v0 + g(t) (v - v0)), g = 1 - exp(-t / tau): psi(x, 0) = psi0 whatever the weights, and the
    forward-mode derivatives (the gate's g' in psi_t included) are exact."""
    torch.manual_seed(0)
    net = PsiNet(6, 3, [0, 0, 0, 0], [25, 25, 5, 3250], 2.0, 1.5, transform, 1.0, (-1.0, 2.0)).double()
    x = points()
    x[:20, 3] = 0.0
    x[20:60, 3] = x[20:60, 3] / 1000  # within a few tau of t = 0
    ours, ref = net.derivatives(x), autograd_derivatives(net, x)
    torch.testing.assert_close(ours["psi"][:20], torch.full((20,), -1.0, dtype=torch.float64), rtol=0, atol=1e-12)
    assert float((ours["psi"][20:] + 1).detach().abs().max()) > 0.1  # the gate opens: later, the network's own
    for key in ref:
        torch.testing.assert_close(ours[key], ref[key], rtol=1e-10, atol=1e-12 * float(ref[key].detach().abs().max()))


@pytest.mark.parametrize("transform, hard_initial", [("linear", None), ("neg_exp", (-1.0, 2.0))])
def test_normal_derivative_matches_autograd(transform, hard_initial):
    """The boundary faces' one derivative per point (along each face's normal) equals nested autograd's."""
    torch.manual_seed(0)
    net = PsiNet(6, 3, [0, 0, 0, 0], [25, 25, 5, 3250], 2.0, 1.5, transform, 1.0, hard_initial).double()
    x = points()
    axis = torch.arange(x.shape[0]) % 3
    psi, normal = net.normal_derivative(x, axis)
    ref = autograd_derivatives(net, x)
    want = torch.stack([ref["psi_x"], ref["psi_y"], ref["psi_z"]]).gather(0, axis[None]).squeeze(0)
    torch.testing.assert_close(psi, ref["psi"], rtol=1e-12, atol=0.0)
    torch.testing.assert_close(normal, want, rtol=1e-10, atol=1e-12 * float(want.detach().abs().max()))


def test_parameter_gradients_match_autograd():
    net, x = small_net(), points()

    def loss(d):
        return (residual(d, SOIL) / 8e-5).pow(2).mean() + d["psi"].pow(2).mean() * 1e-3

    g_ours = torch.autograd.grad(loss(net.derivatives(x)), list(net.parameters()))
    g_ref = torch.autograd.grad(loss(autograd_derivatives(net, x)), list(net.parameters()))
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12 * float(b.abs().max()))


def test_residual_is_small_on_the_solver_solution():
    """Feed eq. 6 the fine-grid solver solution with finite-difference derivatives (central in z and t)."""
    g = Grid(1, 1, 40, 25.0, 25.0, 5.0)
    times = np.arange(1490.0, 1511.0, 10.0)
    sol = solve(Problem(g, SOIL, np.full(g.shape, -1.0), np.full((1, 1), 0.75 / 3600)), times,
                Stepping.tight(dt_max=2.0))
    psi = sol.psi[:, 0, 0, :]  # (3 times, nz)
    dz, dt = g.spacing[2], 10.0
    mid = psi[1, 1:-1]
    to = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    zeros = to(np.zeros_like(mid))
    d = {
        "psi": to(mid),
        "psi_t": to((psi[2, 1:-1] - psi[0, 1:-1]) / (2 * dt)),
        "psi_x": zeros, "psi_y": zeros, "psi_xx": zeros, "psi_yy": zeros,
        "psi_z": to((psi[1, 2:] - psi[1, :-2]) / (2 * dz)),
        "psi_zz": to((psi[1, 2:] - 2 * mid + psi[1, :-2]) / dz**2),
    }
    r = residual(d, SOIL).numpy()
    storage = capacity(mid, SOIL) * d["psi_t"].numpy()
    assert np.linalg.norm(r) < 0.01 * np.linalg.norm(storage)
    # and a wrong field (psi shifted in time) is not a solution
    d["psi_t"] = 2 * d["psi_t"]
    assert np.linalg.norm(residual(d, SOIL).numpy()) > 0.5 * np.linalg.norm(storage)


def test_both_derivative_modes_give_the_same_loss():
    from phys_ml.stages.rre.train import TrainData, losses

    net, x = small_net(), points(200)
    obs = -30.0 + torch.zeros(50, dtype=torch.float64)
    values = []
    for mode in ("taylor", "autograd"):
        data = TrainData(x[:50], obs, x[50:], SOIL, 3250.0, 28.0, mode)
        values.append(torch.stack(losses(net, data, data.sensors, data.psi_obs, data.colloc, 1.0)).detach())
    torch.testing.assert_close(values[0], values[1], rtol=1e-10, atol=0.0)


@pytest.mark.parametrize("learned_soil", [False, True])
def test_compiled_loss_matches_eager(learned_soil):
    """torch.compile (rre.train.compile) changes how the loss is computed, not what it is: with the boundary
    fluxes and the initial condition, for a known and for a learned soil."""
    from phys_ml.stages.rre.train import Boundary, Initial, SoilParams, TrainData, _compiled_losses, losses

    net, x = small_net(), points(260)
    obs = -30.0 + torch.linspace(0, 5, 50, dtype=torch.float64)
    bnd = Boundary(x[200:230], torch.arange(30) % 3, torch.full((30,), 1e-4, dtype=torch.float64), 5.0)
    t0 = x[230:].clone()
    t0[:, 3] = 0.0
    ini = Initial(t0, -1.0)
    data = TrainData(x[:50], obs, x[50:200], SOIL, 3250.0, 28.0, "taylor", compile=True, boundary=bnd, initial=ini)
    soil = SoilParams(VanGenuchten(alpha=0.05, n=1.6, k_s=0.005)).double() if learned_soil else None
    params = list(net.parameters()) + ([] if soil is None else list(soil.parameters()))
    results = []
    for fn in (losses, _compiled_losses()):
        terms = fn(net, data, data.sensors, data.psi_obs, data.colloc, 0.5, bnd, None if soil is None
                   else soil.soil(), ini)
        grads = torch.autograd.grad(terms[0], params)
        results.append((torch.stack(terms).detach(), grads))
    (eager, g_eager), (comp, g_comp) = results
    torch.testing.assert_close(comp, eager, rtol=1e-10, atol=0.0)
    for a, b in zip(g_comp, g_eager):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12 * float(b.abs().max()))
