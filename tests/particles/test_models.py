"""Model shapes, permutation equivariance of the graph network, baselines on exact data."""

import numpy as np
import pytest
import torch

from phys_ml.stages.particles.baselines import (
    least_squares_charges,
    linear_extrapolation,
    physics_rollout,
)
from phys_ml.stages.particles.datasets import Task3Spec, make_task3
from phys_ml.stages.particles.metrics import masked_mse, r2, rmse
from phys_ml.stages.particles.models import MLP, ChargeLSTM, Continuation, InteractionGNN
from phys_ml.stages.particles.simulator import Physics


def task2_batch(b=7, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, n, 2, generator=g), torch.randn(b, n, 2, generator=g),
            torch.where(torch.rand(b, n, generator=g) < 0.5, -1.0, 1.0))


def test_mlp_shape_matches_the_paper():
    torch.manual_seed(0)
    model = MLP(5)
    sizes = [m.out_features for m in model.net if isinstance(m, torch.nn.Linear)]
    assert sizes == [64, 128, 256, 10] and model.net[0].in_features == 25
    assert model(*task2_batch()).shape == (7, 5, 2)


def test_gnn_is_permutation_equivariant_and_translation_invariant():
    torch.manual_seed(0)
    model = InteractionGNN((0.5, 1.0, 1.5), hidden=16, layers=2)
    pos, vel, q = task2_batch()
    out = model(pos, vel, q)
    assert out.shape == (7, 3, 5, 2)
    perm = torch.tensor([4, 2, 0, 1, 3])
    out_p = model(pos[:, perm], vel[:, perm], q[:, perm])
    assert torch.allclose(out[:, :, perm], out_p, atol=1e-5)
    shift = torch.tensor([3.0, -2.0])
    assert torch.allclose(model(pos + shift, vel, q), out + shift, atol=1e-4)


def test_gnn_at_zero_time_returns_the_start():
    model = InteractionGNN((0.0,), hidden=8, layers=1)
    pos, vel, q = task2_batch()
    assert torch.allclose(model(pos, vel, q)[:, 0], pos)


def test_sequence_models_shapes_and_padding():
    torch.manual_seed(0)
    x = torch.randn(4, 12, 2)
    lengths = torch.tensor([12, 9, 5, 7])
    lstm = ChargeLSTM(2, hidden=8, fc=8)
    assert lstm(x, lengths).shape == (4, 3)
    # values beyond a row's length do not matter
    x2 = x.clone()
    x2[1, 9:] = 100.0
    assert torch.allclose(lstm(x, lengths), lstm(x2, lengths), atol=1e-6)
    for cell in ("gru", "lstm"):
        model = Continuation(cell, hidden=8, layers=2, fc=8)
        assert model(x, lengths, 6).shape == (4, 6, 2)


def test_residual_continuation_starts_at_linear_extrapolation():
    torch.manual_seed(0)
    x = torch.cumsum(torch.randn(3, 10, 2), 1).double()
    lengths = torch.tensor([10, 8, 6])
    model = Continuation("gru", hidden=8, layers=1, fc=8, residual=True).double()
    got = model(x, lengths, 5).detach().numpy()
    want = linear_extrapolation(x.numpy(), lengths.numpy(), 5)
    assert np.allclose(got, want, atol=1e-10)


def test_least_squares_recovers_charges_and_physics_rollout_beats_linear():
    physics = Physics(coupling=1.0, softening=0.1, dt=1e-3)
    spec = Task3Spec(start_distance=3.0, speed_min=0.3, speed_max=0.6, prefix_min=60, prefix_max=70, cont_min=10,
                     cont_max=20)
    d = make_task3(24, spec, physics, torch.Generator().manual_seed(1))
    traj, lengths, cont_lengths = d["traj"], d["lengths"], d["cont_lengths"]
    given = traj * (np.arange(traj.shape[1])[None, :, None] < lengths[:, None, None])
    q = least_squares_charges(given, lengths, 0.1, physics, (-1.0, 0.0))
    assert np.mean((q - d["charges"]) ** 2) < 0.01 * (1 / 12)
    horizon = int(cont_lengths.max())
    target = np.stack([np.pad(r[n:n + horizon], ((0, max(0, n + horizon - len(r))), (0, 0)))[:horizon]
                       for r, n in zip(traj, lengths)])
    mask = np.arange(horizon)[None] < cont_lengths[:, None]
    lin = masked_mse(linear_extrapolation(given, lengths, horizon), target, mask)
    phys = masked_mse(physics_rollout(given, lengths, horizon, 0.1, physics, (-1.0, 0.0))[0], target, mask)
    assert phys < 0.05 * lin


def test_metrics():
    y = np.random.default_rng(0).normal(size=(50, 4))
    assert r2(y, y) == 1.0 and rmse(y, y) == 0.0
    assert abs(r2(np.broadcast_to(y.mean(0), y.shape), y)) < 1e-12
    assert np.isclose(rmse(y + 0.5, y), 0.5)


@pytest.mark.gpu
def test_training_runs_on_cuda():
    from phys_ml.stages.particles.fitting import SeqData, Task2Data, train_continuation, train_gnn

    dev = torch.device("cuda")
    pos, vel, q = (t.to(dev) for t in task2_batch(b=16))
    data = Task2Data(pos, vel, q, torch.stack([pos, pos, pos], 1))
    run = train_gnn(data, data, (0.5, 1.0, 1.5), hidden=8, layers=1, softening=0.05,
                    optimizer={"name": "adam", "lr": 1e-3}, epochs=1, batch_size=8, seed=0)
    assert next(run.model.parameters()).is_cuda
    traj = torch.cumsum(torch.randn(6, 12, 2), 1).to(dev)
    lengths = torch.tensor([12, 10, 9, 12, 11, 8], device=dev)
    seq = SeqData(traj, lengths, torch.zeros(6, 3, device=dev), traj[:, :5], torch.full_like(lengths, 5))
    run = train_continuation(seq, seq, cell="gru", residual=True, hidden=8, layers=1, fc=8, sample_dt=0.1,
                             optimizer={"name": "sgd", "lr": 0.01}, epochs=1, batch_size=4, seed=0)
    assert len(run.history["val_loss"]) == 1


def test_sequence_training_clips_in_the_shared_loop(monkeypatch):
    """grad_clip reaches the shared loop (phys_ml.stages.common.training.fit), which does the clamping."""
    from phys_ml.stages.particles import fitting

    seen = []
    real = fitting.fit
    monkeypatch.setattr(fitting, "fit", lambda *a, **kw: seen.append(kw.get("grad_clip")) or real(*a, **kw))
    traj = torch.cumsum(torch.randn(6, 12, 2), 1)
    lengths = torch.tensor([12, 10, 9, 12, 11, 8])
    seq = fitting.SeqData(traj, lengths, torch.zeros(6, 3), traj[:, :5], torch.full_like(lengths, 5))
    fitting.train_continuation(seq, seq, cell="gru", residual=False, hidden=4, layers=1, fc=4, sample_dt=0.1,
                               optimizer={"name": "sgd", "lr": 0.01}, epochs=1, batch_size=4, seed=0, grad_clip=0.5)
    fitting.train_charge_lstm(seq, seq, hidden=4, fc=4, with_velocity=False, sample_dt=0.1,
                              optimizer={"name": "sgd", "lr": 0.01}, epochs=1, batch_size=4, seed=0)
    assert seen == [0.5, None]
