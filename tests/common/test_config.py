from typing import Literal

import pytest
from pydantic import Field

from phys_ml.stages.common.config import Config, parse_config, section
from phys_ml.stages.common.errors import UserError


class Train(Config):
    seed: int = 0
    epochs: int = Field(10, ge=1)
    lr: float = Field(1e-3, gt=0)
    kind: Literal["mlp", "gnn"] = "mlp"


def params(**train):
    return {"task": {"train": train}}


def test_valid_section_parses_and_accepts_int_for_float():
    cfg = parse_config(Train, params(epochs=3, lr=1, kind="gnn"), "task.train")
    assert (cfg.epochs, cfg.lr, cfg.kind) == (3, 1.0, "gnn")


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"epochs": 0}, "task.train.epochs must be >= 1, got 0"),
        ({"lr": -1.0}, "task.train.lr must be > 0, got -1.0"),
        ({"epochz": 3}, "task.train.epochz is not a known key"),
        ({"epochs": "3"}, "task.train.epochs: input should be a valid integer, got '3'"),
        ({"epochs": 2.5}, "task.train.epochs: input should be a valid integer, got 2.5"),
        ({"kind": "cnn"}, "task.train.kind must be one of 'mlp' or 'gnn', got 'cnn'"),
    ],
)
def test_bad_values_name_the_key(bad, message):
    with pytest.raises(UserError) as info:
        parse_config(Train, params(**bad), "task.train")
    assert str(info.value) == message


def test_missing_section_is_named():
    with pytest.raises(UserError, match="no section 'task.evaluate'"):
        section(params(), "task.evaluate")


def test_configs_are_frozen():
    cfg = parse_config(Train, params(), "task.train")
    with pytest.raises(Exception):
        cfg.epochs = 5
