"""A full-batch L-BFGS step that leaves the weights where they were repeats itself exactly, so the training loop
stops the run after train.LBFGS_STALL such steps in a row: the network it returns is the one the whole budget
would have returned, at a fraction of the loss evaluations."""

import numpy as np
import torch

from phys_ml.stages.rre import train as train_module
from phys_ml.stages.rre.model import PsiNet
from phys_ml.stages.rre.soil import VanGenuchten
from phys_ml.stages.rre.train import TrainData, train

LBFGS = {"name": "lbfgs", "max_iter": 1, "max_eval": 20, "history_size": 20}


def fitted(iterations: int):
    """A tiny network fitted by L-BFGS to 40 readings of a smooth field (data only, so it converges fast)."""
    rng = np.random.default_rng(0)
    xyzt = rng.uniform(size=(40, 4)) * [2.0, 2.0, 5.0, 100.0]
    psi = -5.0 - xyzt[:, 2] + 0.01 * xyzt[:, 3]
    f32 = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    data = TrainData(f32(xyzt), f32(psi), f32(xyzt[:5]), VanGenuchten(), 100.0, 3.0)
    torch.manual_seed(0)
    net = PsiNet(6, 1, [0, 0, 0, 0], [2.0, 2.0, 5.0, 100.0], -7.0, 3.0)
    res = train(net, data, LBFGS, iterations=iterations, batch="full", batch_size=40, weight=0.0, log_every=50,
                generator=torch.Generator().manual_seed(0))
    return net, res


def test_a_stalled_lbfgs_run_stops_early_with_the_weights_the_full_budget_gives(monkeypatch):
    net, res = fitted(3000)
    assert res.stalled and res.iterations < 3000
    assert res.line_search["moved"] == res.iterations - train_module.LBFGS_STALL
    assert res.logged_at[-1] == res.iterations  # the final loss is logged where it stopped
    monkeypatch.setattr(train_module, "LBFGS_STALL", 10**9)  # never stop: the whole budget
    full, full_res = fitted(3000)
    assert not full_res.stalled and full_res.iterations == 3000
    assert full_res.line_search["moved"] == res.line_search["moved"]  # nothing moved after the stop
    for a, b in zip(net.state_dict().values(), full.state_dict().values()):
        assert torch.equal(a, b)
