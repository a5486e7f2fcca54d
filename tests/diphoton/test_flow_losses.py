"""The TFP conditional MAF, the losses and MDMM (TensorFlow)."""

from pathlib import Path

import numpy as np
import pytest

from phys_ml.stages.diphoton import tfenv

tfenv.setup(0, 1)

import tensorflow as tf  # noqa: E402

from phys_ml.stages.common.params import load_params  # noqa: E402
from phys_ml.stages.diphoton import losses  # noqa: E402
from phys_ml.stages.diphoton.config import TrainConfig  # noqa: E402
from phys_ml.stages.diphoton.flow import ConditionalMAF  # noqa: E402
from phys_ml.stages.diphoton.training import (NonFinite, PlateauRule, Trainer, ValidationScore,  # noqa: E402
                                              build_flow)


@pytest.fixture(scope="module")
def deep_flow():
    tfenv.setup(1, 1)
    return ConditionalMAF(dim=6, n_blocks=10, hidden_units=(16, 16))


def test_gradients_reach_every_block_and_are_finite(deep_flow):
    rng = np.random.default_rng(0)
    c = tf.constant(rng.standard_normal((64, 6)) * 3, tf.float32)
    x = tf.constant(rng.standard_normal((64, 6)) * 3, tf.float32)
    z = tf.constant(rng.standard_normal((64, 6)), tf.float32)
    assert len(deep_flow.trainable_variables) == 10 * len(deep_flow.made[0].trainable_variables) > 0
    for objective in (lambda: -tf.reduce_mean(deep_flow.log_prob(x, c)),
                      lambda: tf.reduce_mean(deep_flow.transform(c, z) ** 2)):
        assert np.isfinite(objective().numpy())
    # one tape per block (a tape is consumed by gradient())
    for block, net in enumerate(deep_flow.made):
        with tf.GradientTape() as tape:
            value = -tf.reduce_mean(deep_flow.log_prob(x, c)) + tf.reduce_mean(deep_flow.transform(c, z) ** 2)
        grads = tape.gradient(value, net.trainable_variables)
        assert all(g is not None for g in grads), f"block {block} gets no gradient"
        assert all(np.all(np.isfinite(g.numpy())) for g in grads)
        assert sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0, f"block {block} has zero gradient"


def test_condition_changes_output(deep_flow):
    rng = np.random.default_rng(1)
    z = tf.constant(rng.standard_normal((8, 6)), tf.float32)
    c1 = tf.constant(rng.standard_normal((8, 6)), tf.float32)
    c2 = c1 + 1.0
    d1, d2 = deep_flow.delta(z, c1).numpy(), deep_flow.delta(z, c2).numpy()
    assert np.max(np.abs(d1 - d2)) > 1e-4
    lp1, lp2 = deep_flow.log_prob(z, c1).numpy(), deep_flow.log_prob(z, c2).numpy()
    assert np.max(np.abs(lp1 - lp2)) > 1e-5


def test_log_prob_change_of_variables():
    tfenv.setup(2, 1)
    flow = ConditionalMAF(dim=3, n_blocks=2, hidden_units=(8,), init_scale=1.0)
    rng = np.random.default_rng(2)
    z = tf.constant(rng.standard_normal((5, 3)), tf.float32)
    c = tf.constant(rng.standard_normal((5, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z)
        x = flow.delta(z, c)
    jac = tape.batch_jacobian(x, z).numpy()  # (5, 3, 3)
    log_base = -0.5 * np.sum(z.numpy() ** 2, axis=1) - 1.5 * np.log(2 * np.pi)
    expected = log_base - np.log(np.abs(np.linalg.det(jac)))
    np.testing.assert_allclose(flow.log_prob(x, c).numpy(), expected, rtol=1e-4, atol=1e-4)
    assert np.max(np.abs(x.numpy() - z.numpy())) > 1e-2  # a non-trivial map


def test_kde_kl_zero_for_identical_positive_otherwise():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 6)).astype(np.float32)
    grid = losses.kde_grid(x, 64)
    h = losses.silverman_bandwidths(x)
    p = losses.kde_on_grid_chunked(x, grid, h)
    assert float(losses.kde_kl(p, x, grid, h)) == pytest.approx(0.0, abs=1e-5)
    assert float(losses.kde_kl(p, x + 0.5, grid, h)) > 0.05
    assert float(losses.kde_kl(p, x + 0.5, grid, h)) > float(losses.kde_kl(p, x + 0.2, grid, h)) > 0


def test_mmd_self_vs_shifted():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((500, 6)).astype(np.float32)
    y = rng.standard_normal((500, 6)).astype(np.float32)
    assert float(losses.mmd(x, x, 0.1)) == pytest.approx(0.0, abs=1e-6)
    same = float(losses.mmd(x, y, 0.1))
    shifted = [float(losses.mmd(x, y + s, 0.1)) for s in (0.3, 1.0)]
    assert 0 <= same < shifted[0] < shifted[1]
    # the paper's single-cross-term form equals the mean kernel for identical samples
    assert float(losses.mmd(x, x, 0.1, "paper")) == pytest.approx(float(losses._kernel_mean(x, x, 0.1)))


def test_a_mixture_of_bandwidths_is_the_mean_of_their_mmds():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 6)).astype(np.float32)
    y = (rng.standard_normal((300, 6)) + 0.2).astype(np.float32)
    sigmas = (0.1, 0.3, 1.0)
    single = [float(losses.mmd(x, y, s)) for s in sigmas]
    assert float(losses.mmd(x, y, sigmas)) == pytest.approx(np.mean(single), rel=1e-5)
    assert float(losses.mmd_unbiased(x, y, list(sigmas))) == pytest.approx(
        np.mean([float(losses.mmd_unbiased(x, y, s)) for s in sigmas]), rel=1e-4)


@pytest.mark.parametrize(("sigma", "ok"), [(0.3, True), ([0.1, 0.3, 1.0], True), ([], False), ([0.1, 0.0], False),
                                           (-1.0, False), ("wide", False)])
def test_mmd_sigma_is_a_bandwidth_or_a_list_of_them(sigma, ok):
    from phys_ml.stages.common.config import parse_config
    from phys_ml.stages.common.errors import UserError

    params = load_params(Path(__file__).parents[2] / "params.yaml")
    params["diphoton"]["train"]["mmd_sigma"] = sigma
    if ok:
        cfg = parse_config(TrainConfig, params, "diphoton.train")
        assert cfg.mmd_sigmas == (tuple(sigma) if isinstance(sigma, list) else (sigma,))
    else:
        with pytest.raises(UserError, match="diphoton.train.mmd_sigma"):
            parse_config(TrainConfig, params, "diphoton.train")


def test_unbiased_mmd_is_zero_on_average_for_one_distribution():
    rng = np.random.default_rng(7)
    draws = [(rng.standard_normal((200, 6)), rng.standard_normal((200, 6))) for _ in range(20)]
    unbiased = [float(losses.mmd_unbiased(x, y, 1.0)) for x, y in draws]
    biased = [float(losses.mmd(x, y, 1.0)) for x, y in draws]
    assert abs(np.mean(unbiased)) < 0.2 * np.mean(biased)  # the V-statistic sits at a positive floor
    assert float(losses.mmd_unbiased(draws[0][0], draws[0][1] + 1.0, 1.0)) > 5 * np.std(unbiased)


def test_mdmm_lambda_moves_with_constraint():
    eps = 0.01
    assert losses.mdmm_lambda_step(0.5, 0.02, eps, lr=1.0) > 0.5  # violated: up
    assert losses.mdmm_lambda_step(0.5, 0.005, eps, lr=1.0) < 0.5  # satisfied: down
    assert losses.mdmm_lambda_step(0.001, 0.0, eps, lr=1.0) == 0.0  # not below zero
    assert losses.mdmm_lambda_step(0.001, 0.0, eps, lr=1.0, nonnegative=False) < 0.0
    # the step is the gradient of eq. 3 with respect to lambda
    lam = tf.Variable(0.3)
    with tf.GradientTape() as tape:
        value = losses.mdmm_lagrangian(tf.constant(1.0), tf.constant(0.02), lam, eps, 2.0)
    assert float(tape.gradient(value, lam)) == pytest.approx(0.02 - eps)


def _tiny_cfg(**kw):
    """The committed params.yaml's diphoton.train (the one source of values) at tiny sizes, with the learning
    rate and MMD width these tests were written for."""
    committed = load_params(Path(__file__).resolve().parents[2] / "params.yaml")["diphoton"]["train"]
    base = dict(committed, epochs=2, n_blocks=2, hidden_units=[8, 8], batch_size=256, batch_size_mmd=128,
                kde_grid=16, kde_data_events=1000, max_steps_per_epoch=3, threads=1, lr_start=1e-3,
                mmd_sigma=0.1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_training_reduces_log_loss_and_mdmm_runs():
    rng = np.random.default_rng(5)
    mc = rng.standard_normal((1500, 6)).astype(np.float32)
    data = (0.7 * rng.standard_normal((1500, 6)) + 1.0).astype(np.float32)
    cfg = _tiny_cfg(epochs=6, max_steps_per_epoch=5, lr_start=0.01, lr_end=0.001)
    tfenv.setup(cfg.seed, 1)
    h = Trainer(build_flow(cfg), "log", cfg, mc[:1200], data[:1200], mc[1200:], data[1200:]).run()
    assert h.loss[-1] < h.loss[0] and np.all(np.isfinite(h.val_loss))
    cfg = _tiny_cfg(losses=["mdmm"])
    t = Trainer(build_flow(cfg), "mdmm", cfg, mc[:1200], data[:1200], mc[1200:], data[1200:])
    h = t.run()
    assert h.epsilon == pytest.approx(1.015 * h.data_mmd) and len(h.lam) == 2 and min(h.lam) >= 0


def test_nan_stops_training_with_last_good_epoch():
    rng = np.random.default_rng(6)
    mc = rng.standard_normal((600, 6)).astype(np.float32)
    data = rng.standard_normal((600, 6)).astype(np.float32)
    cfg = _tiny_cfg(epochs=3)
    flow = build_flow(cfg)
    seen = []

    def poison(epoch, history, is_best):
        seen.append(epoch)
        if epoch == 1:  # corrupt a weight after the first good epoch
            v = flow.trainable_variables[0]
            v.assign(tf.fill(v.shape, np.nan))

    with pytest.raises(NonFinite) as err:
        Trainer(flow, "log", cfg, mc, data, mc[:100], data[:100]).run(on_epoch=poison)
    assert err.value.epoch == 2 and err.value.last_good == 1 and seen == [1]


def test_plateau_rule_drops_the_rate_then_stops():
    rule = PlateauRule(patience=2, min_improvement=0.1, lr=1e-2, lr_drop=0.1, lr_end=1e-3)
    assert rule.update(1.0) == (True, "")
    assert rule.update(0.95) == (True, "")  # a new best, but under 10 % better: patience runs on
    assert rule.update(0.85) == (True, "")  # 15 % better than 1.0: patience restarts
    assert rule.update(0.9) == (False, "")
    assert rule.update(0.8) == (True, "drop") and rule.lr == pytest.approx(1e-3)  # 2 epochs not 10 % below 0.85
    assert rule.update(0.7) == (True, "")  # 18 % below 0.85
    assert rule.update(0.7) == (False, "") and rule.update(0.69) == (True, "stop")  # 1e-4 would be below lr_end


def test_validation_score_is_three_for_the_mc_and_near_zero_for_data():
    rng = np.random.default_rng(8)
    mc = rng.standard_normal((4000, 6)).astype(np.float32)
    data = (0.8 * rng.standard_normal((4000, 6)) + 0.5).astype(np.float32)
    score = ValidationScore(mc[:2000], data[:2000], _tiny_cfg(val_events=2000, kde_grid=64), seed=0)
    identity = score(lambda x_c, z: tf.constant(x_c))
    assert identity == pytest.approx((3.0, 1.0, 1.0, 1.0))
    other_data = score(lambda x_c, z: tf.constant(data[2000:2000 + len(x_c)]))  # a second data sample
    assert other_data[1] < 0.1 and abs(other_data[2]) < 0.05 and other_data[0] < 1.0  # MC: 3, 1, 1, 1
    # the correlation term sees a change of the correlations that leaves every marginal as it was
    mixed = np.concatenate([data[2000:, :3], np.roll(data[2000:, 3:], 1, axis=0)], axis=1)  # pairs decoupled
    coupled = (0.8 * rng.standard_normal((2000, 6)) + 0.5).astype(np.float32)
    coupled[:, 1] = coupled[:, 0]  # a strong correlation the data do not have
    assert score(lambda x_c, z: tf.constant(coupled))[3] > 3 * score(lambda x_c, z: tf.constant(mixed))[3]


@pytest.mark.slow
def test_training_stops_by_the_rule_and_keeps_the_best_epoch():
    rng = np.random.default_rng(9)
    mc = rng.standard_normal((1500, 6)).astype(np.float32)
    data = (0.7 * rng.standard_normal((1500, 6)) + 1.0).astype(np.float32)
    cfg = _tiny_cfg(epochs=10, patience=1, min_improvement=0.9, lr_start=0.01, lr_drop=0.1, lr_end=0.001)
    tfenv.setup(cfg.seed, 1)
    bests = []
    trainer = Trainer(build_flow(cfg), "log", cfg, mc[:1200], data[:1200], mc[1200:], data[1200:])
    h = trainer.run(on_epoch=lambda epoch, history, is_best: bests.append(is_best))
    # no 90 % improvement in an epoch: the rate drops after epoch 2, and the run stops after epoch 3
    assert h.stopped == "converged" and h.lr == pytest.approx([0.01, 0.01, 0.001])
    assert float(trainer.optimizer.learning_rate) == pytest.approx(0.001)
    assert h.best_epoch == int(np.argmin(h.score)) + 1 and bests[0] and sum(bests) == len(set(np.minimum.accumulate(
        h.score)))
