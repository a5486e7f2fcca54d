"""Physics of the batched simulator: conservation laws, symmetry, a closed-form orbit, convergence."""

import math

import pytest
import torch

from phys_ml.stages.particles.datasets import Task3Spec, make_task3
from phys_ml.stages.particles.simulator import (
    Physics,
    accelerations,
    simulate,
    steps_per_sample,
    total_energy,
    total_momentum,
)

F64 = torch.float64


def random_system(n_sims=64, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = 2.0 * torch.randn(n_sims, n, 2, generator=g, dtype=F64)
    vel = torch.randn(n_sims, n, 2, generator=g, dtype=F64)
    q = torch.where(torch.rand(n_sims, n, generator=g, dtype=F64) < 0.5, -1.0, 1.0).to(F64)
    return pos, vel, q


def test_energy_and_momentum_conserved():
    physics = Physics(coupling=1.0, softening=0.1, dt=1e-3)
    pos, vel, q = random_system()
    p_t, v_t = simulate(pos, vel, q, physics, 0.5, 4)
    e0 = total_energy(p_t[:, 0], v_t[:, 0], q, physics)
    e1 = total_energy(p_t[:, -1], v_t[:, -1], q, physics)
    scale = 0.5 * (vel * vel).sum((1, 2)) + 1.0
    assert ((e1 - e0).abs() / scale).max() < 1e-4
    # pairwise forces are equal and opposite: total momentum is exact up to round-off
    assert torch.allclose(total_momentum(v_t[:, -1]), total_momentum(vel), atol=1e-10)


def test_energy_error_is_second_order_in_dt():
    pos, vel, q = random_system(n_sims=16, seed=1)
    errs = []
    for dt in (4e-3, 2e-3):
        physics = Physics(coupling=1.0, softening=0.3, dt=dt)
        p_t, v_t = simulate(pos, vel, q, physics, 0.2, 6)
        e = total_energy(p_t.flatten(0, 1), v_t.flatten(0, 1), q.repeat_interleave(6, 0), physics).view(16, 6)
        errs.append((e - e[:, :1]).abs().max().item())
    assert 2.5 < errs[0] / errs[1] < 6.0  # ~4 for a second-order method


def test_relabelling_particles_permutes_the_trajectories():
    physics = Physics()
    pos, vel, q = random_system(n_sims=8)
    perm = torch.tensor([3, 0, 4, 1, 2])
    a, _ = simulate(pos, vel, q, physics, 0.25, 3)
    b, _ = simulate(pos[:, perm], vel[:, perm], q[:, perm], physics, 0.25, 3)
    assert torch.allclose(a[:, :, perm], b, atol=1e-12)


def test_two_body_circular_orbit_matches_closed_form():
    # opposite unit charges at separation d: circular orbit of the relative coordinate with omega^2 = 2k / d^3
    k, d = 1.0, 1.0
    physics = Physics(coupling=k, softening=1e-9, dt=1e-3)
    omega = math.sqrt(2 * k / d**3)
    speed = omega * d / 2
    pos = torch.tensor([[[-d / 2, 0.0], [d / 2, 0.0]]], dtype=F64)
    vel = torch.tensor([[[0.0, -speed], [0.0, speed]]], dtype=F64)
    q = torch.tensor([[1.0, -1.0]], dtype=F64)
    t_end = 2.0
    p_t, _ = simulate(pos, vel, q, physics, t_end, 2)
    angle = omega * t_end
    expected = torch.tensor([[-math.cos(angle), -math.sin(angle)], [math.cos(angle), math.sin(angle)]], dtype=F64)
    assert torch.allclose(p_t[0, -1], expected * d / 2, atol=1e-5)


def test_eccentric_two_body_converges_to_a_much_finer_step():
    pos = torch.tensor([[[0.0, 0.0], [1.5, 0.0]]], dtype=F64)
    vel = torch.tensor([[[0.0, -0.2], [0.0, 0.2]]], dtype=F64)
    q = torch.tensor([[1.0, -1.0]], dtype=F64)
    coarse, _ = simulate(pos, vel, q, Physics(softening=0.05, dt=2e-3), 0.5, 4)
    medium, _ = simulate(pos, vel, q, Physics(softening=0.05, dt=1e-3), 0.5, 4)
    fine, _ = simulate(pos, vel, q, Physics(softening=0.05, dt=2.5e-4), 0.5, 4)
    e_coarse = (coarse - fine).abs().max().item()
    e_medium = (medium - fine).abs().max().item()
    assert e_medium < 1e-3
    assert e_medium < e_coarse / 3  # second-order convergence


def test_like_charges_repel_and_fixed_particles_stay_put():
    physics = Physics()
    pos = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]], dtype=F64)
    acc = accelerations(pos, torch.tensor([[1.0, 1.0]], dtype=F64), physics)
    assert acc[0, 0, 0] < 0 < acc[0, 1, 0]
    fixed = torch.tensor([[False, True]])
    p_t, v_t = simulate(pos, torch.zeros_like(pos), torch.tensor([[1.0, -1.0]], dtype=F64), physics, 0.1, 3, fixed)
    assert torch.equal(p_t[0, :, 1], pos[0, 1].expand(3, 2))
    assert p_t[0, -1, 0, 0] > 0  # pulled towards the fixed opposite charge


def test_sample_interval_must_be_a_multiple_of_the_step():
    assert steps_per_sample(0.5, 1e-3) == 500
    with pytest.raises(ValueError):
        steps_per_sample(0.0015, 1e-3)


def test_task3_moving_charge_energy_and_lengths():
    spec = Task3Spec(start_distance=3.0, speed_min=0.3, speed_max=0.6, prefix_min=20, prefix_max=30, cont_min=5,
                     cont_max=10)
    physics = Physics(coupling=1.0, softening=0.1, dt=1e-3)
    d = make_task3(16, spec, physics, torch.Generator().manual_seed(0))
    assert d["traj"].shape == (16, int((d["lengths"] + d["cont_lengths"]).max()), 2)
    assert ((20 <= d["lengths"]) & (d["lengths"] <= 30)).all()
    assert ((-1 <= d["charges"]) & (d["charges"] <= 0)).all()
    # padding is zero beyond each row's length
    for row, n in zip(d["traj"], d["lengths"] + d["cont_lengths"]):
        assert (row[n:] == 0).all()
