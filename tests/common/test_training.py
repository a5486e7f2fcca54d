"""The shared training loop: element-wise gradient clipping and the divergence stop."""

import pytest
import torch
from torch.nn import functional as F

from phys_ml.stages.common.divergence import Diverged
from phys_ml.stages.common.training import fit

torch.set_num_threads(1)


def _data(n=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen) * 10
    y = x @ torch.tensor([[3.0], [-2.0], [5.0]]) + 100.0  # large targets: large gradients
    return x, y


def _loss(model, x, y):
    return F.mse_loss(model(x), y)


def _model(seed=1):
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 1)


class _Recorder(torch.optim.SGD):
    """SGD that records the largest gradient element it was handed at each step."""

    def __init__(self, params, **kw):
        super().__init__(params, **kw)
        self.seen: list[float] = []

    def step(self, closure=None):
        with torch.enable_grad():
            loss = closure()
        self.seen.append(max(float(p.grad.abs().max()) for g in self.param_groups for p in g["params"]))
        super().step()
        return loss


def _fit_recording(monkeypatch, grad_clip):
    import phys_ml.stages.common.training as training

    made = []

    def build(model, choice):
        opt = _Recorder(model.parameters(), lr=1e-4)
        made.append(opt)
        return opt

    monkeypatch.setattr(training, "build_optimizer", build)
    fit(_model(), _loss, _data(), optimizer={"name": "sgd", "lr": 1e-4}, epochs=3, batch_size=8, seed=0,
        grad_clip=grad_clip, description="clip test")
    return made[0].seen


def test_clipping_bounds_the_gradient_the_optimizer_sees(monkeypatch):
    unclipped = _fit_recording(monkeypatch, None)
    assert max(unclipped) > 10  # the data make large gradients, so the bound below is not trivial
    clipped = _fit_recording(monkeypatch, 0.5)
    assert len(clipped) == len(unclipped) == 3 * 4
    assert max(clipped) <= 0.5


def test_clipping_gives_the_same_numbers_as_clamping_hooks():
    """The particles task clamped gradients with tensor hooks before the loop had the option: same histories."""
    x, y = _data()
    spec = {"name": "sgd", "lr": 1e-3, "momentum": 0.9}
    a = _model()
    hist_a = fit(a, _loss, (x, y), optimizer=spec, epochs=4, batch_size=8, seed=3, val=(x, y), grad_clip=0.7)
    b = _model()
    for p in b.parameters():
        p.register_hook(lambda g: g.clamp(-0.7, 0.7))
    hist_b = fit(b, _loss, (x, y), optimizer=spec, epochs=4, batch_size=8, seed=3, val=(x, y))
    assert hist_a == hist_b
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_bad_grad_clip_is_refused():
    with pytest.raises(ValueError, match="grad_clip must be > 0"):
        fit(_model(), _loss, _data(), optimizer={"name": "sgd", "lr": 1e-3}, epochs=1, batch_size=8, seed=0,
            grad_clip=0.0)


def test_a_forced_divergence_raises_diverged_naming_the_run():
    with pytest.raises(Diverged, match="^my run diverged: ") as info:
        fit(_model(), _loss, _data(), optimizer={"name": "sgd", "lr": 1e6}, epochs=5, batch_size=8, seed=0,
            description="my run")
    assert info.value.exit_code == 1
