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
