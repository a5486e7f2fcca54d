"""The two-spiral data, the batched ensemble network and its training (stages/thermo)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.optim import parse_optimizer
from phys_ml.stages.thermo.data import two_spirals
from phys_ml.stages.thermo.metrics import mean_sd, summarize
from phys_ml.stages.thermo.model import EnsembleMLP
from phys_ml.stages.thermo.train import make_optimizer, train_ensemble

torch.set_num_threads(1)


def test_spirals_geometry():
    x, y = two_spirals(400, 0.0, np.random.default_rng(0), turns=4)
    assert x.shape == (400, 2) and y.shape == (400,) and x.dtype == np.float32
    assert (y == 0).sum() == (y == 1).sum() == 200
    np.testing.assert_allclose(x[y == 1], -x[y == 0])  # class 1 is class 0 rotated by pi
    r = np.linalg.norm(x[y == 0], axis=1)
    assert r.max() <= 2.0 + 1e-6
    # on the arm the angle is 8 pi sqrt(t) = 4 pi r (mod 2 pi)
    angle = np.arctan2(x[y == 0, 1], x[y == 0, 0])
    np.testing.assert_allclose(np.cos(angle - 4 * np.pi * r), 1.0, atol=1e-4)


def test_spirals_noise_and_determinism():
    a = two_spirals(1000, 0.02, np.random.default_rng(1))
    b = two_spirals(1000, 0.02, np.random.default_rng(1))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    with pytest.raises(UserError, match="even"):
        two_spirals(11, 0.02, np.random.default_rng(0))


def test_ensemble_members_equal_separate_networks():
    gens = [torch.Generator().manual_seed(s) for s in (3, 4, 5)]
    ens = EnsembleMLP(3, hidden=7)
    ens.reset(gens)
    alone = EnsembleMLP(1, hidden=7)
    alone.reset([torch.Generator().manual_seed(4)])
    torch.testing.assert_close(ens.layer1.weight[1], alone.layer1.weight[0])  # independent of ensemble size
    x = torch.randn(9, 2)
    logits = ens(x)
    for m in range(3):
        net = nn.Sequential(nn.Linear(2, 7), nn.ReLU(), nn.Linear(7, 1))
        with torch.no_grad():
            net[0].weight.copy_(ens.layer1.weight[m].T)
            net[0].bias.copy_(ens.layer1.bias[m, 0])
            net[2].weight.copy_(ens.layer2.weight[m].T)
            net[2].bias.copy_(ens.layer2.bias[m, 0])
        torch.testing.assert_close(logits[m], net(x).squeeze(-1))
    bound = 1 / np.sqrt(2)  # PyTorch's default init bound 1/sqrt(fan_in)
    assert ens.layer1.weight.abs().max() <= bound and ens.layer2.weight.abs().max() <= 1 / np.sqrt(7)


@pytest.mark.parametrize("name", ["adam", "adlala", "lol", "lala"])
def test_ensemble_gradients_are_per_member(name):
    """One step on the summed loss moves each member as its own optimizer would (noise-free settings)."""
    spec = {"adam": {"name": "adam", "lr": 0.01}, "adlala": {"name": "adlala", "tau1": 0, "tau2": 0, "sigma_A": 0},
            "lol": {"name": "lol", "tau1": 0, "tau2": 0}, "lala": {"name": "lala", "tau1": 0, "tau2": 0}}[name]
    x, y = torch.randn(3, 10, 2), (torch.rand(3, 10) > 0.5).float()

    def run(members):
        model = EnsembleMLP(len(members), hidden=5)
        model.reset([torch.Generator().manual_seed(s) for s in members])
        opt = make_optimizer(model, parse_optimizer(spec), torch.Generator())
        idx = list(members)

        def closure():
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(model(x[idx]), y[idx], reduction="none").mean(1).sum()
            loss.backward()
            return loss

        for _ in range(5):
            opt.step(closure)
        return model.layer1.weight.detach()

    together = run([0, 1, 2])
    for m in range(3):
        torch.testing.assert_close(together[m], run([m])[0], rtol=1e-5, atol=1e-6)


def small_data(n_train=100, n_test=200, seed=0):
    rng = np.random.default_rng(seed)
    xtr, ytr = two_spirals(n_train, 0.02, rng, turns=1)
    xte, yte = two_spirals(n_test, 0.02, rng, turns=1)
    return {k: torch.from_numpy(v) for k, v in
            {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}.items()}


@pytest.mark.parametrize("name", ["adam", "sgd", "adlala", "lol", "lala"])
def test_training_learns_an_easy_spiral(name):
    """One-turn spirals are easy: every optimizer gets 3 in 4 test points right within 60 epochs (LOL is the
    slowest: its output layer moves by overdamped steps of h^2 / 2 only)."""
    spec = {"name": name, "lr": 0.01 if name == "adam" else 0.5} if name in ("adam", "sgd") else {"name": name}
    _, curves = train_ensemble(small_data(), parse_optimizer(spec), [0, 1], epochs=60, batch_size=25, hidden=50,
                               eval_every=20, noise_seed=3)
    assert list(curves.epochs) == [0, 20, 40, 60]
    assert curves.test_acc.shape == (4, 2)
    assert (curves.train_loss[-1] < curves.train_loss[0]).all()
    assert (curves.test_acc[-1] > 0.75).all()
    thermodynamic = name not in ("adam", "sgd")
    late = slice(1, None)  # no momenta before the first step
    assert np.isfinite(curves.kin_first[late]).all() == thermodynamic
    assert np.isfinite(curves.kin_rest[late]).all() == thermodynamic
    assert np.isfinite(curves.xi_first[late]).all() == (name == "adlala")


def test_training_is_deterministic_and_summary():
    data, choice = small_data(), parse_optimizer({"name": "adlala"})
    runs = [train_ensemble(data, choice, [5, 6, 7], epochs=4, batch_size=25, hidden=20, eval_every=2,
                           noise_seed=1)[1] for _ in range(2)]
    assert np.array_equal(runs[0].test_loss, runs[1].test_loss)
    c = runs[0]
    table = summarize({"adlala": {"epochs": c.epochs, "test_acc": c.test_acc, "test_loss": c.test_loss,
                                  "train_acc": c.train_acc}}, [2, 3])
    block = table["adlala"]
    assert "test_acc_e2" in block and "test_acc_e3" not in block and "test_acc_e4" in block  # e3 never recorded
    assert block["test_acc_e4"] == pytest.approx(c.test_acc[-1].mean(), abs=1e-6)
    assert block["test_acc_e4_sd"] == pytest.approx(c.test_acc[-1].std(ddof=1), abs=1e-6)
    assert block["diverged"] == 0
    assert mean_sd(np.array([0.5, np.nan, 0.7])) == (0.6, pytest.approx(0.141421, abs=1e-6))
    assert mean_sd(np.array([np.nan])) == (None, None)
