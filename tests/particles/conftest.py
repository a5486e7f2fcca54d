"""A smoke-profile run of the whole particles pipeline, shared by the tests that read its outputs."""

from pathlib import Path

import pytest

from phys_ml.stages.common.context import StageContext
from phys_ml.stages.particles import pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """StageContext of a finished generate / train / evaluate of every sub-task (about 15 s on one core)."""
    import torch

    from phys_ml.stages.common.params import deep_merge, load_params, load_yaml
    torch.set_num_threads(1)
    params = deep_merge(load_params(ROOT / "params.yaml"), load_yaml(ROOT / "profiles" / "smoke.yaml"))
    ctx = StageContext(task="particles", params=params, data_dir=tmp_path_factory.mktemp("particles-smoke"))
    pipeline.generate(ctx, None)
    pipeline.train(ctx, None)
    pipeline.evaluate(ctx, None)
    return ctx
