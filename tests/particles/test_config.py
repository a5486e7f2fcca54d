"""Validation of the particles params: bad values fail before any work, naming the key."""

import copy

import pytest

from phys_ml.stages.common.errors import UserError
from phys_ml.stages.particles import config


def with_change(params, dotted, value):
    p = copy.deepcopy(params)
    node = p
    *path, last = dotted.split(".")
    for key in path:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return p


def test_committed_and_profile_params_are_valid(smoke_params, project_root):
    from phys_ml.stages.common.params import deep_merge, load_params, load_yaml

    config.check_all(smoke_params)
    base = load_params(project_root / "params.yaml")
    config.check_all(base)
    config.check_all(deep_merge(base, load_yaml(project_root / "profiles" / "paper.yaml")))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("particles.train.task2.mlp.epochs", 0, "particles.train.task2.mlp.epochs must be >= 1, got 0"),
        ("particles.train.task2.mlp.batch_size", "8", "particles.train.task2.mlp.batch_size"),
        ("particles.train.task2.mlp.colour", 1, "particles.train.task2.mlp.colour is not a known key"),
        ("particles.train.task2.train_sizes", [100, 1], "particles.train.task2.train_sizes.1 must be >= 2, got 1"),
        ("particles.train.task2.studies.learning_rates", [0.1, -1.0], "learning_rates.1 must be > 0"),
        ("particles.train.task2.gnn.optimizer", {"name": "adamw"}, "particles.train.task2.gnn.optimizer"),
        ("particles.train.task2.mlp.optimizer", {"name": "adam", "lr": -1.0}, "lr must be > 0"),
        ("particles.train.task31.features", "speeds", "particles.train.task31.features must be one of"),
        ("particles.train.task32.models", ["gru", "transformer"], "particles.train.task32.models.1"),
        ("particles.train.task2.device", "tpu", "particles.train.task2.device must be one of"),
        ("particles.train.task31.seed", KeyError, "particles.train.task31.seed is required"),
        ("particles.evaluate.ls_min_distance", -1.0, "particles.evaluate.ls_min_distance must be >= 0"),
    ],
)
def test_bad_train_params_name_the_key(smoke_params, key, value, message):
    with pytest.raises(UserError, match=None) as info:
        config.check_all(with_change(smoke_params, key, value))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("particles.generate.task2.n_train", 1, "particles.generate.task2.n_train must be >= 2, got 1"),
        ("particles.generate.task2.horizon_step", 0.0015,
         "particles.generate.task2.horizon_step must be a whole multiple of dt (0.001), got 0.0015"),
        ("particles.generate.task31.speed_min", 5.0,
         "particles.generate.task31.speed_min must be <= speed_max (0.6), got 5.0"),
        ("particles.generate.task32.cont_min", 0, "particles.generate.task32.cont_min must be >= 1"),
        ("particles.generate.task31.sample_dt", 0.00015, "particles.generate.task31.sample_dt must be a whole multiple"),
        ("particles.generate.task31.cont_min", 0, None),  # task 3.1 needs no continuation
        ("particles.generate.task31.softening", 0, "particles.generate.task31.softening must be > 0, got 0"),
    ],
)
def test_bad_generate_params_name_the_key(smoke_params, key, value, message):
    changed = with_change(smoke_params, key, value)
    if message is None:
        config.check_all(changed)
        return
    with pytest.raises(UserError) as info:
        config.check_all(changed)
    assert message in str(info.value)


def test_configs_carry_no_defaults():
    """params.yaml is the one source of every value: no field of a particles config has a default."""
    from pydantic import BaseModel

    models = [v for v in vars(config).values()
              if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == config.__name__]
    assert len(models) > 10
    for model in models:
        assert all(f.is_required() for f in model.model_fields.values()), model.__name__


def test_every_param_key_is_in_params_yaml(project_root):
    """Removing any key of the committed particles section is an error naming it (no hidden defaults)."""
    from phys_ml.stages.common.params import load_params

    base = load_params(project_root / "params.yaml")

    def leaves(node, prefix):
        for k, v in node.items():
            key = f"{prefix}.{k}"
            if isinstance(v, dict) and k != "optimizer" and k != "base_optimizer":
                yield from leaves(v, key)
            elif not isinstance(v, dict):
                yield key

    keys = list(leaves(base["particles"], "particles"))
    assert len(keys) > 50
    for key in keys:
        with pytest.raises(UserError, match="is required"):
            config.check_all(with_change(base, key, KeyError))


def test_optional_optimizer_is_used_only_when_registered(smoke_params):
    p = with_change(smoke_params, "particles.train.task31.compare.optional_optimizers",
                    [{"name": "adlala", "h": 0.1}, {"name": "not-registered-yet"}])
    chosen, skipped = config.train_config(p, "task31").compare.selected()
    from phys_ml.stages.common.optim import OPTIMIZERS

    names = [c.name for c in chosen]
    assert ("adlala" in names) == ("adlala" in OPTIMIZERS)
    assert skipped == ["not-registered-yet"] + ([] if "adlala" in OPTIMIZERS else ["adlala"])
