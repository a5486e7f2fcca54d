"""L-BFGS in the rre training loop. A full-batch L-BFGS step that leaves the weights where they were repeats itself
exactly, so the loop stops the run after train.LBFGS_STALL such steps in a row: the network it returns is the one
the whole budget would have returned, at a fraction of the loss evaluations. When the objective changes (the end of
the data-only warm-up) L-BFGS restarts from a fresh history, its counts going on."""

import numpy as np
import torch

from phys_ml.stages.rre import train as train_module
from phys_ml.stages.rre.model import PsiNet
from phys_ml.stages.rre.soil import VanGenuchten
from phys_ml.stages.common.optim import build_optimizer, line_search_counts
from phys_ml.stages.rre.train import TrainData, restart_lbfgs, train

LBFGS = {"name": "lbfgs", "max_iter": 1, "max_eval": 20, "history_size": 20}


def fitted(iterations: int, weight: float = 0.0, warmup: int = 0):
    """A tiny network fitted by L-BFGS to 40 readings of a smooth field (data only, so it converges fast)."""
    rng = np.random.default_rng(0)
    xyzt = rng.uniform(size=(40, 4)) * [2.0, 2.0, 5.0, 100.0]
    psi = -5.0 - xyzt[:, 2] + 0.01 * xyzt[:, 3]
    f32 = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    data = TrainData(f32(xyzt), f32(psi), f32(xyzt[:5]), VanGenuchten(), 100.0, 3.0)
    torch.manual_seed(0)
    net = PsiNet(6, 1, [0, 0, 0, 0], [2.0, 2.0, 5.0, 100.0], -7.0, 3.0)
    res = train(net, data, LBFGS, iterations=iterations, batch="full", batch_size=40, weight=weight, log_every=50,
                generator=torch.Generator().manual_seed(0), warmup=warmup)
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


def test_a_stall_in_the_data_only_warm_up_does_not_end_a_physics_run():
    _, warm = fitted(3000)  # the data alone: L-BFGS stalls after a few hundred iterations
    net, res = fitted(3000, weight=0.1, warmup=warm.iterations + 100)
    assert res.iterations > warm.iterations + 100 and not res.diverged  # the physics phase ran
    assert res.line_search["moved"] > warm.line_search["moved"]  # and L-BFGS moved again in it
    assert res.line_search["iterations"] == res.iterations  # one L-BFGS iteration per step, counted across the restart


def test_a_restart_forgets_the_curvature_pairs_and_keeps_the_counts():
    net = torch.nn.Linear(3, 1)
    x, y = torch.randn(50, 3, generator=torch.Generator().manual_seed(1)), torch.randn(50, 1)
    opt = build_optimizer(net, LBFGS)

    def closure():
        opt.zero_grad()
        loss = (net(x) - y).pow(2).mean()
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    before, carried = line_search_counts(opt), {"iterations": 0, "evaluations": 0}
    restart_lbfgs(opt, carried)
    assert carried == {"iterations": before["iterations"], "evaluations": before["evaluations"]}
    assert opt.state[opt._params[0]] == {}  # no pairs, no last step: the next step is steepest descent
    opt.step(closure)
    assert line_search_counts(opt)["iterations"] == 1
