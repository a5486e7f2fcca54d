"""The marginal-only transport and the rank-correlation row (numpy, no TensorFlow)."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from phys_ml.stages.diphoton.metrics import correlation_row, rank_correlation_row
from phys_ml.stages.diphoton.simulate import MODELS, simulate
from phys_ml.stages.diphoton.transport import marginal_transport


def test_marginal_transport_gives_the_target_marginals_and_keeps_the_ranks():
    rng = np.random.default_rng(0)
    cov = [[1.0, 0.6], [0.6, 1.0]]
    source = rng.multivariate_normal([0, 0], cov, 20_000)
    target = np.column_stack([rng.exponential(2.0, 20_000), rng.uniform(-1, 1, 20_000)])  # independent
    x = rng.multivariate_normal([0, 0], cov, 5_000)
    out = marginal_transport(x, source, target)
    for j in range(2):  # each column now follows the target's marginal
        np.testing.assert_allclose(np.quantile(out[:, j], [0.1, 0.5, 0.9]),
                                   np.quantile(target[:, j], [0.1, 0.5, 0.9]), rtol=0.05, atol=0.03)
    # ranks kept (up to ties of events between the same two source events)
    assert spearmanr(out[:, 0], out[:, 1])[0] == pytest.approx(spearmanr(x[:, 0], x[:, 1])[0], abs=1e-4)
    assert abs(np.corrcoef(target.T)[0, 1]) < 0.03 < 0.5 < abs(spearmanr(out[:, 0], out[:, 1])[0])


def test_rank_row_ignores_monotone_maps_of_a_feature_pearson_does_not():
    x = simulate(MODELS["data"], 5_000, seed=3)
    y = x.copy()
    y[:, [1, 4]] = np.sinh(2.0 * x[:, [1, 4]])  # eta -> an increasing, strongly non-linear map of it
    assert rank_correlation_row(y)["eta1,eta2"] == rank_correlation_row(x)["eta1,eta2"]
    assert abs(correlation_row(y)["eta1,eta2"] - correlation_row(x)["eta1,eta2"]) > 0.02


def test_own_feature_share_separates_per_feature_maps_from_coupled_ones():
    from phys_ml.stages.diphoton.transport import noise_share, own_feature_share

    rng = np.random.default_rng(1)
    x = rng.standard_normal((20_000, 3))
    delta = np.column_stack([np.tanh(x[:, 0]), 0.5 * x[:, 2], 0.3 * x[:, 2] + x[:, 1]])
    share = own_feature_share(x, delta)
    assert share[0] > 0.99 and share[1] < 0.01 and 0.06 < share[2] < 0.11  # 0.09 of var 1.09 is x_2 itself
    noise = 0.5 * rng.standard_normal(x.shape)
    np.testing.assert_allclose(noise_share(delta + noise, delta), 0.25 / (np.var(delta, axis=0) + 0.25), rtol=0.05)
