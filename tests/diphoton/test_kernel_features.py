"""The columns the MMD kernel compares (kernel_features.KernelFeatures): the flow's features unchanged by default,
physical pT and log m_gg appended when asked, computed as the evaluation computes them."""

import numpy as np
import pytest

from phys_ml.stages.diphoton import tfenv

tfenv.setup(0, 1)

from phys_ml.stages.diphoton.events import invariant_mass  # noqa: E402
from phys_ml.stages.diphoton.kernel_features import KernelFeatures  # noqa: E402
from phys_ml.stages.diphoton.pipeline import _standardize, scaler  # noqa: E402


def _events(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pt1 = 40.0 + rng.exponential(30.0, n)
    pt2 = 30.0 + rng.exponential(15.0, n)
    eta = rng.uniform(-2.3, 2.3, (n, 2))
    phi = rng.uniform(-np.pi, np.pi, (n, 2))
    return np.column_stack([pt1, eta[:, 0], phi[:, 0], pt2, eta[:, 1], phi[:, 1]])


@pytest.mark.parametrize("log_pt", [True, False])
def test_appended_columns_are_physical_pt_and_log_mass(log_pt):
    x = _events(4000, 1)
    sc = scaler(x[:2000], x[2000:], log_pt)
    z = _standardize(x, sc)
    feats = np.asarray(KernelFeatures(["pt", "log_m_gg"], sc, z)(z), np.float64)
    assert feats.shape == (4000, 9)
    np.testing.assert_allclose(feats[:, :6], z, rtol=0, atol=0)  # the flow's features come first, unchanged
    raw = np.column_stack([x[:, 0], x[:, 3], np.log(invariant_mass(*(x[:, i] for i in range(6))))])
    expected = (raw - raw.mean(0)) / raw.std(0)  # standardized on the reference (here: these events)
    np.testing.assert_allclose(feats[:, 6:], expected, atol=2e-3)


def test_no_extra_columns_is_the_papers_kernel_and_unknown_names_fail():
    x = _events(500, 2)
    sc = scaler(x, x, True)
    z = _standardize(x, sc)
    np.testing.assert_array_equal(np.asarray(KernelFeatures([], sc, z)(z)), z)
    with pytest.raises(ValueError, match="unknown kernel column"):
        KernelFeatures(["m_gg"], sc, z)


def test_gradients_flow_through_the_appended_columns():
    import tensorflow as tf

    x = _events(256, 3)
    sc = scaler(x, x, True)
    z = tf.Variable(_standardize(x, sc))
    kernel = KernelFeatures(["pt", "log_m_gg"], sc, z.numpy())
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(kernel(z)[:, 6:] ** 2)
    grad = tape.gradient(value, z).numpy()
    assert np.isfinite(grad).all()
    assert np.abs(grad[:, [0, 3]]).min() > 0  # the pT columns reach the flow's log pT
    assert np.abs(grad[:, [1, 4]]).max() > 0  # log m_gg reaches d eta


def test_mmd_trainer_sets_its_constraint_with_the_kernels_columns():
    """MDMM's epsilon is 1.015 x the data-vs-data MMD measured with the kernel the loss uses (9 columns here)."""
    from pathlib import Path

    from phys_ml.stages.common.params import load_params
    from phys_ml.stages.diphoton.config import TrainConfig
    from phys_ml.stages.diphoton.training import Trainer, build_flow

    committed = load_params(Path(__file__).resolve().parents[2] / "params.yaml")["diphoton"]["train"]
    cfg = TrainConfig(**dict(committed, losses=["mdmm"], epochs=1, n_blocks=1, hidden_units=[4], batch_size_mmd=128,
                             kde_grid=16, kde_data_events=500, max_steps_per_epoch=1, threads=1, val_events=200))
    x = _events(1200, 4)
    sc = scaler(x, x, True)
    z = _standardize(x, sc)
    levels = {}
    for extra in ([], ["pt", "log_m_gg"]):
        t = Trainer(build_flow(cfg), "mdmm", cfg, z[:1000], z[:1000], z[1000:], z[1000:],
                    kernel=KernelFeatures(extra, sc, z[:1000]))
        levels[len(extra)] = t.history.data_mmd
        assert t.history.epsilon == pytest.approx(1.015 * t.history.data_mmd)
    assert levels[0] > 0 and levels[2] > 0 and levels[0] != pytest.approx(levels[2], rel=1e-3)
