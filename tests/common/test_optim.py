import pytest
import torch

from phys_ml.stages.common.config import Config, parse_config
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.common.optim import OPTIMIZERS, OptimizerSpec, build_optimizer, parse_optimizer
from phys_ml.stages.common.training import fit


@pytest.mark.parametrize("spec, cls", [
    ({"name": "gd", "lr": 0.1}, torch.optim.SGD),
    ({"name": "sgd", "lr": 0.1, "momentum": 0.9}, torch.optim.SGD),
    ({"name": "rmsprop", "lr": 0.01}, torch.optim.RMSprop),
    ({"name": "adam", "lr": 0.01, "betas": [0.8, 0.9], "weight_decay": 3e-5}, torch.optim.Adam),
    ({"name": "adagrad", "lr": 0.1}, torch.optim.Adagrad),
])
def test_registry_builds_configured_optimizers(spec, cls):
    opt = build_optimizer(torch.nn.Linear(2, 1), spec)
    assert isinstance(opt, cls)
    group = opt.param_groups[0]
    assert group["lr"] == spec["lr"]
    if "momentum" in spec:
        assert group["momentum"] == spec["momentum"]
    if "betas" in spec:
        assert group["betas"] == tuple(spec["betas"])


def test_gd_is_full_batch_and_others_are_not():
    assert OPTIMIZERS["gd"].full_batch
    assert not OPTIMIZERS["adam"].full_batch


@pytest.mark.parametrize("spec, message", [
    ({"name": "adamx"}, "train.optimizer.name must be one of"),
    ({"name": "adam", "lr": 0}, "train.optimizer.lr must be > 0, got 0"),
    ({"name": "sgd", "beta": 0.9}, "train.optimizer.beta is not a known key"),
    ({"lr": 0.1}, "train.optimizer: must be a mapping with a 'name' key"),
])
def test_bad_specs_name_the_key(spec, message):
    with pytest.raises(UserError) as info:
        parse_optimizer(spec, "train.optimizer")
    assert str(info.value).startswith(message)


class WithOptimizer(Config):
    optimizer: OptimizerSpec = {"name": "adam"}


def test_optimizer_field_is_validated_with_its_section():
    cfg = parse_config(WithOptimizer, {"t": {"optimizer": {"name": "sgd", "lr": 0.5}}}, "t")
    assert cfg.optimizer.name == "sgd" and cfg.optimizer.hyper.lr == 0.5
    with pytest.raises(UserError, match="t.optimizer"):
        parse_config(WithOptimizer, {"t": {"optimizer": {"name": "sgd", "lr": -1}}}, "t")


@pytest.mark.parametrize("spec", [{"name": "gd", "lr": 0.1}, {"name": "adam", "lr": 0.05},
                                  {"name": "sgd", "lr": 0.05, "momentum": 0.9}])
def test_fit_reduces_a_least_squares_loss(spec):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 3, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)

    def loss_fn(m, xb, yb):
        return torch.mean((m(xb) - yb) ** 2)

    history = fit(model, loss_fn, (x, y), optimizer=spec, epochs=30, batch_size=32, seed=0, val=(x, y))
    assert history["train_loss"][-1] < 0.05 * history["train_loss"][0]
    assert history["val_loss"][-1] < 0.01


class Rosenbrock(torch.nn.Module):
    """Least squares r = (1 - a, 10 (b - a^2)): minimum 0 at (1, 1), a curved valley that takes L-BFGS dozens
    of iterations from (-1.2, 1)."""

    def __init__(self):
        super().__init__()
        self.ab = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))

    def residuals(self):
        a, b = self.ab
        return torch.stack([1 - a, 10 * (b - a * a)])


def rosenbrock_loss(model, _batch):
    return model.residuals().pow(2).sum()


class WithSchedule(Config):
    optimizer: OptimizerSpec


@pytest.mark.parametrize("spec", [
    {"name": "lbfgs", "max_iter": 1, "max_eval": 20},
    {"name": "lbfgs"},  # torch's defaults: 20 iterations per step
    {"name": "adam_lbfgs", "lr": 0.01, "adam_steps": 5, "lbfgs": {"max_iter": 1, "max_eval": 20}},
])
def test_lbfgs_and_adam_then_lbfgs_from_params_reach_the_least_squares_minimum(spec):
    from phys_ml.stages.common.optim import line_search_counts

    choice = parse_config(WithSchedule, {"s": {"optimizer": spec}}, "s").optimizer
    assert choice.full_batch and choice.entry.needs_full_batch
    model = Rosenbrock()
    opt = build_optimizer(model, choice)
    one = "lbfgs" in choice.kwargs() or choice.kwargs()["max_iter"] == 1  # one L-BFGS iteration per step call
    steps = 200 if one else 10
    for _ in range(steps):
        def closure():
            opt.zero_grad(set_to_none=True)
            loss = rosenbrock_loss(model, None)
            loss.backward()
            return loss
        opt.step(closure)
    counts = line_search_counts(opt)
    assert counts["iterations"] > 10 and counts["evaluations"] > counts["iterations"] >= counts["moved"]
    assert counts["moved"] > (10 if one else 2)
    torch.testing.assert_close(model.ab.detach(), torch.ones(2, dtype=torch.float64), atol=1e-7, rtol=0)


def test_torch_default_tolerances_stop_lbfgs_short_and_the_counts_show_it():
    """torch's tolerance_change 1e-9 ends every step without a move once g.d > -1e-9 (here near a loss of 1e-9):
    its iteration count keeps growing, the moves do not."""
    from phys_ml.stages.common.optim import line_search_counts

    model = Rosenbrock()
    opt = build_optimizer(model, {"name": "lbfgs", "max_iter": 1, "max_eval": 20, "tolerance_grad": 1e-7,
                                  "tolerance_change": 1e-9})
    for _ in range(200):
        opt.step(lambda: (opt.zero_grad(), rosenbrock_loss(model, None).backward())
                 and rosenbrock_loss(model, None))
    counts = line_search_counts(opt)
    assert counts["iterations"] == 200 and counts["moved"] < 100
    assert float((model.ab.detach() - 1).abs().max()) > 1e-6


def test_lbfgs_through_the_shared_fit_loop():
    torch.manual_seed(0)
    model = Rosenbrock()
    history = fit(model, rosenbrock_loss, (torch.zeros(8, 1),),
                  optimizer={"name": "lbfgs", "max_iter": 1, "max_eval": 20},
                  epochs=100, batch_size=2, seed=0)
    assert history["train_loss"][-1] < 1e-12 < history["train_loss"][0]


def test_line_search_counts_are_none_without_lbfgs():
    from phys_ml.stages.common.optim import line_search_counts

    assert line_search_counts(build_optimizer(torch.nn.Linear(2, 1), {"name": "adam"})) is None


@pytest.mark.parametrize("spec, message", [
    ({"name": "lbfgs", "line_search": "none"}, "s.optimizer.line_search"),
    ({"name": "adam_lbfgs", "lbfgs": {"max_iter": 0}}, "s.optimizer.lbfgs.max_iter must be >= 1"),
    # torch's default max_eval (max_iter * 5 // 4 = 1) would leave the line search no evaluation: L-BFGS would
    # count iterations without ever moving
    ({"name": "lbfgs", "max_iter": 1}, "s.optimizer.max_eval must be > max_iter"),
])
def test_bad_lbfgs_specs_name_the_key(spec, message):
    with pytest.raises(UserError, match=message):
        parse_optimizer(spec, "s.optimizer")
